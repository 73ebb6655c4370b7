package checkpoint

import (
	"errors"
	"fmt"
	"iter"
	"math/big"
	"strconv"
	"strings"
)

// Path locates a value in the object tree: the dict keys and list/tuple indices leading to
// it, e.g. ["model", "classifier.0.weight"].
type Path []string

// String joins the path with "/", e.g. "model/classifier.0.weight".
func (p Path) String() string { return strings.Join(p, "/") }

// KeyString renders a dict key as a path element.
func KeyString(k Value) string {
	switch k := k.(type) {
	case string:
		return k
	case int64:
		return strconv.FormatInt(k, 10)
	case *big.Int:
		return k.String()
	case bool:
		if k {
			return "True"
		}
		return "False"
	case nil:
		return "None"
	case float64:
		return strconv.FormatFloat(k, 'g', -1, 64)
	}
	return fmt.Sprintf("<%s>", TypeName(k))
}

// SkipChildren, returned by a WalkFunc, skips the value's children.
var SkipChildren = fmt.Errorf("skip children")

// WalkFunc is called by Walk for every value. The path must not be retained (copy it).
type WalkFunc func(path Path, v Value) error

// Walk visits every value below root in file order, depth first, parents before children.
// Dict values are visited with their key appended to the path, list and tuple items with
// their index; tensors, parameters and opaque calls are leaves. A container reached twice
// (a shared object) is visited each time; cycles are cut.
func Walk(root Value, fn WalkFunc) error {
	w := walker{fn: fn, active: map[any]bool{}}
	// The paths handed to fn share one buffer, each child's written over its previous
	// sibling's: walking a dict of many tensors makes no slice per value.
	err := w.walk(make(Path, 0, 16), root)
	if err == SkipChildren {
		err = nil
	}
	return err
}

type walker struct {
	fn     WalkFunc
	active map[any]bool // containers on the current path, to cut cycles
}

func (w *walker) walk(path Path, v Value) error {
	if err := w.fn(path, v); err != nil {
		if err == SkipChildren {
			return nil
		}
		return err
	}
	entries, items, ok := Children(v)
	if !ok {
		return nil
	}
	if w.active[v] {
		return nil
	}
	w.active[v] = true
	defer delete(w.active, v)
	for _, e := range entries {
		if err := w.walk(append(path, KeyString(e.Key)), e.Value); err != nil {
			return err
		}
	}
	for i, it := range items {
		if err := w.walk(append(path, strconv.Itoa(i)), it); err != nil {
			return err
		}
	}
	return nil
}

// Children returns a container's entries (dicts) or items (lists, tuples); ok is false
// for values that hold no others.
func Children(v Value) (entries []Entry, items []Value, ok bool) {
	switch c := v.(type) {
	case *Dict:
		return c.Entries, nil, true
	case *OrderedDict:
		return c.Entries, nil, true
	case *List:
		return nil, c.Items, true
	case *Tuple:
		return nil, c.Items, true
	}
	return nil, nil, false
}

// NamedTensor is a tensor with the path it was found at.
type NamedTensor struct {
	Path   Path
	Tensor *Tensor
	// Parameter is set when the tensor is wrapped in an nn.Parameter.
	Parameter *Parameter
	// Attrs is set when the tensor carries Python attributes.
	Attrs *AttrTensor
}

// Tensors lists every tensor (and parameter) below root with its path, in file order.
// A tensor object reachable by two paths is listed under both.
func Tensors(root Value) []NamedTensor {
	var out []NamedTensor
	var paths pathArena
	for nt := range AllTensors(root) {
		nt.Path = paths.clone(nt.Path)
		out = append(out, nt)
	}
	return out
}

// AllTensors yields what Tensors lists, one at a time, without making the list: for a
// caller that indexes the tensors, the list would be as large as its index. Each yielded
// Path is valid only until the next, as a WalkFunc's is (copy it to keep it).
func AllTensors(root Value) iter.Seq[NamedTensor] {
	return func(yield func(NamedTensor) bool) {
		_ = Walk(root, func(path Path, v Value) error {
			var nt NamedTensor
			switch t := v.(type) {
			case *Tensor:
				nt = NamedTensor{Path: path, Tensor: t}
			case *Parameter:
				nt = NamedTensor{Path: path, Tensor: t.Data, Parameter: t}
			case *AttrTensor:
				d, _ := t.Dense()
				nt = NamedTensor{Path: path, Tensor: d, Attrs: t}
			}
			if nt.Tensor != nil && !yield(nt) {
				return errStop
			}
			return nil
		})
	}
}

// errStop ends a walk whose consumer has seen enough.
var errStop = errors.New("stop")

// pathArena copies paths into shared chunks, one allocation for many paths.
type pathArena struct{ chunk Path }

func (a *pathArena) clone(p Path) Path {
	if cap(a.chunk)-len(a.chunk) < len(p) {
		a.chunk = make(Path, 0, max(1024, len(p)))
	}
	n := len(a.chunk)
	a.chunk = append(a.chunk, p...)
	return a.chunk[n:len(a.chunk):len(a.chunk)]
}

// Storages lists the distinct storages below root in order of first appearance, which is
// the order torch writes them in. Storages of the parts of quantized and sparse tensors
// count (see Parts).
func Storages(root Value) []*Storage {
	// Sized by a first pass: it costs far less than growing the set and the list.
	n := 0
	for range StorageRefs(root) {
		n++
	}
	out := make([]*Storage, 0, n)
	seen := make(map[*Storage]struct{}, n)
	for s := range StorageRefs(root) {
		if _, ok := seen[s]; !ok {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}

// StorageRefs yields the storage of every tensor and tensor part (see Parts) below root, in
// the order Walk meets them, once per reference: a storage two tensors share comes twice.
func StorageRefs(root Value) iter.Seq[*Storage] {
	return func(yield func(*Storage) bool) {
		_ = Walk(root, func(_ Path, v Value) error {
			if t, ok := v.(*Tensor); ok && t.Quant == nil {
				// The one part of a plain tensor, without making Parts' list.
				if t.Storage != nil && !yield(t.Storage) {
					return errStop
				}
				return nil
			}
			for _, t := range Parts(v) {
				if t.Storage != nil && !yield(t.Storage) {
					return errStop
				}
			}
			return nil
		})
	}
}

// MarshalText renders the path as its String, so JSON reports show "model/fc.weight".
func (p Path) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a path written by MarshalText. Keys that themselves contain "/" do not
// survive the round trip.
func (p *Path) UnmarshalText(text []byte) error {
	*p = nil
	if len(text) > 0 {
		*p = strings.Split(string(text), "/")
	}
	return nil
}
