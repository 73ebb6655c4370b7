module github.com/pt2conv/pt2conv

go 1.26.0

require (
	github.com/nlpodyssey/gopickle v0.2.0
	golang.org/x/sys v0.48.0
	gonum.org/v1/gonum v0.17.0
	gopkg.in/yaml.v3 v3.0.1
)
