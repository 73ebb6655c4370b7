package verify

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// Structure is the exact half of a verification. A conversion changes sizes and strides
// only, so everything else must be bit-identical: every value of the tree (plain values,
// key order, a state_dict's _metadata, optimizer hyper-parameters), every tensor's dtype,
// view and elements, which tensors share a storage, and every byte of every storage. A
// converted weight (and optimizer state shaped like it) must visit the same storage
// elements in the same logical order through its new view as the original did through its
// old one, so it holds the same elements in the same order.
type Structure struct {
	Values   int   `json:"values"`   // plain values compared
	Tensors  int   `json:"tensors"`  // tensors compared
	Reshaped int   `json:"reshaped"` // of which changed shape as a conversion allows
	Storages int   `json:"storages"` // storages compared byte for byte
	Bytes    int64 `json:"bytes"`    // storage bytes compared
	// Differences lists what departs from the original, by path; at most maxDifferences.
	Differences []Difference `json:"differences"`
	// More counts differences found beyond those listed.
	More int `json:"more_differences"`
	// TensorsOnly is set when the two files are of formats whose trees differ (a torch file
	// and a safetensors file): then only the tensors are compared, by name, dtype, shape and
	// elements in row-major order, since containers, plain values and storage sharing cannot
	// survive the change of format.
	TensorsOnly bool `json:"tensors_only"`
}

// Difference is one departure from the original.
type Difference struct {
	Path string `json:"path"`
	What string `json:"what"`
}

func (d Difference) String() string { return d.Path + ": " + d.What }

// Passed reports whether no difference was found.
func (s *Structure) Passed() bool { return len(s.Differences) == 0 && s.More == 0 }

const maxDifferences = 20

// Prove compares conv with orig exactly (see Structure). layers are the converted layers
// (FindLayers); their weights may change shape between [out, C·H·W] and [out, C, H, W],
// and so may any other tensor that has a converted layer's two shapes (optimizer state).
// Storage bytes stream through two small buffers; metadata is compared with maps, in time
// linear in the size of the trees. An error means the bytes could not be read.
func Prove(orig, conv *checkpoint.Checkpoint, layers []Layer) (*Structure, error) {
	s, _, err := prove(orig, conv, layers, 0)
	return s, err
}

// identical maps each storage of the converted file proven byte for byte equal to one of
// the original's to that storage.
type identical map[*checkpoint.Storage]*checkpoint.Storage

// prove is Prove, also returning the storages it found identical. tensors is about how many
// tensors orig holds (0 when not known), to size the prover's indexes up front.
func prove(orig, conv *checkpoint.Checkpoint, layers []Layer, tensors int) (*Structure, identical, error) {
	if acrossFormats(orig, conv) {
		s, err := proveTensors(orig, conv, layers)
		if s != nil {
			s.TensorsOnly = true
		}
		return s, nil, err
	}
	p := &prover{
		s:       &Structure{Differences: []Difference{}},
		same:    make(identical, tensors),
		layers:  make(map[string]bool, len(layers)),
		shapes:  map[[2]string]bool{},
		pairs:   make([]storagePair, 0, tensors),
		pairOf:  make(map[*checkpoint.Storage]int32, tensors),
		pairB:   make(map[*checkpoint.Storage]*checkpoint.Storage, tensors),
		views:   make([]view, 0, tensors),
		visited: map[[2]any]bool{},
	}
	var last *Layer // the previous layer, whose shapes are in p.shapes
	for i := range layers {
		l := &layers[i]
		p.layers[l.Path.String()] = true
		if last == nil || !slices.Equal(l.Original.Size, last.Original.Size) || !slices.Equal(l.Converted.Size, last.Converted.Size) {
			p.shapes[[2]string{brackets(l.Original.Size), brackets(l.Converted.Size)}] = true
			last = l
		}
	}
	p.value("", orig.Root, conv.Root)
	if err := p.storages(orig, conv); err != nil {
		return nil, nil, err
	}
	return p.s, p.same, nil
}

type prover struct {
	s      *Structure
	layers map[string]bool    // converted weights by path
	shapes map[[2]string]bool // (original shape, converted shape) of converted weights
	// pairs are the original's storages in order of first appearance, each with the
	// converted file's storage its tensors use; pairOf finds an original storage's pair,
	// pairB the original storage of a converted one.
	pairs   []storagePair
	pairOf  map[*checkpoint.Storage]int32
	pairB   map[*checkpoint.Storage]*checkpoint.Storage
	views   []view          // tensors over the original storages, listed from their pairs
	visited map[[2]any]bool // container pairs already compared
	same    identical       // storages whose bytes compared equal
}

// storagePair is an original storage, the converted file's storage in its place, and the
// first and last of the views over it (indexes in prover.views).
type storagePair struct {
	a, b        *checkpoint.Storage
	first, last int32
}

// view is a tensor over an original storage, with its counterpart, to name a byte
// difference by path and index; next is the next view over the same storage, or -1.
type view struct {
	path string
	a, b *checkpoint.Tensor
	next int32
}

func (p *prover) differ(path, format string, args ...any) {
	if path == "" {
		path = "<root>"
	}
	if len(p.s.Differences) >= maxDifferences {
		p.s.More++
		return
	}
	p.s.Differences = append(p.s.Differences, Difference{Path: path, What: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "/" + key
}

func (p *prover) value(path string, a, b checkpoint.Value) {
	if reflect.TypeOf(a) != reflect.TypeOf(b) {
		p.differ(path, "a %s in the original, a %s in the converted file", checkpoint.TypeName(a), checkpoint.TypeName(b))
		return
	}
	switch a.(type) {
	case *checkpoint.Dict, *checkpoint.OrderedDict, *checkpoint.List, *checkpoint.Tuple, *checkpoint.Call, *checkpoint.Global:
		key := [2]any{a, b}
		if p.visited[key] {
			return
		}
		p.visited[key] = true
	}
	switch x := a.(type) {
	case *checkpoint.Dict:
		p.entries(path, x.Entries, b.(*checkpoint.Dict).Entries)
	case *checkpoint.OrderedDict:
		y := b.(*checkpoint.OrderedDict)
		p.entries(path, x.Entries, y.Entries)
		// The state torch BUILDs a state_dict with holds _metadata: compare it under the
		// dict's own path ("model/_metadata").
		if x.State != nil || y.State != nil {
			sa, okA := x.State.(*checkpoint.Dict)
			sb, okB := y.State.(*checkpoint.Dict)
			switch {
			case okA && okB:
				p.entries(path, sa.Entries, sb.Entries)
			case okA && y.State == nil:
				p.entries(path, sa.Entries, nil)
			case okB && x.State == nil:
				p.entries(path, nil, sb.Entries)
			default:
				p.value(join(path, "(state)"), x.State, y.State)
			}
		}
	case *checkpoint.List:
		p.items(path, x.Items, b.(*checkpoint.List).Items)
	case *checkpoint.Tuple:
		p.items(path, x.Items, b.(*checkpoint.Tuple).Items)
	case *checkpoint.Global:
		if y := b.(*checkpoint.Global); *x != *y {
			p.differ(path, "global %s in the original, %s in the converted file", x, y)
		}
	case *checkpoint.Call:
		y := b.(*checkpoint.Call)
		p.value(path, x.Func, y.Func)
		p.value(join(path, "(args)"), x.Args, y.Args)
		p.value(join(path, "(state)"), x.State, y.State)
	case *checkpoint.Parameter:
		y := b.(*checkpoint.Parameter)
		if x.RequiresGrad != y.RequiresGrad || x.WithState != y.WithState {
			p.differ(path, "Parameter requires_grad %v, was %v", y.RequiresGrad, x.RequiresGrad)
		}
		p.hooks(path, x.Hooks, y.Hooks)
		p.extra(path, x.Extra, y.Extra)
		if x.Data == nil || y.Data == nil {
			if x.Data != y.Data {
				p.differ(path, "Parameter without data")
			}
			return
		}
		p.tensor(path, x.Data, y.Data)
	case *checkpoint.Tensor:
		p.tensor(path, x, b.(*checkpoint.Tensor))
	case *checkpoint.SparseTensor:
		y := b.(*checkpoint.SparseTensor)
		if x.Layout != y.Layout || x.HasCoalesced != y.HasCoalesced || len(x.Indices) != len(y.Indices) || (x.Values == nil) != (y.Values == nil) {
			p.differ(path, "sparse tensor %s, was %s", y.Layout, x.Layout)
			return
		}
		p.value(join(path, "(size)"), x.Size, y.Size)
		p.value(join(path, "(coalesced)"), x.Coalesced, y.Coalesced)
		for i := range x.Indices {
			p.tensor(join(path, fmt.Sprintf("(indices %d)", i)), x.Indices[i], y.Indices[i])
		}
		if x.Values != nil {
			p.tensor(join(path, "(values)"), x.Values, y.Values)
		}
	case *checkpoint.AttrTensor:
		y := b.(*checkpoint.AttrTensor)
		p.value(join(path, "(class)"), x.Class, y.Class)
		p.value(join(path, "(attributes)"), x.State, y.State)
		p.value(path, x.Tensor, y.Tensor)
	default:
		p.s.Values++
		if !samePlain(a, b) {
			p.differ(path, "%s in the original, %s in the converted file", describeValue(a), describeValue(b))
		}
	}
}

// hooks compares two backward-hooks arguments. No hooks, however a codec models them (nil
// or an empty OrderedDict), are the same and not a value to count.
func (p *prover) hooks(path string, a, b checkpoint.Value) {
	if checkpoint.NoHooks(a) && checkpoint.NoHooks(b) {
		return
	}
	p.value(join(path, "(hooks)"), a, b)
}

// extra compares the arguments a rebuild call takes after its usual ones, when either
// side has some.
func (p *prover) extra(path string, a, b []checkpoint.Value) {
	if len(a) > 0 || len(b) > 0 {
		p.items(join(path, "(extra)"), a, b)
	}
}

// samePlain compares plain values bit for bit: -0.0 and +0.0 differ, NaNs are compared by
// their payload.
func samePlain(a, b checkpoint.Value) bool {
	switch x := a.(type) {
	case float64:
		return math.Float64bits(x) == math.Float64bits(b.(float64))
	case *big.Int:
		return x.Cmp(b.(*big.Int)) == 0
	case checkpoint.Bytes:
		return bytes.Equal(x, b.(checkpoint.Bytes))
	case nil:
		return true
	}
	if !reflect.TypeOf(a).Comparable() {
		return reflect.DeepEqual(a, b)
	}
	return a == b
}

func describeValue(v checkpoint.Value) string {
	var s string
	switch x := v.(type) {
	case string:
		s = fmt.Sprintf("%q", x)
	case float64:
		s = fmt.Sprintf("%v (bits %#016x)", x, math.Float64bits(x))
	case checkpoint.Bytes:
		s = fmt.Sprintf("bytes %q", []byte(x))
	case nil:
		s = "None"
	default:
		s = fmt.Sprintf("%v", x)
	}
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// entryKey identifies a dict key: its type and its text, so that 1 and "1" differ.
type entryKey struct {
	typ  reflect.Type
	text string
}

func keyOf(e checkpoint.Entry) entryKey {
	return entryKey{reflect.TypeOf(e.Key), checkpoint.KeyString(e.Key)}
}

func (p *prover) entries(path string, a, b []checkpoint.Entry) {
	if len(a) == 0 && len(b) == 0 {
		return
	}
	if stringKeys(a) && stringKeys(b) { // a state_dict: keyed by their text alone
		matchEntries(p, path, a, b, func(e checkpoint.Entry) string { return e.Key.(string) }, func(k string) string { return k })
		return
	}
	matchEntries(p, path, a, b, keyOf, func(k entryKey) string { return k.text })
}

func stringKeys(entries []checkpoint.Entry) bool {
	for _, e := range entries {
		if _, ok := e.Key.(string); !ok {
			return false
		}
	}
	return true
}

// matchEntries compares the entries of two dicts by key (key makes it, text names it in a
// path): missing, added and reordered keys, and the values of the keys both hold.
func matchEntries[K comparable](p *prover, path string, a, b []checkpoint.Entry, key func(checkpoint.Entry) K, text func(K) string) {
	inB := make(map[K]int, len(b))
	for i, e := range b {
		inB[key(e)] = i
	}
	// matched[j]: a key of a is the one inB finds at j.
	matched := make([]bool, len(b))
	reordered := false
	next := 0 // position in b expected for the next key of a found there
	for _, e := range a {
		k := key(e)
		j, ok := inB[k]
		sub := join(path, text(k))
		if !ok {
			p.differ(sub, "missing from the converted file")
			continue
		}
		matched[j] = true
		if j < next && !reordered {
			reordered = true
			p.differ(sub, "keys are in another order in the converted file")
		}
		next = j + 1
		p.value(sub, e.Value, b[j].Value)
	}
	for _, e := range b {
		k := key(e)
		if !matched[inB[k]] {
			p.differ(join(path, text(k)), "not in the original")
		}
	}
}

func (p *prover) items(path string, a, b []checkpoint.Value) {
	if len(a) != len(b) {
		p.differ(path, "%d items in the converted file, %d in the original", len(b), len(a))
	}
	for i := range min(len(a), len(b)) {
		p.value(join(path, fmt.Sprint(i)), a[i], b[i])
	}
}

func (p *prover) tensor(path string, a, b *checkpoint.Tensor) {
	p.s.Tensors++
	if a.Storage == nil || b.Storage == nil {
		if a.Storage != b.Storage {
			p.differ(path, "tensor without a storage")
		}
		return
	}
	if a.Storage.Kind != b.Storage.Kind {
		p.differ(path, "dtype %s, was %s", b.Storage.Kind, a.Storage.Kind)
		return
	}
	if a.Storage.Location != b.Storage.Location {
		p.differ(path, "device %q, was %q", b.Storage.Location, a.Storage.Location)
	}
	if a.RequiresGrad != b.RequiresGrad {
		p.differ(path, "requires_grad %v, was %v", b.RequiresGrad, a.RequiresGrad)
	}
	if a.Kind() != b.Kind() {
		p.differ(path, "dtype %s, was %s", b.Kind(), a.Kind())
		return
	}
	if (a.Quant == nil) != (b.Quant == nil) {
		p.differ(path, "quantized: %v, was %v", b.Quant != nil, a.Quant != nil)
		return
	}
	if q, r := a.Quant, b.Quant; q != nil {
		if q.Scheme != r.Scheme {
			p.differ(path, "quantization scheme %s, was %s", r.Scheme, q.Scheme)
		}
		p.value(join(path, "(scale)"), q.Scale, r.Scale)
		p.value(join(path, "(zero point)"), q.ZeroPoint, r.ZeroPoint)
		p.value(join(path, "(scales)"), q.Scales, r.Scales)
		p.value(join(path, "(zero points)"), q.ZeroPoints, r.ZeroPoints)
		p.value(join(path, "(axis)"), q.Axis, r.Axis)
	}
	if a.OldForm != b.OldForm {
		p.differ(path, "saved in torch 0.3's form: %v, was %v", b.OldForm, a.OldForm)
	}
	p.hooks(path, a.Hooks, b.Hooks)
	p.extra(path, a.Extra, b.Extra)
	switch {
	case slices.Equal(a.Size, b.Size):
		if !slices.Equal(a.Stride, b.Stride) || a.Offset != b.Offset {
			p.differ(path, "view size %s stride %s offset %d, was stride %s offset %d", shapeText(b.Size), shapeText(b.Stride), b.Offset, shapeText(a.Stride), a.Offset)
			return
		}
	case p.layers[path] || p.shapes[[2]string{brackets(a.Size), brackets(b.Size)}]:
		p.s.Reshaped++
		if a.Offset != b.Offset {
			p.differ(path, "storage offset %d, was %d", b.Offset, a.Offset)
			return
		}
		if i, pa, pb, same := sameOrder(a, b); !same {
			p.differ(path, "the new view %s stride %s reads storage element %d at flat index %d, the original view %s stride %s reads element %d: the elements are not in the same order",
				shapeText(b.Size), shapeText(b.Stride), pb, i, shapeText(a.Size), shapeText(a.Stride), pa)
			return
		}
	default:
		p.differ(path, "shape %s, was %s (not a conversion of a converted layer)", shapeText(b.Size), shapeText(a.Size))
		return
	}
	sa, sb := a.Storage, b.Storage
	i, seen := p.pairOf[sa]
	switch {
	case seen && p.pairs[i].b != sb:
		p.differ(path, "the original's storage %q is one storage there; here it is split (storage %q and %q)", sa.Key, p.pairs[i].b.Key, sb.Key)
		return
	case p.pairB[sb] != nil && p.pairB[sb] != sa:
		p.differ(path, "shares storage %q with tensors it did not share it with in the original (storage %q there)", sb.Key, sa.Key)
		return
	}
	v := int32(len(p.views))
	p.views = append(p.views, view{path, a, b, -1})
	if !seen {
		i = int32(len(p.pairs))
		p.pairOf[sa], p.pairB[sb] = i, sa
		p.pairs = append(p.pairs, storagePair{sa, sb, v, v})
		return
	}
	p.views[p.pairs[i].last].next = v
	p.pairs[i].last = v
}

// sameOrder reports whether the two views visit the same storage positions in the same
// row-major order, and if not, the first flat index where they part and the positions there.
func sameOrder(a, b *checkpoint.Tensor) (int64, int64, int64, bool) {
	n := a.NumElements()
	if n != b.NumElements() {
		return 0, 0, 0, false
	}
	var roomA, roomB [8]int64
	if n == 0 || slices.Equal(canonical(roomA[:0], a), canonical(roomB[:0], b)) {
		return 0, 0, 0, true
	}
	// Different canonical forms can still describe one order only in degenerate views; walk
	// both to find where they part.
	pa, pb := positions(a), positions(b)
	for i := int64(0); i < n; i++ {
		x, y := pa(), pb()
		if x != y {
			return i, x, y, false
		}
	}
	return 0, 0, 0, true
}

// canonical is a view's (size, stride) pairs with size-1 dimensions dropped and dimensions
// that continue one another merged: two views with equal canonical forms read the same
// storage positions in the same order. It appends them to out.
func canonical(out []int64, t *checkpoint.Tensor) []int64 {
	// size, stride, size, stride, ...
	for d, n := range t.Size {
		if n == 1 {
			continue
		}
		if k := len(out); k > 0 && out[k-1] == t.Stride[d]*n {
			out[k-2] *= n
			out[k-1] = t.Stride[d]
			continue
		}
		out = append(out, n, t.Stride[d])
	}
	return out
}

// positions returns a function yielding the view's storage positions in row-major order.
func positions(t *checkpoint.Tensor) func() int64 {
	idx := make([]int64, len(t.Size))
	pos := t.Offset
	return func() int64 {
		cur := pos
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			pos += t.Stride[d]
			if idx[d] < t.Size[d] {
				break
			}
			pos -= t.Stride[d] * idx[d]
			idx[d] = 0
		}
		return cur
	}
}

// shape formats sizes or strides as the command line prints them: (1000, 512, 1, 1).
func shapeText(v []int64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatInt(x, 10)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func brackets(v []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, x)
	}
	b.WriteByte(']')
	return b.String()
}
