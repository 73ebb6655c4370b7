package pickle

import "github.com/pt2conv/pt2conv/checkpoint"

import (
	"fmt"
	"strings"
)

// The torch objects of a checkpoint, written as torch's own __reduce_ex__ methods
// describe them.

// emptyOrderedDict writes a fresh OrderedDict(), which torch passes as backward hooks.
func (e *Encoder) emptyOrderedDict() {
	e.global("collections", "OrderedDict")
	e.write(opEmptyTuple, opReduce)
	e.put()
}

// intTuple writes xs as tupleItems writes a tuple of ints, without making the values.
func (e *Encoder) intTuple(xs []int64) {
	if len(xs) == 0 {
		e.write(opEmptyTuple)
		return
	}
	if len(xs) > 3 {
		e.write(opMark)
	}
	for _, x := range xs {
		e.int(x)
	}
	e.write(tupleOp(len(xs)))
	e.put()
}

// tensor writes a dense or quantized tensor the way Tensor.__reduce_ex__ does:
// _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, extra...) over a
// typed storage; _rebuild_tensor_v3(..., hooks, dtype, extra...) over an untyped storage for
// dtypes without a storage class (float8, uint16, ...); _rebuild_qtensor(storage, offset,
// size, stride, quantizer_params, requires_grad, hooks) when quantized.
func (e *Encoder) tensor(t *checkpoint.Tensor) error {
	if i, ok := e.tensors[t]; ok {
		e.get(i)
		return e.err
	}
	fn, err := tensorRebuild(t)
	if err != nil {
		return err
	}
	// Only a tensor's hooks, extra arguments and quantizer can lead back to it: a plain
	// tensor, nearly every one, skips the cycle check's two map operations.
	if t.Hooks != nil || len(t.Extra) > 0 || t.Quant != nil {
		if err := e.enter(t); err != nil {
			return err
		}
		defer delete(e.building, t)
	}
	e.global("torch._utils", fn)
	if err := e.tensorArgs(t); err != nil {
		return err
	}
	e.write(opReduce)
	e.tensors[t] = e.put()
	return e.err
}

// tensorRebuild names the torch._utils function a tensor is written with.
func tensorRebuild(t *checkpoint.Tensor) (string, error) {
	if t.Storage == nil {
		return "", fmt.Errorf("pickle: encoding a tensor: no storage")
	}
	if len(t.Size) != len(t.Stride) {
		return "", fmt.Errorf("pickle: encoding a tensor: %d sizes but %d strides", len(t.Size), len(t.Stride))
	}
	switch {
	case t.OldForm:
		if t.Quant != nil || untypedView(t) || t.RequiresGrad || t.Hooks != nil || len(t.Extra) > 0 {
			return "", fmt.Errorf("pickle: encoding a tensor of storage %q in torch 0.3's form, which cannot hold its dtype, requires_grad or hooks", t.Storage.Key)
		}
		return "_rebuild_tensor", nil
	case t.Quant != nil:
		return "_rebuild_qtensor", nil
	case untypedView(t):
		if k := t.Kind(); !k.Valid() || k == checkpoint.Untyped {
			return "", fmt.Errorf("pickle: encoding a tensor of storage %q: no dtype", t.Storage.Key)
		}
		return "_rebuild_tensor_v3", nil
	}
	return "_rebuild_tensor_v2", nil
}

func untypedView(t *checkpoint.Tensor) bool {
	return t.Storage.Kind == checkpoint.Untyped || !t.Storage.Kind.HasClass()
}

// tensorArgs writes the argument tuple of the function tensorRebuild names.
func (e *Encoder) tensorArgs(t *checkpoint.Tensor) error {
	e.write(opMark)
	e.storage(t.Storage)
	e.int(t.Offset)
	e.intTuple(t.Size)
	e.intTuple(t.Stride)
	if t.OldForm {
		e.write(opTuple)
		e.put()
		return e.err
	}
	if t.Quant != nil {
		if err := e.quantizer(t.Quant); err != nil {
			return err
		}
	}
	e.value(t.RequiresGrad)
	if err := e.hooks(t.Hooks); err != nil {
		return err
	}
	if untypedView(t) && t.Quant == nil {
		e.global("torch", t.Kind().DType())
	}
	for _, x := range t.Extra {
		if err := e.value(x); err != nil {
			return err
		}
	}
	e.write(opTuple)
	e.put()
	return e.err
}

// quantizer writes quantizer_params: (scheme, scale, zero_point) per tensor, (scheme,
// scales, zero_points, axis) per channel.
func (e *Encoder) quantizer(q *checkpoint.Quantizer) error {
	items := []checkpoint.Value{&checkpoint.Global{Module: "torch", Name: q.Scheme}}
	if strings.HasPrefix(q.Scheme, "per_channel") {
		items = append(items, q.Scales, q.ZeroPoints, q.Axis)
	} else {
		items = append(items, q.Scale, q.ZeroPoint)
	}
	return e.tupleItems(items)
}

// sparse writes _rebuild_sparse_tensor(_get_layout("torch.<layout>"), data) as
// Tensor.__reduce_ex__ does for sparse layouts.
func (e *Encoder) sparse(sp *checkpoint.SparseTensor) error {
	if e.memoized(sp) {
		return e.err
	}
	if sp.Values == nil {
		return fmt.Errorf("pickle: encoding a sparse tensor: no values")
	}
	if err := e.enter(sp); err != nil {
		return err
	}
	defer delete(e.building, sp)
	e.global("torch._utils", "_rebuild_sparse_tensor")
	if err := e.sparseArgs(sp); err != nil {
		return err
	}
	e.write(opReduce)
	e.objects[sp] = e.put()
	return e.err
}

// sparseArgs writes (_get_layout("torch.<layout>"), data), the arguments of
// _rebuild_sparse_tensor.
func (e *Encoder) sparseArgs(sp *checkpoint.SparseTensor) error {
	e.global("torch.serialization", "_get_layout")
	e.str("torch." + sp.Layout)
	e.write(opTuple1)
	e.put()
	e.write(opReduce)
	e.put()
	var data []checkpoint.Value
	for _, t := range sp.Indices {
		data = append(data, t)
	}
	data = append(data, sp.Values, sp.Size)
	if sp.HasCoalesced {
		data = append(data, sp.Coalesced)
	}
	if err := e.tupleItems(data); err != nil {
		return err
	}
	e.write(opTuple2)
	e.put()
	return e.err
}

// attrTensor writes a tensor with Python attributes as Tensor.__reduce_ex__ does:
// torch._tensor._rebuild_from_type_v2(rebuild function, class, its arguments, state).
func (e *Encoder) attrTensor(a *checkpoint.AttrTensor) error {
	if e.memoized(a) {
		return e.err
	}
	if a.Class == nil {
		return fmt.Errorf("pickle: encoding a tensor with attributes: no class")
	}
	if err := e.enter(a); err != nil {
		return err
	}
	defer delete(e.building, a)
	e.global("torch._tensor", "_rebuild_from_type_v2")
	e.write(opMark)
	switch x := a.Tensor.(type) {
	case *checkpoint.Tensor:
		fn, err := tensorRebuild(x)
		if err != nil {
			return err
		}
		e.global("torch._utils", fn)
		e.global(a.Class.Module, a.Class.Name)
		if err := e.tensorArgs(x); err != nil {
			return err
		}
	case *checkpoint.SparseTensor:
		if x.Values == nil {
			return fmt.Errorf("pickle: encoding a sparse tensor: no values")
		}
		e.global("torch._utils", "_rebuild_sparse_tensor")
		e.global(a.Class.Module, a.Class.Name)
		if err := e.sparseArgs(x); err != nil {
			return err
		}
	case *checkpoint.Call:
		if x.Func == nil || x.State != nil {
			return fmt.Errorf("pickle: encoding a tensor with attributes: a call that is not a rebuild")
		}
		e.global(x.Func.Module, x.Func.Name)
		e.global(a.Class.Module, a.Class.Name)
		args := x.Args
		if args == nil {
			args = &checkpoint.Tuple{}
		}
		if err := e.tupleItems(args.Items); err != nil {
			return err
		}
	default:
		return fmt.Errorf("pickle: encoding a tensor with attributes: it wraps a %s", checkpoint.TypeName(a.Tensor))
	}
	if err := e.value(a.State); err != nil {
		return err
	}
	e.write(opTuple)
	e.put()
	e.write(opReduce)
	e.objects[a] = e.put()
	return e.err
}

func (e *Encoder) hooks(h checkpoint.Value) error {
	if h == nil {
		e.emptyOrderedDict()
		return e.err
	}
	return e.value(h)
}

// storage writes the persistent id torch's persistent_id returns for a storage:
// ('storage', torch.<Kind>Storage, key, location, numel), a new tuple each time. A storage
// of a dtype without a storage class goes out as torch.storage.UntypedStorage with its size
// in bytes, as torch 2 writes it.
func (e *Encoder) storage(s *checkpoint.Storage) {
	if !s.Kind.Valid() {
		e.err = fmt.Errorf("pickle: encoding storage %q: invalid storage kind", s.Key)
		return
	}
	e.write(opMark)
	e.str("storage")
	numel := s.Len
	switch {
	case s.Kind == checkpoint.Untyped:
		e.global("torch.storage", "UntypedStorage")
	case s.Kind.HasClass():
		e.global("torch", s.Kind.Class())
	default:
		e.global("torch.storage", "UntypedStorage")
		numel = s.ByteLen()
	}
	e.str(s.Key)
	e.str(s.Location)
	e.int(numel)
	e.write(opTuple)
	e.put()
	e.write(opBinPersID)
}

// parameter writes torch._utils._rebuild_parameter(data, requires_grad, hooks), or
// _rebuild_parameter_with_state(data, requires_grad, hooks, state) when WithState.
func (e *Encoder) parameter(p *checkpoint.Parameter) error {
	if e.memoized(p) {
		return e.err
	}
	if p.Data == nil {
		return fmt.Errorf("pickle: encoding a parameter: no data")
	}
	if err := e.enter(p); err != nil {
		return err
	}
	defer delete(e.building, p)
	name := "_rebuild_parameter"
	if p.WithState {
		name = "_rebuild_parameter_with_state"
	}
	e.global("torch._utils", name)
	n := 3 + len(p.Extra)
	if n > 3 {
		e.write(opMark)
	}
	if err := e.tensor(p.Data); err != nil {
		return err
	}
	e.value(p.RequiresGrad)
	if err := e.hooks(p.Hooks); err != nil {
		return err
	}
	for _, x := range p.Extra {
		if err := e.value(x); err != nil {
			return err
		}
	}
	if n > 3 {
		e.write(opTuple)
	} else {
		e.write(opTuple3)
	}
	e.put()
	e.write(opReduce)
	e.objects[p] = e.put()
	return e.err
}
