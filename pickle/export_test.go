package pickle

import "sort"

// UnsupportedGlobals lists the allowed globals that pt2conv refuses to keep, for the
// allowlist test, which says beside each why that is.
func UnsupportedGlobals() []string {
	var out []string
	for name, role := range allowedGlobals {
		if role == roleUnsupported {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
