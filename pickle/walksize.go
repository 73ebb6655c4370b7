package pickle

import (
	"fmt"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// checkTree bounds the tree a pickle built: how deep its containers nest (Walk and the
// encoder recurse that deep) and how many values a Walk of it visits.
func checkTree(root checkpoint.Value, lim Limits) error {
	if n, deep := walkSize(root, lim.MaxObjects, lim.MaxDepth); deep {
		return fmt.Errorf("objects nested deeper than %d levels", lim.MaxDepth)
	} else if n > lim.MaxObjects {
		return fmt.Errorf("objects shared so often that walking them visits more than %d values", lim.MaxObjects)
	}
	return nil
}

// walkSize counts the values Walk visits below root, stopping once the count passes
// limit, and reports whether containers nest deeper than maxDepth. Each container's count
// is computed once, so a tree whose walk would take exponential time (shared lists of
// shared lists) is measured in linear time.
func walkSize(root checkpoint.Value, limit, maxDepth int) (int, bool) {
	type measure struct{ count, height int }
	counted := map[any]measure{}
	active := map[any]bool{}
	deep := false
	var size func(v checkpoint.Value, depth int) measure
	size = func(v checkpoint.Value, depth int) measure {
		entries, items, ok := checkpoint.Children(v)
		if !ok || len(entries) == 0 && len(items) == 0 {
			return measure{1, 0} // a leaf, or an empty container (each tensor's hooks)
		}
		if m, ok := counted[v]; ok {
			if depth+m.height > maxDepth {
				deep = true
			}
			return m
		}
		if active[v] {
			return measure{1, 0}
		}
		if depth > maxDepth {
			deep = true
			return measure{1, 0}
		}
		active[v] = true
		defer delete(active, v)
		m := measure{count: 1}
		child := func(c checkpoint.Value) {
			cm := size(c, depth+1)
			m.count += cm.count
			m.height = max(m.height, cm.height+1)
		}
		for _, e := range entries {
			if m.count > limit || deep {
				break
			}
			// Walk does not visit keys, but the encoder does: they count for depth only.
			m.height = max(m.height, size(e.Key, depth+1).height+1)
			child(e.Value)
		}
		for _, it := range items {
			if m.count > limit || deep {
				break
			}
			child(it)
		}
		m.count = min(m.count, limit+1)
		counted[v] = m
		return m
	}
	n := size(root, 0).count
	return n, deep
}
