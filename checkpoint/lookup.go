package checkpoint

import (
	"strconv"
	"strings"
)

// Lookup finds the value at key below root and returns its path. key is a "/"-separated
// path of dict keys and list or tuple indices ("model", "train/optimizer",
// "optimizer_states/0"): the same form Path.String prints, so a path pt2conv shows can be
// passed back as a flag. A key of root's own that holds "/" is taken whole first.
func Lookup(root Value, key string) (Path, Value, bool) {
	if entries, _, ok := Children(root); ok {
		for _, e := range entries {
			if k, ok := e.Key.(string); ok && k == key {
				return Path{key}, e.Value, true
			}
		}
	}
	var path Path
	v := root
	for _, part := range strings.Split(key, "/") {
		next, ok := child(v, part)
		if !ok {
			return nil, nil, false
		}
		v = next
		path = append(path, part)
	}
	return path, v, true
}

// child returns the value under one path element: a dict's key as KeyString renders it, or
// a list's or tuple's index in decimal.
func child(v Value, part string) (Value, bool) {
	entries, items, ok := Children(v)
	if !ok {
		return nil, false
	}
	for _, e := range entries {
		if KeyString(e.Key) == part {
			return e.Value, true
		}
	}
	if items != nil {
		i, err := strconv.Atoi(part)
		// "00" or "+1" is not how Walk names an item, so it names none.
		if err == nil && i >= 0 && i < len(items) && strconv.Itoa(i) == part {
			return items[i], true
		}
	}
	return nil, false
}
