package pickle

import "github.com/pt2conv/pt2conv/checkpoint"

// walkSize counts the values Walk visits below root, stopping once the count passes
// limit. Each container's count is computed once, so a tree whose walk would take
// exponential time (shared lists of shared lists) is measured in linear time.
func walkSize(root checkpoint.Value, limit int) int {
	counted := map[any]int{}
	active := map[any]bool{}
	var size func(v checkpoint.Value) int
	size = func(v checkpoint.Value) int {
		entries, items, ok := checkpoint.Children(v)
		if !ok {
			return 1
		}
		if n, ok := counted[v]; ok {
			return n
		}
		if active[v] {
			return 1
		}
		active[v] = true
		defer delete(active, v)
		n := 1
		for _, e := range entries {
			if n += size(e.Value); n > limit {
				break
			}
		}
		for _, it := range items {
			if n > limit {
				break
			}
			n += size(it)
		}
		n = min(n, limit+1)
		counted[v] = n
		return n
	}
	return size(root)
}
