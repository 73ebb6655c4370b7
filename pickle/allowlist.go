package pickle

import (
	"sort"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// allowedGlobals are the names a checkpoint's pickle may mention: the ones torch's
// weights_only loader accepts (allowlist.go lists them all and says why where pt2conv's
// list differs), plus the helpers Python itself emits for bytes. The value says what pt2conv
// makes of the name.
var allowedGlobals = map[string]globalRole{
	"torch._utils._rebuild_tensor_v2":            roleTensor,
	"torch._utils._rebuild_tensor_v3":            roleTensorV3,
	"torch._utils._rebuild_qtensor":              roleQTensor,
	"torch._utils._rebuild_sparse_tensor":        roleSparse,
	"torch._utils._rebuild_parameter":            roleParameter,
	"torch._utils._rebuild_parameter_with_state": roleParameter,
	"torch.Size":                             roleOpaque,
	"torch.device":                           roleOpaque,
	"torch.serialization._get_layout":        roleOpaque,
	"torch.Tensor":                           roleOpaque,
	"torch.nn.parameter.Parameter":           roleOpaque,
	"collections.OrderedDict":                roleOpaque,
	"collections.Counter":                    roleOpaque,
	"builtins.set":                           roleOpaque,
	"builtins.bytearray":                     roleOpaque,
	"builtins.complex":                       roleOpaque,
	"__builtin__.set":                        roleOpaque,
	"__builtin__.bytearray":                  roleOpaque,
	"__builtin__.complex":                    roleOpaque,
	"torch.storage.UntypedStorage":           roleStorage,
	"_codecs.encode":                         roleBytes,
	"__builtin__.bytes":                      roleBytes,
	"builtins.bytes":                         roleBytes,
	"torch.per_tensor_affine":                roleOpaque,
	"torch.per_tensor_symmetric":             roleOpaque,
	"torch.per_channel_affine":               roleOpaque,
	"torch.per_channel_symmetric":            roleOpaque,
	"torch.per_channel_affine_float_qparams": roleOpaque,
	// The class itself, as a value: torch never writes it as a storage reference (its
	// persistent ids name torch.<X>Storage or UntypedStorage).
	"torch.storage.TypedStorage":                   roleOpaque,
	"torch._tensor._rebuild_from_type_v2":          roleFromType,
	"torch._utils._rebuild_tensor":                 roleTensorOld,
	"torch._utils._rebuild_meta_tensor_no_storage": roleMeta,
	"torch._utils._rebuild_nested_tensor":          roleNested,
	// Written only for tensor subclasses that have no storage (FakeTensor, functional and
	// other wrapper subclasses); its arguments name the subclass and a layout
	// (torch.strided), globals torch's weights_only loader refuses unless the user allows
	// them, so no file torch reads by default holds it.
	"torch._utils._rebuild_wrapper_subclass": roleUnsupported,
	// Written for tensors on xla, maia, mtia or privateuse1 backends, which the CPU builds
	// of torch that judge pt2conv's files do not have, so no such file can be made and
	// checked. The numpy form's data is a numpy array, whose globals the weights_only
	// loader refuses anyway.
	"torch._utils._rebuild_device_tensor_from_numpy":      roleUnsupported,
	"torch._utils._rebuild_device_tensor_from_cpu_tensor": roleUnsupported,
}

// unsupportedWhat names, for the "unsupported" error, what an allowed global builds that
// pt2conv cannot keep yet.
var unsupportedWhat = map[string]string{
	"torch._utils._rebuild_wrapper_subclass":              "a wrapper tensor subclass (no storage)",
	"torch._utils._rebuild_device_tensor_from_numpy":      "a device tensor saved through numpy",
	"torch._utils._rebuild_device_tensor_from_cpu_tensor": "a device tensor saved through a CPU copy",
}

type globalRole uint8

const (
	roleOpaque globalRole = iota + 1 // kept as a *Global / *Call
	roleTensor
	roleTensorV3
	roleQTensor
	roleSparse
	roleParameter
	roleBytes
	roleStorage
	roleFromType
	roleTensorOld
	roleMeta
	roleNested
	roleUnsupported
)

// tensorClasses are torch's legacy tensor type names (torch.FloatTensor, torch.cuda.HalfTensor,
// torch.sparse.LongTensor, ...), which torch's loader allows as values.
var tensorClasses = map[string]bool{
	"DoubleTensor": true, "FloatTensor": true, "HalfTensor": true, "BFloat16Tensor": true,
	"LongTensor": true, "IntTensor": true, "ShortTensor": true, "CharTensor": true,
	"ByteTensor": true, "BoolTensor": true,
}

func roleOf(module, name string) (globalRole, bool) {
	if r, ok := allowedGlobals[module+"."+name]; ok {
		return r, true
	}
	switch module {
	case "torch":
		if k, ok := checkpoint.KindOfClass(name); ok && k != checkpoint.Untyped {
			return roleStorage, true
		}
		if _, ok := checkpoint.KindOfDType(name); ok && !dtypeAliasName[name] {
			return roleOpaque, true
		}
		if tensorClasses[name] {
			return roleOpaque, true
		}
	case "torch.cuda":
		if k, ok := checkpoint.KindOfClass(name); ok && !k.IsQuantized() && k != checkpoint.Untyped {
			return roleStorage, true
		}
		if tensorClasses[name] {
			return roleOpaque, true
		}
	case "torch.sparse", "torch.cuda.sparse":
		if tensorClasses[name] && name != "BoolTensor" {
			return roleOpaque, true
		}
	}
	return 0, false
}

// dtypeAliasName are alias spellings of dtypes (torch.float, torch.long): torch pickles a
// dtype under its canonical name, and its loader allows only those.
var dtypeAliasName = map[string]bool{
	"double": true, "float": true, "half": true, "long": true, "int": true, "short": true,
	"cfloat": true, "cdouble": true, "chalf": true,
}

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
