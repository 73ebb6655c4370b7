package pickle

import (
	"fmt"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// Tensors torch writes around or instead of the usual rebuild call: tensors that carry
// Python attributes, meta tensors (shape and dtype, no data), nested tensors and tensors in
// torch 0.3's form.

// attrClasses are the classes _rebuild_from_type_v2 may name in a file torch's weights_only
// loader reads: any other tensor subclass is a global that loader refuses.
var attrClasses = map[string]bool{
	"torch.Tensor":                 true,
	"torch.nn.parameter.Parameter": true,
}

// fromType reads _rebuild_from_type_v2(func, class, args, state), which torch writes for a
// tensor with Python attributes: func(*args) is the tensor without them, state the
// attributes (Tensor.__reduce_ex__).
func (d *decoder) fromType(args []checkpoint.Value) (checkpoint.Value, error) {
	if len(args) != 4 {
		return nil, fmt.Errorf("%w: %s: _rebuild_from_type_v2 with %d arguments", ErrCorrupt, d.record, len(args))
	}
	fn, ok := args[0].(*checkpoint.Global)
	class, ok1 := args[1].(*checkpoint.Global)
	inner, ok2 := args[2].(*checkpoint.Tuple)
	if !ok || !ok1 || !ok2 {
		return nil, fmt.Errorf("%w: %s: _rebuild_from_type_v2 without a function, class and arguments", ErrCorrupt, d.record)
	}
	if !attrClasses[class.String()] {
		return nil, fmt.Errorf("%w: %s: a tensor of class %s, which torch's weights_only loader refuses too", ErrUnsupported, d.record, class)
	}
	role, _ := roleOf(fn.Module, fn.Name)
	switch role {
	case roleTensor, roleTensorV3, roleQTensor, roleSparse, roleMeta, roleNested, roleTensorOld:
	default:
		return nil, fmt.Errorf("%w: %s: a tensor with Python attributes rebuilt by %s", ErrUnsupported, d.record, fn)
	}
	t, err := d.build(&pyGlobal{g: fn, role: role}, inner.Items, nil, false)
	if err != nil {
		return nil, err
	}
	return &checkpoint.AttrTensor{Tensor: t, Class: class, State: args[3]}, nil
}

// meta reads _rebuild_meta_tensor_no_storage(dtype, size, stride, requires_grad): a tensor
// on the meta device, which has a shape but no data. It is kept as the call it is.
func (d *decoder) meta(g *checkpoint.Global, args []checkpoint.Value) (checkpoint.Value, error) {
	bad := fmt.Errorf("%w: %s: malformed meta tensor", ErrCorrupt, d.record)
	if len(args) != 4 {
		return nil, bad
	}
	dtype, ok := args[0].(*checkpoint.Global)
	size, stride, ok1 := sizeAndStride(args[1], args[2])
	_, ok3 := args[3].(bool)
	if !ok || !ok1 || !ok3 || len(size) != len(stride) || dtype.Module != "torch" {
		return nil, bad
	}
	if _, ok := checkpoint.KindOfDType(dtype.Name); !ok {
		return nil, fmt.Errorf("%w: %s: meta tensor of dtype %s", ErrUnsupported, d.record, dtype)
	}
	for _, n := range size {
		if n < 0 {
			return nil, bad
		}
	}
	return &checkpoint.Call{Func: g, Args: &checkpoint.Tuple{Items: args}, Tensor: "meta tensor"}, nil
}

// nested reads _rebuild_nested_tensor(buffer, sizes, strides, offsets): a nested tensor,
// whose four parts are dense tensors. It is kept as the call it is; the parts' storages are
// written with it.
func (d *decoder) nested(g *checkpoint.Global, args []checkpoint.Value) (checkpoint.Value, error) {
	if len(args) != 4 {
		return nil, fmt.Errorf("%w: %s: nested tensor with %d parts", ErrCorrupt, d.record, len(args))
	}
	for _, a := range args {
		if t, ok := a.(*checkpoint.Tensor); !ok || t.Quant != nil {
			return nil, fmt.Errorf("%w: %s: nested tensor whose parts are not dense tensors", ErrCorrupt, d.record)
		}
	}
	return &checkpoint.Call{Func: g, Args: &checkpoint.Tuple{Items: args}, Tensor: "nested tensor"}, nil
}

// oldTensor reads _rebuild_tensor(storage, offset, size, stride), torch 0.3's form of a
// tensor, which torch still reads: a view of a typed storage, without requires_grad.
func (d *decoder) oldTensor(args []checkpoint.Value) (checkpoint.Value, error) {
	if len(args) != 4 {
		return nil, fmt.Errorf("%w: %s: _rebuild_tensor with %d arguments", ErrCorrupt, d.record, len(args))
	}
	s, ok := args[0].(*checkpoint.Storage)
	if !ok || !s.Kind.HasClass() || s.Kind.IsQuantized() {
		// torch makes the tensor from the storage's dtype, which an untyped or quantized
		// storage does not give it.
		return nil, fmt.Errorf("%w: %s: _rebuild_tensor without a typed storage", ErrCorrupt, d.record)
	}
	t, err := d.view(s, []checkpoint.Value{args[1], args[2], args[3], false, nil})
	if err != nil {
		return nil, err
	}
	t.OldForm = true
	if err := checkSpan(t); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, d.record, err)
	}
	return t, nil
}

// newObject answers NEWOBJ and NEWOBJ_EX (cls.__new__(cls, *args)). torch's weights_only
// loader accepts NEWOBJ for nn.Parameter, but neither torch 1.x nor 2.x writes it:
// Parameter.__reduce_ex__ goes through _rebuild_parameter. Other allowed classes cannot be
// created this way at all, and anything else on the stack is not a class.
func (m *machine) newObject(op byte) error {
	n := 2 // cls, args
	if op == 0x92 {
		n = 3 // cls, args, kwargs
	}
	if len(m.stack) < n {
		return m.corrupt("NEWOBJ with %d values on the stack", len(m.stack))
	}
	cls := m.stack[len(m.stack)-n]
	if g, ok := cls.(*pyGlobal); ok {
		if g.g.String() == "torch.nn.parameter.Parameter" {
			return fmt.Errorf("%w: %s: an nn.Parameter created by NEWOBJ rather than torch._utils._rebuild_parameter, which torch.save never writes", ErrUnsupported, m.d.record)
		}
		return m.corrupt("NEWOBJ of %s", g.g)
	}
	return m.corrupt("NEWOBJ of a %s", kindOf(cls))
}
