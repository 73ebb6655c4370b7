package pickle

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"math"
	"math/big"
	"math/bits"
	"sort"
	"strconv"
	"strings"

	gopickle "github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// pyGlobal is what the pickle machine holds for an allowed global. Calling it records the
// call; the conversion pass decides what the call means, so nothing runs while unpickling.
type pyGlobal struct {
	g    *checkpoint.Global
	role globalRole
}

func (p *pyGlobal) Call(args ...any) (any, error) {
	return &pyCall{fn: p, args: args}, nil
}

// pyCall is a REDUCE of an allowed global, with the state of a later BUILD.
type pyCall struct {
	fn       *pyGlobal
	args     []any
	state    any
	hasState bool
}

func (c *pyCall) PySetState(state any) error {
	if c.hasState {
		return fmt.Errorf("%w: %s built twice", ErrCorrupt, c.fn.g)
	}
	c.state, c.hasState = state, true
	return nil
}

// decoder turns one pickle into the object model.
type decoder struct {
	record   string // "data.pkl", for errors
	storages map[string]*checkpoint.Storage
	order    []*checkpoint.Storage // storages in order of first appearance
	lim      Limits
	seen     map[any]checkpoint.Value // gopickle object -> converted value, keeps sharing and cuts cycles
	objects  int                      // memo entries the pickle makes: about len(seen), to size it once
	legacy   bool
}

// unpickle runs data (already checked by scanPickle) through gopickle with hooks that
// only record what the pickle asks for, then converts the result.
func (d *decoder) unpickle(data []byte) (v checkpoint.Value, err error) {
	defer func() {
		// gopickle panics on some malformed inputs (unhashable dict keys, ...): report them
		// as a corrupt pickle rather than crash.
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("%w: %s: %s", ErrCorrupt, d.record, brief(r))
		}
	}()
	raw, err := d.load(data)
	if err != nil {
		return nil, d.wrap(err)
	}
	d.seen = make(map[any]checkpoint.Value, d.objects)
	v, err = d.convert(raw, 0)
	if err != nil {
		return nil, err
	}
	if n := walkSize(v, d.lim.MaxObjects); n > d.lim.MaxObjects {
		return nil, fmt.Errorf("%w: %s: objects shared so often that walking them visits more than %d values", ErrLimit, d.record, d.lim.MaxObjects)
	}
	return v, nil
}

// load runs the pickle machine. Its memo and input die when it returns, before convert
// builds the object model, so the two trees are not held together with them.
func (d *decoder) load(data []byte) (any, error) {
	u := gopickle.NewUnpickler(bytes.NewReader(data))
	u.FindClass = d.findClass
	u.PersistentLoad = d.persistentLoad
	return u.Load()
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

func (d *decoder) findClass(module, name string) (any, error) {
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

func (d *decoder) persistentLoad(pid any) (any, error) {
	if _, ok := pid.(string); ok {
		// Protocol 0 can only write a persistent id as a line of text; torch.load cannot
		// read such a file either.
		return nil, fmt.Errorf("%w: %s: pickle protocol 0 (storage references written as text, which torch.load cannot read back); save the file again with torch.save's default protocol", ErrUnsupported, d.record)
	}
	t, ok := pid.(*types.Tuple)
	if !ok || t.Len() < 5 || t.Get(0) != "storage" {
		return nil, fmt.Errorf("%w: %s: persistent id %s is not a storage reference", ErrCorrupt, d.record, brief(pid))
	}
	cls, ok := t.Get(1).(*pyGlobal)
	if !ok || cls.role != roleStorage {
		return nil, fmt.Errorf("%w: %s: storage reference without a storage class", ErrCorrupt, d.record)
	}
	kind, _ := checkpoint.KindOfClass(cls.g.Name)
	key, ok1 := t.Get(2).(string)
	loc, ok2 := t.Get(3).(string)
	numel, ok3 := t.Get(4).(int)
	if n, ok := t.Get(4).(*big.Int); ok && ok1 && n.Sign() > 0 {
		return nil, fmt.Errorf("%w: %s: storage %q claims %s elements", ErrLimit, d.record, key, n)
	}
	if !ok1 || !ok2 || !ok3 || key == "" || numel < 0 {
		return nil, fmt.Errorf("%w: %s: malformed storage reference %s", ErrCorrupt, d.record, brief(pid))
	}
	if t.Len() > 5 && t.Get(5) != nil {
		return nil, fmt.Errorf("%w: %s: storage %q is a view into another storage (legacy torch < 0.4 layout)", ErrUnsupported, d.record, key)
	}
	if t.Len() > 6 {
		return nil, fmt.Errorf("%w: %s: malformed storage reference %s", ErrCorrupt, d.record, brief(pid))
	}
	if uint64(numel) > math.MaxInt64/uint64(kind.ItemSize()) {
		return nil, fmt.Errorf("%w: %s: storage %q claims %d elements", ErrLimit, d.record, key, numel)
	}
	if s, ok := d.storages[key]; ok {
		if s.Kind != kind || s.Len != int64(numel) {
			return nil, fmt.Errorf("%w: %s: storage %q referenced as %s[%d] and as %s[%d]", ErrCorrupt, d.record, key, s.Kind, s.Len, kind, numel)
		}
		return s, nil
	}
	s := &checkpoint.Storage{Kind: kind, Key: key, Location: loc, Len: int64(numel)}
	d.storages[key] = s
	d.order = append(d.order, s)
	return s, nil
}

// convert maps gopickle's values to the object model.
func (d *decoder) convert(v any, depth int) (checkpoint.Value, error) {
	if depth > d.lim.MaxDepth {
		return nil, fmt.Errorf("%w: %s: objects nested deeper than %d levels", ErrLimit, d.record, d.lim.MaxDepth)
	}
	switch x := v.(type) {
	case nil, bool, float64, string, *checkpoint.Storage:
		return x, nil
	case int:
		return int64(x), nil
	case *big.Int:
		if x.IsInt64() {
			return x.Int64(), nil
		}
		return x, nil
	case []byte:
		return checkpoint.Bytes(x), nil
	}
	if out, ok := d.seen[v]; ok {
		return out, nil
	}
	switch x := v.(type) {
	case *types.List:
		l := &checkpoint.List{Items: make([]checkpoint.Value, 0, len(*x))}
		d.seen[v] = l
		for _, it := range *x {
			c, err := d.convert(it, depth+1)
			if err != nil {
				return nil, err
			}
			l.Items = append(l.Items, c)
		}
		*x = nil // see release
		return l, nil
	case *types.Tuple:
		t := &checkpoint.Tuple{Items: make([]checkpoint.Value, 0, len(*x))}
		d.seen[v] = t
		for _, it := range *x {
			c, err := d.convert(it, depth+1)
			if err != nil {
				return nil, err
			}
			t.Items = append(t.Items, c)
		}
		*x = nil // see release
		return t, nil
	case *types.Dict:
		dict := &checkpoint.Dict{}
		d.seen[v] = dict
		entries, err := d.entries(func(yield func(k, v any) error) error {
			for _, e := range *x {
				if err := yield(e.Key, e.Value); err != nil {
					return err
				}
			}
			return nil
		}, depth)
		dict.Entries = entries
		*x = nil // see release
		return dict, err
	case *types.OrderedDict:
		od := &checkpoint.OrderedDict{}
		d.seen[v] = od
		entries, err := d.entries(func(yield func(k, v any) error) error {
			for el := x.List.Front(); el != nil; el = el.Next() {
				e := el.Value.(*types.OrderedDictEntry)
				if err := yield(e.Key, e.Value); err != nil {
					return err
				}
			}
			return nil
		}, depth)
		if err != nil {
			return nil, err
		}
		od.Entries = entries
		if len(x.PyDict) > 0 {
			state := &checkpoint.Dict{}
			for _, k := range sortedKeys(x.PyDict) {
				c, err := d.convert(x.PyDict[k], depth+1)
				if err != nil {
					return nil, err
				}
				state.Entries = append(state.Entries, checkpoint.Entry{Key: k, Value: c})
			}
			od.State = state
		}
		x.Map, x.List, x.PyDict = nil, nil, nil // see release
		return od, nil
	case *pyGlobal:
		return d.global(x)
	case *pyCall:
		return d.call(x, depth)
	case *types.Set:
		// EMPTY_SET/ADDITEMS (protocol 4 and up). Kept as the call protocol 2 writes,
		// set([items]), which is how it is saved again.
		items := &checkpoint.List{}
		d.seen[v] = &checkpoint.Call{Func: &checkpoint.Global{Module: "__builtin__", Name: "set"}, Args: &checkpoint.Tuple{Items: []checkpoint.Value{items}}}
		for k := range *x {
			c, err := d.convert(k, depth+1)
			if err != nil {
				return nil, err
			}
			items.Items = append(items.Items, c)
		}
		return d.seen[v], nil
	case *types.FrozenSet:
		return nil, fmt.Errorf("%w: %s: a frozenset, which torch's weights_only loader refuses too", ErrUnsupported, d.record)
	case *types.ByteArray:
		// BYTEARRAY8 (protocol 5); kept as protocol 2 writes it: bytearray(bytes), or
		// bytearray() when empty.
		args := &checkpoint.Tuple{}
		if len(*x) > 0 {
			args.Items = []checkpoint.Value{checkpoint.Bytes(append([]byte(nil), *x...))}
		}
		return &checkpoint.Call{Func: &checkpoint.Global{Module: "__builtin__", Name: "bytearray"}, Args: args}, nil
	case *types.Reconstructor:
		return nil, &GlobalError{Module: "copy_reg", Name: "_reconstructor", Record: d.record}
	case *types.ObjectClass:
		return nil, &GlobalError{Module: "__builtin__", Name: "object", Record: d.record}
	case *types.OrderedDictClass:
		return &checkpoint.Global{Module: "collections", Name: "OrderedDict"}, nil
	}
	return nil, fmt.Errorf("%w: %s: unexpected value of Go type %T", ErrUnsupported, d.record, v)
}

// global is an allowed global used as a value rather than called: torch's loader hands out
// the object itself, whatever it is (a dtype, a class, the rebuild function that
// _rebuild_from_type_v2 is given), so pt2conv keeps its name.
func (d *decoder) global(x *pyGlobal) (checkpoint.Value, error) {
	if out, ok := d.seen[x]; ok {
		return out, nil
	}
	d.seen[x] = x.g
	return x.g, nil
}

type entryIter func(yield func(k, v any) error) error

// entries converts dict entries; a key set twice keeps its first position and last value,
// as in Python.
func (d *decoder) entries(iter entryIter, depth int) ([]checkpoint.Entry, error) {
	var out []checkpoint.Entry
	index := map[any]int{}
	err := iter(func(k, v any) error {
		ck, err := d.convert(k, depth+1)
		if err != nil {
			return err
		}
		cv, err := d.convert(v, depth+1)
		if err != nil {
			return err
		}
		switch ck.(type) {
		case string, int64, bool, nil, float64:
			if i, ok := index[ck]; ok {
				out[i].Value = cv
				return nil
			}
			index[ck] = len(out)
		}
		out = append(out, checkpoint.Entry{Key: ck, Value: cv})
		return nil
	})
	return out, err
}

func (d *decoder) call(c *pyCall, depth int) (checkpoint.Value, error) {
	args := make([]checkpoint.Value, len(c.args))
	for i, a := range c.args {
		v, err := d.convert(a, depth+1)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	var state checkpoint.Value
	if c.hasState {
		s, err := d.convert(c.state, depth+1)
		if err != nil {
			return nil, err
		}
		state = s
	}
	out, err := d.build(c.fn, args, state, c.hasState)
	if err != nil {
		return nil, err
	}
	d.seen[c] = out
	c.args, c.state = nil, nil // see release
	return out, nil
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

// release: once a container or call of the pickle machine is converted, any further
// reference to it is answered from d.seen, so its contents are never read again. convert
// drops them right away, which lets the machine's objects go while the object model is
// built instead of holding both trees in full.

func (d *decoder) tensor(args []checkpoint.Value) (checkpoint.Value, error) {
	if len(args) < 6 {
		return nil, fmt.Errorf("%w: %s: _rebuild_tensor_v2 with %d arguments", ErrCorrupt, d.record, len(args))
	}
	s, ok := args[0].(*checkpoint.Storage)
	if !ok {
		return nil, fmt.Errorf("%w: %s: tensor without a storage", ErrCorrupt, d.record)
	}
	offset, ok := args[1].(int64)
	size, ok1 := intTuple(args[2])
	stride, ok2 := intTuple(args[3])
	grad, ok3 := args[4].(bool)
	if !ok || !ok1 || !ok2 || !ok3 || len(size) != len(stride) || offset < 0 {
		return nil, fmt.Errorf("%w: %s: malformed tensor of storage %q", ErrCorrupt, d.record, s.Key)
	}
	t := &checkpoint.Tensor{Storage: s, Offset: offset, Size: size, Stride: stride, RequiresGrad: grad, Hooks: args[5], Extra: args[6:]}
	if len(t.Extra) == 0 {
		t.Extra = nil
	}
	if s.Kind == checkpoint.Untyped {
		return nil, fmt.Errorf("%w: %s: _rebuild_tensor_v2 over the untyped storage %q", ErrCorrupt, d.record, s.Key)
	}
	if err := checkSpan(t); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, d.record, err)
	}
	return t, nil
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
	p := &checkpoint.Parameter{Data: t, RequiresGrad: grad, Hooks: args[2], WithState: g.Name == "_rebuild_parameter_with_state"}
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

func intTuple(v checkpoint.Value) ([]int64, bool) {
	t, ok := v.(*checkpoint.Tuple)
	if !ok {
		return nil, false
	}
	out := make([]int64, len(t.Items))
	for i, it := range t.Items {
		n, ok := it.(int64)
		if !ok {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
