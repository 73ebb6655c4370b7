package pickle

import (
	"sort"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// AllowedGlobals lists every "module.name" global a checkpoint's pickle may mention, sorted.
// It is torch's weights_only allowlist as of torch 2.6 plus the spellings Python's protocol-2
// pickler uses for builtins ("__builtin__.set", which torch maps to builtins.set) and
// builtins.bytes; the names whose meaning pt2conv cannot keep yet are on it too and fail with
// ErrUnsupported, naming what they build. Any other global is refused with a GlobalError.
func AllowedGlobals() []string {
	set := map[string]bool{}
	for name := range allowedGlobals {
		set[name] = true
	}
	for k := checkpoint.InvalidKind + 1; k.Valid(); k++ {
		if k == checkpoint.Untyped {
			continue
		}
		if !dtypeAliasName[k.DType()] {
			set["torch."+k.DType()] = true
		}
		if k.HasClass() {
			set["torch."+k.Class()] = true
			if !k.IsQuantized() {
				set["torch.cuda."+k.Class()] = true
			}
		}
	}
	for class := range tensorClasses {
		set["torch."+class] = true
		set["torch.cuda."+class] = true
		if class != "BoolTensor" {
			set["torch.sparse."+class] = true
			set["torch.cuda.sparse."+class] = true
		}
	}
	out := make([]string, 0, len(set))
	for name := range set {
		if mod, name, ok := cutLast(name); ok {
			if role, ok := roleOf(mod, name); !ok || role == 0 {
				panic("pickle: AllowedGlobals lists " + mod + "." + name + ", which roleOf refuses")
			}
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func cutLast(s string) (string, string, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return "", s, false
}
