package checkpoint

// AttrTensor is a tensor that carries Python attributes (w.foo = 1, or a __dict__ restored
// by a subclass), which torch saves as torch._tensor._rebuild_from_type_v2(rebuild function,
// class, its arguments, state): the tensor as it would be saved without them, its class and
// the attributes.
type AttrTensor struct {
	// Tensor is the tensor without its attributes: a *Tensor (dense or quantized) or a
	// *SparseTensor.
	Tensor Value
	// Class is the tensor's Python class: torch.Tensor, or torch.nn.parameter.Parameter.
	Class *Global
	// State is what the attributes are restored from, as read: a dict of attribute names to
	// values, None, or a (dict, slots dict) tuple.
	State Value
}

// Dense returns the dense (or quantized) tensor a is, if it is one.
func (a *AttrTensor) Dense() (*Tensor, bool) {
	t, ok := a.Tensor.(*Tensor)
	return t, ok && t != nil
}

// deepParts lists the dense tensors found anywhere below v, through containers, calls and
// attributes: their storages must be written with the values that hold them.
func deepParts(v Value) []*Tensor {
	var out []*Tensor
	_ = Walk(v, func(_ Path, x Value) error {
		out = append(out, Parts(x)...)
		return nil
	})
	return out
}

// IsTensor reports whether v is a tensor of any kind: dense or quantized, a parameter, sparse,
// one with attributes, or one kept as its rebuild call (Call.Tensor).
func IsTensor(v Value) bool {
	switch x := v.(type) {
	case *Tensor, *Parameter, *SparseTensor, *AttrTensor:
		return true
	case *Call:
		return x.Tensor != ""
	}
	return false
}
