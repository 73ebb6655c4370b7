package pickle

import (
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"math"
	"math/big"
	"math/bits"
	"sort"
	"strconv"
	"strings"
)

// decoder turns one pickle into the object model.
type decoder struct {
	record   string // "data.pkl", for errors
	storages seqIndex[*checkpoint.Storage]
	order    []*checkpoint.Storage // storages in order of first appearance
	lim      Limits
	read     *memoSet // the memo slots some GET reads (from scanPickleBytes)
	// entriesHint is how many entries a large dict may be expected to reach: the number of
	// storage records of a zip checkpoint, 0 when not known.
	entriesHint int
	legacy      bool
}

// unpickle runs data, already checked by scanPickle, through the pickle machine
// (machine.go), which records what the pickle asks for and never runs anything.
func (d *decoder) unpickle(data []byte) (v checkpoint.Value, err error) {
	defer func() {
		// The machine checks what it reads, but a corrupt pickle must never crash the
		// command: a panic is reported as the file being corrupt.
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("%w: %s: %s", ErrCorrupt, d.record, brief(r))
		}
	}()
	v, err = d.run(data, d.read)
	if err != nil {
		return nil, d.wrap(err)
	}
	if err := checkTree(v, d.lim); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrLimit, d.record, err)
	}
	return v, nil
}

func (d *decoder) wrap(err error) error {
	if _, ok := err.(*GlobalError); ok {
		return err
	}
	for _, sentinel := range []error{ErrCorrupt, ErrLimit, ErrUnsupported, ErrTruncated} {
		if errors.Is(err, sentinel) {
			return err
		}
	}
	return fmt.Errorf("%w: %s: %s", ErrCorrupt, d.record, brief(err))
}

// brief renders a value taken from the file for an error message: one line, short, with
// control characters escaped.
func brief(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func (d *decoder) findClass(module, name string) (*pyGlobal, error) {
	if !isDottedName(module) || !isDottedName(name) {
		// Not a name Python could import; quoted so that it cannot break the error line.
		return nil, fmt.Errorf("%w: %s: global %q %q is not a Python name", ErrCorrupt, d.record, module, name)
	}
	role, ok := roleOf(module, name)
	if !ok {
		return nil, &GlobalError{Module: module, Name: name, Record: d.record}
	}
	return &pyGlobal{g: &checkpoint.Global{Module: module, Name: name}, role: role}, nil
}

// isDottedName reports whether s is a dotted sequence of ASCII identifiers, the form every
// global in a torch pickle has.
func isDottedName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || part[0] >= '0' && part[0] <= '9' {
			return false
		}
		for _, c := range []byte(part) {
			if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

func (d *decoder) persistentLoad(pid checkpoint.Value) (*checkpoint.Storage, error) {
	if _, ok := pid.(string); ok {
		// Protocol 0 can only write a persistent id as a line of text; torch.load cannot
		// read such a file either.
		return nil, fmt.Errorf("%w: %s: pickle protocol 0 (storage references written as text, which torch.load cannot read back); save the file again with torch.save's default protocol", ErrUnsupported, d.record)
	}
	t, ok := pid.(*checkpoint.Tuple)
	if !ok || len(t.Items) < 5 || t.Items[0] != "storage" {
		return nil, fmt.Errorf("%w: %s: persistent id %s is not a storage reference", ErrCorrupt, d.record, brief(pid))
	}
	cls, ok := t.Items[1].(*checkpoint.Global)
	if ok {
		role, _ := roleOf(cls.Module, cls.Name)
		ok = role == roleStorage
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s: storage reference without a storage class", ErrCorrupt, d.record)
	}
	kind, _ := checkpoint.KindOfClass(cls.Name)
	key, ok1 := t.Items[2].(string)
	loc, ok2 := t.Items[3].(string)
	numel, ok3 := t.Items[4].(int64)
	if n, ok := t.Items[4].(*big.Int); ok && ok1 && n.Sign() > 0 {
		return nil, fmt.Errorf("%w: %s: storage %q claims %s elements", ErrLimit, d.record, key, n)
	}
	if !ok1 || !ok2 || !ok3 || key == "" || numel < 0 {
		return nil, fmt.Errorf("%w: %s: malformed storage reference %s", ErrCorrupt, d.record, brief(pid))
	}
	if len(t.Items) > 5 && t.Items[5] != nil {
		return nil, fmt.Errorf("%w: %s: storage %q is a view into another storage (legacy torch < 0.4 layout)", ErrUnsupported, d.record, key)
	}
	if len(t.Items) > 6 {
		return nil, fmt.Errorf("%w: %s: malformed storage reference %s", ErrCorrupt, d.record, brief(pid))
	}
	if uint64(numel) > math.MaxInt64/uint64(kind.ItemSize()) {
		return nil, fmt.Errorf("%w: %s: storage %q claims %d elements", ErrLimit, d.record, key, numel)
	}
	if s, ok := d.storages.get(key); ok {
		if s.Kind != kind || s.Len != numel {
			return nil, fmt.Errorf("%w: %s: storage %q referenced as %s[%d] and as %s[%d]", ErrCorrupt, d.record, key, s.Kind, s.Len, kind, numel)
		}
		return s, nil
	}
	s := &checkpoint.Storage{Kind: kind, Key: key, Location: loc, Len: numel}
	d.storages.add(key, s)
	d.order = append(d.order, s)
	return s, nil
}

// build gives the value a REDUCE of an allowed global makes from its converted arguments
// and, when the pickle BUILDs it afterwards, its state. It is the one place that knows
// what each allowed global means.
func (d *decoder) build(fn *pyGlobal, args []checkpoint.Value, state checkpoint.Value, hasState bool) (checkpoint.Value, error) {
	g := fn.g
	var out checkpoint.Value
	var err error
	switch fn.role {
	case roleTensor:
		out, err = d.tensor(args)
	case roleTensorV3:
		out, err = d.tensorV3(args)
	case roleQTensor:
		out, err = d.qtensor(args)
	case roleSparse:
		out, err = d.sparse(args)
	case roleParameter:
		out, err = d.parameter(g, args)
	case roleFromType:
		out, err = d.fromType(args)
	case roleTensorOld:
		out, err = d.oldTensor(args)
	case roleMeta:
		out, err = d.meta(g, args)
	case roleNested:
		out, err = d.nested(g, args)
	case roleBytes:
		out, err = d.bytes(g, args)
	case roleOpaque:
		out = &checkpoint.Call{Func: g, Args: &checkpoint.Tuple{Items: args}, State: state}
		hasState = false
	case roleStorage:
		err = fmt.Errorf("%w: %s: storage class %s called directly", ErrUnsupported, d.record, g)
	default:
		what := unsupportedWhat[g.String()]
		if what == "" {
			what = "a value pt2conv does not model"
		}
		err = fmt.Errorf("%w: %s: %s (%s), which torch allows but pt2conv cannot keep yet", ErrUnsupported, d.record, what, g)
	}
	if err != nil {
		return nil, err
	}
	if hasState {
		// torch BUILDs a rebuilt tensor with state only for subclasses and legacy tensors.
		return nil, fmt.Errorf("%w: %s: %s built with extra state", ErrUnsupported, d.record, g)
	}
	return out, nil
}

func (d *decoder) tensor(args []checkpoint.Value) (checkpoint.Value, error) {
	if len(args) < 6 {
		return nil, fmt.Errorf("%w: %s: _rebuild_tensor_v2 with %d arguments", ErrCorrupt, d.record, len(args))
	}
	s, ok := args[0].(*checkpoint.Storage)
	if !ok {
		return nil, fmt.Errorf("%w: %s: tensor without a storage", ErrCorrupt, d.record)
	}
	t, err := d.view(s, args[1:6])
	if err != nil {
		return nil, err
	}
	if len(args) > 6 {
		t.Extra = args[6:]
	}
	if s.Kind == checkpoint.Untyped {
		return nil, fmt.Errorf("%w: %s: _rebuild_tensor_v2 over the untyped storage %q", ErrCorrupt, d.record, s.Key)
	}
	if err := checkSpan(t); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, d.record, err)
	}
	return t, nil
}

// hooks is a backward-hooks argument as the model keeps it: nil for the empty OrderedDict
// torch writes for every tensor, which the encoder writes back for nil, so that an opened
// checkpoint of many tensors does not hold an empty dict for each.
func hooks(v checkpoint.Value) checkpoint.Value {
	if checkpoint.NoHooks(v) {
		return nil
	}
	return v
}

// checkSpan makes sure a tensor's view stays inside its storage, without overflow.
func checkSpan(t *checkpoint.Tensor) error {
	lo, hi := uint64(t.Offset), uint64(t.Offset)+1 // the touched elements are [lo, hi)
	for i, n := range t.Size {
		if n < 0 {
			return fmt.Errorf("tensor of storage %q has negative size %v", t.Storage.Key, t.Size)
		}
		if n == 0 {
			return nil
		}
		st := t.Stride[i]
		mag := uint64(st)
		if st < 0 {
			mag = uint64(-st)
		}
		carry, step := bits.Mul64(mag, uint64(n-1))
		if carry != 0 || step > math.MaxInt64 {
			return fmt.Errorf("tensor of storage %q has sizes %v and strides %v that overflow", t.Storage.Key, t.Size, t.Stride)
		}
		if st < 0 {
			if step > lo {
				return fmt.Errorf("tensor of storage %q reaches below its storage's start", t.Storage.Key)
			}
			lo -= step
		} else {
			if hi+step < hi || hi+step > math.MaxInt64 {
				return fmt.Errorf("tensor of storage %q has sizes %v and strides %v that overflow", t.Storage.Key, t.Size, t.Stride)
			}
			hi += step
		}
	}
	item := uint64(t.Kind().ItemSize())
	if item == 0 {
		return fmt.Errorf("tensor of storage %q has no element type", t.Storage.Key)
	}
	if hi > uint64(t.Storage.ByteLen())/item {
		return fmt.Errorf("tensor (offset %d, size %v, stride %v) reaches outside storage %q of %d elements",
			t.Offset, t.Size, t.Stride, t.Storage.Key, t.Storage.Len)
	}
	return nil
}

func (d *decoder) parameter(g *checkpoint.Global, args []checkpoint.Value) (checkpoint.Value, error) {
	if len(args) < 3 {
		return nil, fmt.Errorf("%w: %s: %s with %d arguments", ErrCorrupt, d.record, g, len(args))
	}
	t, ok := args[0].(*checkpoint.Tensor)
	grad, ok2 := args[1].(bool)
	if !ok || !ok2 {
		return nil, fmt.Errorf("%w: %s: malformed %s", ErrCorrupt, d.record, g)
	}
	p := &checkpoint.Parameter{Data: t, RequiresGrad: grad, Hooks: hooks(args[2]), WithState: g.Name == "_rebuild_parameter_with_state"}
	if len(args) > 3 {
		p.Extra = args[3:]
	}
	return p, nil
}

// bytes undoes the way Python pickles bytes at protocol 2: _codecs.encode(latin-1 text, "latin1").
func (d *decoder) bytes(g *checkpoint.Global, args []checkpoint.Value) (checkpoint.Value, error) {
	if g.Name == "bytes" && len(args) == 0 {
		return checkpoint.Bytes{}, nil
	}
	if g.Name == "encode" && len(args) == 2 {
		text, ok := args[0].(string)
		enc, ok2 := args[1].(string)
		if ok && ok2 && (enc == "latin1" || enc == "latin-1") {
			out := make(checkpoint.Bytes, 0, len(text))
			for _, r := range text {
				if r > 0xff {
					return nil, fmt.Errorf("%w: %s: _codecs.encode of non-latin-1 text", ErrCorrupt, d.record)
				}
				out = append(out, byte(r))
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("%w: %s: %s with arguments pt2conv does not model", ErrUnsupported, d.record, g)
}

// sizeAndStride reads a tensor's size and stride tuples into one allocation: a checkpoint
// of many small tensors makes one fewer per tensor. Each slice is capped at its length.
func sizeAndStride(sizeV, strideV checkpoint.Value) (size, stride []int64, ok bool) {
	st, ok1 := sizeV.(*checkpoint.Tuple)
	tt, ok2 := strideV.(*checkpoint.Tuple)
	if !ok1 || !ok2 {
		return nil, nil, false
	}
	n := len(st.Items)
	buf := make([]int64, n+len(tt.Items))
	for i, it := range st.Items {
		if buf[i], ok = it.(int64); !ok {
			return nil, nil, false
		}
	}
	for i, it := range tt.Items {
		if buf[n+i], ok = it.(int64); !ok {
			return nil, nil, false
		}
	}
	return buf[:n:n], buf[n:], true
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
