package rewrite

import (
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"slices"
	"strconv"
	"strings"
)

// Apply returns a checkpoint whose tree has the plan's changes. c is not modified: new
// containers are made along the changed paths only, every other object is shared with c,
// and each changed tensor is a new *checkpoint.Tensor over the same storage and offset. A
// tensor object found under two paths is replaced only where the plan changes it; both
// paths still share its storage.
func Apply(c *checkpoint.Checkpoint, p *Plan) (*checkpoint.Checkpoint, error) {
	root := &trie{}
	for i := range p.Changes {
		ch := &p.Changes[i]
		n := root
		for _, part := range ch.Path {
			n = n.child(part)
		}
		if n.change != nil {
			return nil, fmt.Errorf("%w: %s is changed twice", ErrStalePlan, ch.Path)
		}
		n.change = ch
	}
	a := applier{containers: map[checkpoint.Value][]rebuilt{}, tensors: map[tensorKey]*checkpoint.Tensor{}}
	newRoot, err := a.rebuild(nil, c.Root, root)
	if err != nil {
		return nil, err
	}
	return c.WithRoot(newRoot), nil
}

// trie holds the changes by path.
type trie struct {
	children map[string]*trie
	keys     []string // in insertion order, for a stable signature
	change   *Change
	sig      string
}

func (t *trie) child(k string) *trie {
	if t.children == nil {
		t.children = map[string]*trie{}
	}
	n := t.children[k]
	if n == nil {
		n = &trie{}
		t.children[k] = n
		t.keys = append(t.keys, k)
	}
	return n
}

// signature identifies the changes below a node relative to it, so that a container shared
// by two paths that change alike stays one object in the new tree.
func (t *trie) signature() string {
	if t.sig != "" {
		return t.sig
	}
	var b strings.Builder
	if t.change != nil {
		fmt.Fprintf(&b, "%v%v", t.change.NewSize, t.change.NewStride)
	}
	keys := slices.Clone(t.keys)
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "{%q:%s}", k, t.children[k].signature())
	}
	t.sig = b.String()
	return t.sig
}

// rebuilt is a container made new for the changes below a node of the trie.
type rebuilt struct {
	changes *trie
	value   checkpoint.Value
}

type tensorKey struct {
	old  *checkpoint.Tensor
	view string
}

type applier struct {
	// containers are the containers made, by the old one. A container reached again
	// under changes with the same signature is made once; signatures are worked out only
	// then, since nearly every container is reached once.
	containers map[checkpoint.Value][]rebuilt
	tensors    map[tensorKey]*checkpoint.Tensor
	params     map[tensorKey]*checkpoint.Parameter
	attrs      map[tensorKey]*checkpoint.AttrTensor
}

func (a *applier) rebuild(path checkpoint.Path, v checkpoint.Value, n *trie) (checkpoint.Value, error) {
	if n.change != nil {
		if len(n.children) > 0 {
			return nil, fmt.Errorf("%w: %s is changed and has changes below it", ErrStalePlan, checkpoint.Path(path))
		}
		return a.replaceTensor(path, v, n.change)
	}
	switch v.(type) {
	case *checkpoint.Dict, *checkpoint.OrderedDict, *checkpoint.List, *checkpoint.Tuple:
	default: // checked before v is used as a map key: not every value is comparable
		return nil, fmt.Errorf("%w: %s is a %T, the plan expects a container there", ErrStalePlan, checkpoint.Path(path), v)
	}
	for _, r := range a.containers[v] {
		if r.changes == n || r.changes.signature() == n.signature() {
			return r.value, nil
		}
	}
	used := 0
	visit := func(k string, child checkpoint.Value) (checkpoint.Value, bool, error) {
		cn := n.children[k]
		if cn == nil {
			return child, false, nil
		}
		used++
		nv, err := a.rebuild(append(path[:len(path):len(path)], k), child, cn)
		return nv, true, err
	}
	var out checkpoint.Value
	var err error
	switch d := v.(type) {
	case *checkpoint.Dict:
		var entries []checkpoint.Entry
		entries, err = rebuildEntries(d.Entries, visit)
		out = &checkpoint.Dict{Entries: entries}
	case *checkpoint.OrderedDict:
		var entries []checkpoint.Entry
		entries, err = rebuildEntries(d.Entries, visit)
		out = &checkpoint.OrderedDict{Entries: entries, State: d.State}
	case *checkpoint.List:
		var items []checkpoint.Value
		items, err = rebuildItems(d.Items, visit)
		out = &checkpoint.List{Items: items}
	case *checkpoint.Tuple:
		var items []checkpoint.Value
		items, err = rebuildItems(d.Items, visit)
		out = &checkpoint.Tuple{Items: items}
	}
	if err != nil {
		return nil, err
	}
	if used != len(n.children) {
		for _, k := range n.keys {
			if !hasKey(v, k) {
				return nil, fmt.Errorf("%w: %s not found", ErrStalePlan, append(path[:len(path):len(path)], k))
			}
		}
	}
	a.containers[v] = append(a.containers[v], rebuilt{n, out})
	return out, nil
}

type visitFunc func(k string, child checkpoint.Value) (checkpoint.Value, bool, error)

func rebuildEntries(in []checkpoint.Entry, visit visitFunc) ([]checkpoint.Entry, error) {
	out := slices.Clone(in)
	for i, e := range in {
		nv, changed, err := visit(checkpoint.KeyString(e.Key), e.Value)
		if err != nil {
			return nil, err
		}
		if changed {
			out[i].Value = nv
		}
	}
	return out, nil
}

func rebuildItems(in []checkpoint.Value, visit visitFunc) ([]checkpoint.Value, error) {
	out := slices.Clone(in)
	for i, it := range in {
		nv, changed, err := visit(strconv.Itoa(i), it)
		if err != nil {
			return nil, err
		}
		if changed {
			out[i] = nv
		}
	}
	return out, nil
}

func hasKey(v checkpoint.Value, k string) bool {
	switch d := v.(type) {
	case *checkpoint.Dict:
		return slices.ContainsFunc(d.Entries, func(e checkpoint.Entry) bool { return checkpoint.KeyString(e.Key) == k })
	case *checkpoint.OrderedDict:
		return slices.ContainsFunc(d.Entries, func(e checkpoint.Entry) bool { return checkpoint.KeyString(e.Key) == k })
	case *checkpoint.List:
		i, err := strconv.Atoi(k)
		return err == nil && i >= 0 && i < len(d.Items)
	case *checkpoint.Tuple:
		i, err := strconv.Atoi(k)
		return err == nil && i >= 0 && i < len(d.Items)
	}
	return false
}

// replaceTensor makes the changed tensor (or parameter) at path. A tensor object changed
// alike under several paths becomes one new object, so tied weights stay tied.
func (a *applier) replaceTensor(path checkpoint.Path, v checkpoint.Value, ch *Change) (checkpoint.Value, error) {
	old, ok := checkpoint.AsTensor(v)
	if !ok {
		return nil, fmt.Errorf("%w: %s is a %T, not a tensor", ErrStalePlan, path, v)
	}
	if !slices.Equal(old.Size, ch.OldSize) || !slices.Equal(old.Stride, ch.OldStride) {
		return nil, fmt.Errorf("%w: %s has sizes %s strides %s, the plan expects %s %s",
			ErrStalePlan, path, shape(old.Size), shape(old.Stride), shape(ch.OldSize), shape(ch.OldStride))
	}
	if err := checkView(ch); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrStalePlan, path, err)
	}
	key := tensorKey{old, viewKey(ch.NewSize, ch.NewStride)}
	t := once(&a.tensors, key, func() *checkpoint.Tensor {
		nt := *old
		nt.Size = slices.Clone(ch.NewSize)
		nt.Stride = slices.Clone(ch.NewStride)
		return &nt
	})
	switch w := v.(type) {
	case *checkpoint.AttrTensor:
		// The attributes stay with the tensor, as torch keeps them across a view.
		return once(&a.attrs, key, func() *checkpoint.AttrTensor {
			cp := *w
			cp.Tensor = t
			return &cp
		}), nil
	case *checkpoint.Parameter:
		return once(&a.params, key, func() *checkpoint.Parameter {
			cp := *w
			cp.Data = t
			return &cp
		}), nil
	}
	return t, nil
}

// viewKey tells new views of one tensor apart: sizes and strides.
func viewKey(size, stride []int64) string {
	var b [64]byte
	k := b[:0]
	for _, d := range [2][]int64{size, stride} {
		for _, n := range d {
			k = append(strconv.AppendInt(k, n, 10), ',')
		}
		k = append(k, ';')
	}
	return string(k)
}

// once returns (*m)[key], making it with build the first time: a tensor reached twice (shared,
// or a parameter's data seen again) gets one new value, so sharing survives the rewrite.
func once[V any](m *map[tensorKey]*V, key tensorKey, build func() *V) *V {
	if *m == nil {
		*m = map[tensorKey]*V{}
	}
	v := (*m)[key]
	if v == nil {
		v = build()
		(*m)[key] = v
	}
	return v
}

// checkView refuses a change that is not a pure view: the new sizes must hold as many
// elements and touch exactly the elements the old ones did.
func checkView(ch *Change) error {
	if len(ch.NewSize) != len(ch.NewStride) {
		return fmt.Errorf("new sizes %s and strides %s differ in length", shape(ch.NewSize), shape(ch.NewStride))
	}
	want, ok := viewOf(ch.OldSize, ch.OldStride, ch.NewSize)
	if !ok || !slices.Equal(want, ch.NewStride) {
		return fmt.Errorf("%s strides %s is not a view of %s strides %s", shape(ch.NewSize), shape(ch.NewStride), shape(ch.OldSize), shape(ch.OldStride))
	}
	return nil
}

// viewOf gives the strides a change between 2-D and 4-D that keeps dimension 0 must have.
func viewOf(oldSize, oldStride, newSize []int64) ([]int64, bool) {
	switch {
	case len(oldSize) == 2 && len(newSize) == 4 && newSize[0] == oldSize[0] &&
		productIs(oldSize[1], newSize[1], newSize[2], newSize[3]):
		_, s := convView(oldSize, oldStride, newSize[1], newSize[2], newSize[3])
		return s, true
	case len(oldSize) == 4 && len(newSize) == 2 && newSize[0] == oldSize[0]:
		size, s, ok := linearView(oldSize, oldStride)
		return s, ok && size[1] == newSize[1]
	}
	return nil, false
}
