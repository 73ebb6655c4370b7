module github.com/pt2conv/pt2conv

go 1.26
