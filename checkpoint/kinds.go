package checkpoint

// Element types beyond the classic typed storages, and the tensors that are more than one
// strided view: quantized and sparse ones.

// KindOfDType maps a dtype name ("float8_e4m3fn", "float32", "double", ...) to its kind.
func KindOfDType(name string) (StorageKind, bool) {
	if alias, ok := dtypeAliases[name]; ok {
		name = alias
	}
	for k, info := range kindInfo {
		if k != int(InvalidKind) && StorageKind(k) != Untyped && info.dtype == name {
			return StorageKind(k), true
		}
	}
	return InvalidKind, false
}

// dtypeAliases are the other names torch gives some dtypes (torch.float is torch.float32).
var dtypeAliases = map[string]string{
	"double": "float64", "float": "float32", "half": "float16", "long": "int64", "int": "int32",
	"short": "int16", "cfloat": "complex64", "cdouble": "complex128", "chalf": "complex32",
}

// IsQuantized reports whether the kind is one of torch's quantized integer types.
func (k StorageKind) IsQuantized() bool {
	return k >= QInt8 && k <= QUInt2x4
}

// HasClass reports whether torch has a typed storage class for the kind, so that a tensor of
// it is written over that class (_rebuild_tensor_v2) rather than over an untyped storage
// (_rebuild_tensor_v3).
func (k StorageKind) HasClass() bool { return k.Valid() && kindInfo[k].class != "" }

// Quantizer is how a quantized tensor's integers map to real numbers, as torch's
// quantizer_params tuple lists them. Scheme is the torch name of the scheme
// ("per_tensor_affine", "per_channel_affine", "per_channel_affine_float_qparams").
type Quantizer struct {
	Scheme string
	// Per tensor: Scale and ZeroPoint. Kept as read (float64 and int64 in files torch
	// writes) so that they are written back unchanged.
	Scale, ZeroPoint Value
	// Per channel: one scale and zero point per slice along Axis; tensors or lists.
	Scales, ZeroPoints Value
	Axis               Value
}

// SparseTensor is a sparse tensor (torch._utils._rebuild_sparse_tensor): a layout and the
// dense tensors holding its indices and values.
type SparseTensor struct {
	// Layout is torch's layout name: "sparse_coo", "sparse_csr", "sparse_csc",
	// "sparse_bsr" or "sparse_bsc".
	Layout string
	// Indices are the COO indices, or the compressed and plain indices of the other layouts.
	Indices []*Tensor
	Values  *Tensor
	// Size is the sparse tensor's shape, as the torch.Size value the file holds.
	Size Value
	// Coalesced is COO's is_coalesced flag: a bool, or nil; HasCoalesced says whether the
	// file passed it at all (files from older torch do not).
	Coalesced    Value
	HasCoalesced bool
}

// Parts lists the dense tensors a value is made of: itself for a tensor or parameter, the
// per-channel scales and zero points of a quantized tensor too, the indices and values of
// a sparse tensor, the tensors among a call's arguments (a nested tensor's buffer and
// sizes) and among a tensor's or parameter's attributes. Their storages are the value's
// storages.
func Parts(v Value) []*Tensor {
	switch x := v.(type) {
	case *Tensor:
		out := []*Tensor{x}
		if q := x.Quant; q != nil {
			for _, qv := range []Value{q.Scales, q.ZeroPoints} {
				if t, ok := qv.(*Tensor); ok {
					out = append(out, t)
				}
			}
		}
		return out
	case *Parameter:
		// _rebuild_parameter_with_state's state holds the parameter's attributes, which
		// may be tensors.
		out := deepParts(&Tuple{Items: x.Extra})
		if x.Data != nil {
			out = append(Parts(x.Data), out...)
		}
		return out
	case *SparseTensor:
		var out []*Tensor
		for _, t := range x.Indices {
			out = append(out, Parts(t)...)
		}
		if x.Values != nil {
			out = append(out, Parts(x.Values)...)
		}
		return out
	case *AttrTensor:
		return append(Parts(x.Tensor), deepParts(x.State)...)
	case *Call:
		var out []*Tensor
		if x.Args != nil {
			out = deepParts(x.Args)
		}
		return append(out, deepParts(x.State)...)
	}
	return nil
}
