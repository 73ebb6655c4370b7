package pickle

import "github.com/pt2conv/pt2conv/checkpoint"

import "fmt"

// The torch objects of a checkpoint, written as torch's own __reduce_ex__ methods
// describe them.

// emptyOrderedDict writes a fresh OrderedDict(), which torch passes as backward hooks.
func (e *Encoder) emptyOrderedDict() {
	e.global("collections", "OrderedDict")
	e.write(opEmptyTuple, opReduce)
	e.put()
}

func int64sValues(xs []int64) []checkpoint.Value {
	vs := make([]checkpoint.Value, len(xs))
	for i, x := range xs {
		vs[i] = x
	}
	return vs
}

// tensor writes torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
// requires_grad, hooks, extra...), as Tensor.__reduce_ex__ produces it.
func (e *Encoder) tensor(t *checkpoint.Tensor) error {
	if e.memoized(t) {
		return e.err
	}
	if t.Storage == nil {
		return fmt.Errorf("pickle: encoding a tensor: no storage")
	}
	if len(t.Size) != len(t.Stride) {
		return fmt.Errorf("pickle: encoding a tensor: %d sizes but %d strides", len(t.Size), len(t.Stride))
	}
	if err := e.enter(t); err != nil {
		return err
	}
	defer delete(e.building, t)
	e.global("torch._utils", "_rebuild_tensor_v2")
	e.write(opMark)
	e.storage(t.Storage)
	e.int(t.Offset)
	if err := e.tupleItems(int64sValues(t.Size)); err != nil {
		return err
	}
	if err := e.tupleItems(int64sValues(t.Stride)); err != nil {
		return err
	}
	e.value(t.RequiresGrad)
	if err := e.hooks(t.Hooks); err != nil {
		return err
	}
	for _, x := range t.Extra {
		if err := e.value(x); err != nil {
			return err
		}
	}
	e.write(opTuple)
	e.put()
	e.write(opReduce)
	e.objects[t] = e.put()
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
// ('storage', torch.<Kind>Storage, key, location, numel), a new tuple each time.
func (e *Encoder) storage(s *checkpoint.Storage) {
	if !s.Kind.Valid() {
		e.err = fmt.Errorf("pickle: encoding storage %q: invalid storage kind", s.Key)
		return
	}
	if s.Kind.Class() == "" {
		e.err = fmt.Errorf("pickle: encoding storage %q: %w: %s tensors have no typed storage class (torch 2.x writes them with _rebuild_tensor_v3, which this encoder does not)", s.Key, ErrUnsupported, s.Kind)
		return
	}
	e.write(opMark)
	e.str("storage")
	e.global("torch", s.Kind.Class())
	e.str(s.Key)
	e.str(s.Location)
	e.int(s.Len)
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
