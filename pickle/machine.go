package pickle

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// The pickle machine is written here rather than taken from a library because a library's
// machine builds its own tree of Python-like objects, with a memo map and a fresh slice per
// MARK, which then has to be converted to package checkpoint's model: on a state_dict of
// 100,000 tensors that was 1.5 s of the 2 s spent opening the file and most of its heap.
// This one builds the model directly from the opcodes, in one pass over data.pkl held in
// memory, with the memo in a slice. It runs only after scanPickle has checked the whole
// pickle (lengths, stack heights, marks, memo slots), so it trusts the structure, but it
// still checks every bound itself: a disagreement is an error, never a panic.

// pyGlobal is an allowed global as the machine holds it: REDUCE needs its role.
type pyGlobal struct {
	g    *checkpoint.Global
	role globalRole
}

// pyCall is a REDUCE of an allowed global, with the state of a later BUILD. Its value is
// built (decoder.build) when something first takes it from the stack into another value,
// which in a pickle comes after the BUILD that may follow the REDUCE.
type pyCall struct {
	fn       *pyGlobal
	args     []checkpoint.Value
	state    checkpoint.Value
	hasState bool
	built    bool
	out      checkpoint.Value
}

// pySet is a set under construction: EMPTY_SET and ADDITEMS (protocol 4 and up). It is kept
// as the call protocol 2 writes, set([items]), which is how it is saved again.
type pySet struct{ call *checkpoint.Call }

type machine struct {
	d     *decoder
	data  []byte
	pos   int
	stack []any
	marks []int
	// memo holds the slots some GET reads (read, from the scan); put counts the others
	// in slots, for MEMOIZE's numbering, without keeping what they hold.
	memo  map[uint64]any
	read  *memoSet
	slots memoSet
	// index finds a key's entry in a large dict or set, so that a key set again keeps its
	// first position and takes the last value, as in Python, without rescanning entries.
	index map[any]*keyIndex
	// pid is the tuple persistentID hands to persistentLoad, made once; args holds the
	// arguments rebuildTensor hands to decoder.tensor.
	pid  checkpoint.Tuple
	args [6]checkpoint.Value
}

// keyIndex maps keys to positions; string keys, nearly all of them, have their own map,
// which hashes them faster than one keyed by interface values.
type keyIndex struct {
	strs  map[string]int
	other map[checkpoint.Value]int
}

// at returns where k is, or records that it will be at n.
func (x *keyIndex) at(k checkpoint.Value, n int) (int, bool) {
	if s, ok := k.(string); ok {
		j, found := x.strs[s]
		if !found {
			x.strs[s] = n
		}
		return j, found
	}
	if x.other == nil {
		x.other = map[checkpoint.Value]int{}
	}
	j, found := x.other[k]
	if !found {
		x.other[k] = n
	}
	return j, found
}

// indexFrom is the size from which a container's keys are indexed rather than scanned.
const indexFrom = 16

func (d *decoder) run(data []byte, read *memoSet) (checkpoint.Value, error) {
	if read == nil {
		read = &memoSet{}
	}
	m := &machine{d: d, data: data, read: read, memo: make(map[uint64]any, read.n)}
	m.stack = make([]any, 0, 64)
	for {
		if m.pos >= len(m.data) {
			return nil, fmt.Errorf("%w: %s: pickle ends before its STOP opcode", ErrTruncated, d.record)
		}
		op := m.data[m.pos]
		m.pos++
		if op == '.' {
			if len(m.stack) != 1 || len(m.marks) != 0 {
				return nil, m.corrupt("STOP with %d values and %d marks on the stack", len(m.stack), len(m.marks))
			}
			return m.value(m.stack[0])
		}
		if err := m.step(op); err != nil {
			return nil, err
		}
	}
}

func (m *machine) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s: "+format, append([]any{ErrCorrupt, m.d.record}, args...)...)
}

func (m *machine) next(n int) ([]byte, error) {
	if n < 0 || n > len(m.data)-m.pos {
		return nil, fmt.Errorf("%w: %s: an argument claims %d bytes, %d remain", ErrTruncated, m.d.record, n, len(m.data)-m.pos)
	}
	b := m.data[m.pos : m.pos+n]
	m.pos += n
	return b, nil
}

func (m *machine) uint(n int) (uint64, error) {
	b, err := m.next(n)
	if err != nil {
		return 0, err
	}
	var buf [8]byte
	copy(buf[:], b)
	return binary.LittleEndian.Uint64(buf[:]), nil
}

// counted reads a length of n bytes and then that many bytes.
func (m *machine) counted(n int) ([]byte, error) {
	l, err := m.uint(n)
	if err != nil {
		return nil, err
	}
	if l > uint64(len(m.data)-m.pos) {
		return nil, fmt.Errorf("%w: %s: an argument claims %d bytes, %d remain", ErrTruncated, m.d.record, l, len(m.data)-m.pos)
	}
	return m.next(int(l))
}

func (m *machine) line() ([]byte, error) {
	for i := m.pos; i < len(m.data); i++ {
		if m.data[i] == '\n' {
			l := m.data[m.pos:i]
			m.pos = i + 1
			return l, nil
		}
	}
	return nil, fmt.Errorf("%w: %s: a text argument without its newline", ErrTruncated, m.d.record)
}

func (m *machine) push(v any) { m.stack = append(m.stack, v) }

// base is where the values above the innermost mark start.
func (m *machine) base() int {
	if len(m.marks) == 0 {
		return 0
	}
	return m.marks[len(m.marks)-1]
}

func (m *machine) pop(op byte) (any, error) {
	if len(m.stack) <= m.base() {
		return nil, m.corrupt("opcode %q pops an empty stack", op)
	}
	v := m.stack[len(m.stack)-1]
	m.stack = m.stack[:len(m.stack)-1]
	return v, nil
}

func (m *machine) top(op byte) (any, error) {
	if len(m.stack) <= m.base() {
		return nil, m.corrupt("opcode %q needs a value on the stack", op)
	}
	return m.stack[len(m.stack)-1], nil
}

// popMark returns the values above the innermost mark (valid until the next push) and
// drops them with the mark.
func (m *machine) popMark(op byte) ([]any, error) {
	if len(m.marks) == 0 {
		return nil, m.corrupt("opcode %q without a MARK", op)
	}
	b := m.marks[len(m.marks)-1]
	m.marks = m.marks[:len(m.marks)-1]
	items := m.stack[b:]
	m.stack = m.stack[:b]
	return items, nil
}

// values finishes stack items into the values a container holds.
func (m *machine) values(items []any) ([]checkpoint.Value, error) {
	return m.valuesInto(make([]checkpoint.Value, len(items)), items)
}

func (m *machine) valuesInto(out []checkpoint.Value, items []any) ([]checkpoint.Value, error) {
	for i, it := range items {
		v, err := m.value(it)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// tuple makes a tuple of finished stack items. A torch pickle makes several small tuples
// per tensor (its size, stride, storage reference and rebuild arguments); up to six items
// are allocated with the Tuple in one piece instead of two.
func (m *machine) tuple(items []any) (*checkpoint.Tuple, error) {
	var t *checkpoint.Tuple
	var buf []checkpoint.Value
	switch len(items) {
	case 1:
		x := &struct {
			t checkpoint.Tuple
			a [1]checkpoint.Value
		}{}
		t, buf = &x.t, x.a[:]
	case 2:
		x := &struct {
			t checkpoint.Tuple
			a [2]checkpoint.Value
		}{}
		t, buf = &x.t, x.a[:]
	case 3, 4:
		x := &struct {
			t checkpoint.Tuple
			a [4]checkpoint.Value
		}{}
		t, buf = &x.t, x.a[:len(items):len(items)]
	case 5, 6:
		x := &struct {
			t checkpoint.Tuple
			a [6]checkpoint.Value
		}{}
		t, buf = &x.t, x.a[:len(items):len(items)]
	default:
		t, buf = &checkpoint.Tuple{}, make([]checkpoint.Value, len(items))
	}
	items2, err := m.valuesInto(buf, items)
	if err != nil {
		return nil, err
	}
	t.Items = items2
	return t, nil
}

// persistentIDNext reports whether the tuple TUPLE is making only ever serves as a
// persistent id: BINPERSID follows, after at most a BINPUT of a slot no GET reads. torch
// writes such a tuple for every storage reference, and it need not be made.
func (m *machine) persistentIDNext() bool { return m.unreadPutThen('Q') }

// persistentID runs what persistentIDNext found after TUPLE: the PUT, then BINPERSID on
// a tuple of items the machine reuses rather than one made for each storage reference.
func (m *machine) persistentID(items []any) error {
	m.unreadPut()
	m.pos++ // BINPERSID
	vals, err := m.valuesInto(slices.Grow(m.pid.Items[:0], len(items))[:len(items)], items)
	if err != nil {
		return err
	}
	m.pid.Items = vals
	s, err := m.d.persistentLoad(&m.pid)
	if err != nil {
		return err
	}
	m.push(s)
	return nil
}

// tensorNext reports whether the tuple TUPLE is making is only ever the arguments of a
// call of _rebuild_tensor_v2: the global is below the mark and REDUCE follows, after at
// most a PUT of a slot no GET reads. torch writes every tensor so, and then neither the
// tuple nor a deferred call need be made. (A BUILD of the tensor, which torch never
// writes, is refused in buildOp as decoder.build refuses it.)
func (m *machine) tensorNext(items []any) bool {
	if len(items) != 6 || len(m.stack) <= m.base() {
		return false
	}
	if g, ok := m.stack[len(m.stack)-1].(*pyGlobal); !ok || g.role != roleTensor {
		return false
	}
	return m.unreadPutThen('R')
}

// nextPut returns the position after the binary PUT or MEMOIZE at the current position
// and the slot it fills; ok is false when there is none. The peepholes above
// (persistentIDNext, tensorNext) pass over a value's PUT when no GET reads its slot.
func (m *machine) nextPut() (next int, slot uint64, ok bool) {
	p := m.pos
	if p >= len(m.data) {
		return p, 0, false
	}
	switch m.data[p] {
	case 'q':
		if p+1 < len(m.data) {
			return p + 2, uint64(m.data[p+1]), true
		}
	case 'r':
		if p+4 < len(m.data) {
			return p + 5, uint64(binary.LittleEndian.Uint32(m.data[p+1:])), true
		}
	case 0x94:
		return p + 1, uint64(m.slots.n), true
	}
	return p, 0, false
}

// unreadPut runs the PUT nextPut finds at the current position, if any, for its
// bookkeeping only: no GET reads its slot, so nothing is kept in it.
func (m *machine) unreadPut() {
	if next, slot, ok := m.nextPut(); ok {
		m.slots.add(slot)
		m.pos = next
	}
}

// unreadPutThen reports whether op comes next, after at most a PUT of a slot no GET reads.
func (m *machine) unreadPutThen(op byte) bool {
	p, slot, ok := m.nextPut()
	return (!ok || !m.read.has(slot)) && p < len(m.data) && m.data[p] == op
}

// rebuildTensor runs what tensorNext found after TUPLE: the PUT's bookkeeping, then the
// REDUCE, building the tensor at once from the arguments on the stack.
func (m *machine) rebuildTensor(items []any) error {
	m.unreadPut()
	m.pos++ // REDUCE
	args, err := m.valuesInto(m.args[:len(items)], items)
	if err != nil {
		return err
	}
	t, err := m.d.tensor(args)
	clear(args)
	if err != nil {
		return err
	}
	m.stack[len(m.stack)-1] = t // in place of the global
	return nil
}

// value is what a stack item is as part of another value: a call is built, a global must
// be one that stands for itself.
func (m *machine) value(x any) (checkpoint.Value, error) {
	switch x := x.(type) {
	case *pyCall:
		if !x.built {
			out, err := m.d.build(x.fn, x.args, x.state, x.hasState)
			if err != nil {
				return nil, err
			}
			x.out, x.built, x.args, x.state = out, true, nil, nil
		}
		return x.out, nil
	case *pyGlobal:
		// torch's loader hands out an allowed global itself, whatever it is (a dtype, a
		// class, the rebuild function _rebuild_from_type_v2 is given), so its name is kept.
		return x.g, nil
	case *pySet:
		return x.call, nil
	}
	return x, nil
}

func (m *machine) put(idx uint64) error {
	v, err := m.top('p')
	if err != nil {
		return err
	}
	m.slots.add(idx)
	if m.read.has(idx) {
		m.memo[idx] = v
	}
	return nil
}

func (m *machine) get(idx uint64) error {
	v, ok := m.memo[idx]
	if !ok {
		return m.corrupt("memo GET of slot %d that was never PUT", idx)
	}
	m.push(v)
	return nil
}

func textIndex(l []byte) (uint64, bool) {
	if len(l) == 0 || len(l) > 18 {
		return 0, false
	}
	var v uint64
	for _, c := range l {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// step runs one opcode other than STOP. The opcode set is Python's, protocols 0 to 5.
func (m *machine) step(op byte) error {
	switch op {
	case 0x80: // PROTO
		_, err := m.next(1)
		return err
	case 0x95: // FRAME: a hint only
		_, err := m.next(8)
		return err
	case '(': // MARK
		m.marks = append(m.marks, len(m.stack))
		return nil
	case '0': // POP (of the mark itself when nothing is above it)
		if len(m.stack) == m.base() {
			_, err := m.popMark(op)
			return err
		}
		_, err := m.pop(op)
		return err
	case '1': // POP_MARK
		_, err := m.popMark(op)
		return err
	case '2': // DUP
		v, err := m.top(op)
		if err == nil {
			m.push(v)
		}
		return err
	case 'N':
		m.push(nil)
	case 0x88:
		m.push(true)
	case 0x89:
		m.push(false)
	case 'K': // BININT1
		n, err := m.uint(1)
		m.push(int64(n))
		return err
	case 'M': // BININT2
		n, err := m.uint(2)
		m.push(int64(n))
		return err
	case 'J': // BININT
		n, err := m.uint(4)
		m.push(int64(int32(uint32(n))))
		return err
	case 'I', 'L': // INT LONG (text)
		return m.textInt(op)
	case 0x8a: // LONG1
		b, err := m.counted(1)
		if err == nil {
			m.push(decodeLong(b))
		}
		return err
	case 0x8b: // LONG4
		b, err := m.counted(4)
		if err == nil {
			m.push(decodeLong(b))
		}
		return err
	case 'F': // FLOAT (text)
		l, err := m.line()
		if err != nil {
			return err
		}
		f, err := strconv.ParseFloat(string(l), 64)
		if err != nil {
			return m.corrupt("FLOAT %s", brief(string(l)))
		}
		m.push(f)
	case 'G': // BINFLOAT
		b, err := m.next(8)
		if err == nil {
			m.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
		}
		return err
	case 'S': // STRING (text, quoted)
		l, err := m.line()
		if err != nil {
			return err
		}
		if len(l) < 2 || l[0] != l[len(l)-1] || l[0] != '\'' && l[0] != '"' {
			return m.corrupt("the STRING opcode's argument is not quoted")
		}
		m.push(string(l[1 : len(l)-1]))
	case 'V': // UNICODE (text)
		l, err := m.line()
		if err == nil {
			m.push(string(l))
		}
		return err
	case 'U', 0x8c: // SHORT_BINSTRING SHORT_BINUNICODE
		return m.pushString(1)
	case 'T', 'X': // BINSTRING BINUNICODE
		return m.pushString(4)
	case 0x8d: // BINUNICODE8
		return m.pushString(8)
	case 'C': // SHORT_BINBYTES
		return m.pushBytes(1)
	case 'B': // BINBYTES
		return m.pushBytes(4)
	case 0x8e: // BINBYTES8
		return m.pushBytes(8)
	case 0x96: // BYTEARRAY8: kept as protocol 2 writes it, bytearray(bytes), or bytearray()
		b, err := m.counted(8)
		if err != nil {
			return err
		}
		args := &checkpoint.Tuple{}
		if len(b) > 0 {
			args.Items = []checkpoint.Value{checkpoint.Bytes(slices.Clone(b))}
		}
		m.push(&checkpoint.Call{Func: &checkpoint.Global{Module: "__builtin__", Name: "bytearray"}, Args: args})
	case ')': // EMPTY_TUPLE
		m.push(&checkpoint.Tuple{Items: []checkpoint.Value{}})
	case 0x85, 0x86, 0x87: // TUPLE1 TUPLE2 TUPLE3
		n := int(op-0x85) + 1
		if len(m.stack)-m.base() < n {
			return m.corrupt("opcode %q needs %d values on the stack", op, n)
		}
		t, err := m.tuple(m.stack[len(m.stack)-n:])
		if err != nil {
			return err
		}
		m.stack = m.stack[:len(m.stack)-n]
		m.push(t)
	case 't': // TUPLE
		items, err := m.popMark(op)
		if err != nil {
			return err
		}
		if m.persistentIDNext() {
			return m.persistentID(items)
		}
		if m.tensorNext(items) {
			return m.rebuildTensor(items)
		}
		t, err := m.tuple(items)
		if err != nil {
			return err
		}
		m.push(t)
	case ']': // EMPTY_LIST
		m.push(&checkpoint.List{Items: []checkpoint.Value{}})
	case 'l': // LIST
		return m.fromMark(op, func(items []checkpoint.Value) any { return &checkpoint.List{Items: items} })
	case 'a': // APPEND
		v, err := m.pop(op)
		if err != nil {
			return err
		}
		return m.appendTo(op, []any{v})
	case 'e': // APPENDS
		items, err := m.popMark(op)
		if err != nil {
			return err
		}
		return m.appendTo(op, items)
	case '}': // EMPTY_DICT
		m.push(&checkpoint.Dict{})
	case 'd': // DICT
		items, err := m.popMark(op)
		if err != nil {
			return err
		}
		d := &checkpoint.Dict{}
		if err := m.setItems(op, d, items); err != nil {
			return err
		}
		m.push(d)
	case 's': // SETITEM
		if len(m.stack)-m.base() < 3 {
			return m.corrupt("opcode %q needs 3 values on the stack", op)
		}
		kv := m.stack[len(m.stack)-2:]
		m.stack = m.stack[:len(m.stack)-2]
		return m.setItems(op, m.stack[len(m.stack)-1], kv)
	case 'u': // SETITEMS
		items, err := m.popMark(op)
		if err != nil {
			return err
		}
		target, err := m.top(op)
		if err != nil {
			return err
		}
		return m.setItems(op, target, items)
	case 0x8f: // EMPTY_SET
		m.push(&pySet{call: &checkpoint.Call{Func: &checkpoint.Global{Module: "__builtin__", Name: "set"},
			Args: &checkpoint.Tuple{Items: []checkpoint.Value{&checkpoint.List{}}}}})
	case 0x90: // ADDITEMS
		items, err := m.popMark(op)
		if err != nil {
			return err
		}
		target, err := m.top(op)
		if err != nil {
			return err
		}
		s, ok := target.(*pySet)
		if !ok {
			return m.corrupt("ADDITEMS to a %s", kindOf(target))
		}
		return m.addItems(s.call.Args.Items[0].(*checkpoint.List), items)
	case 0x91: // FROZENSET
		return fmt.Errorf("%w: %s: a frozenset, which torch's weights_only loader refuses too", ErrUnsupported, m.d.record)
	case 'c': // GLOBAL
		module, err := m.line()
		if err != nil {
			return err
		}
		name, err := m.line()
		if err != nil {
			return err
		}
		g, err := m.d.findClass(string(module), string(name))
		if err != nil {
			return err
		}
		m.push(g)
	case 0x93: // STACK_GLOBAL
		name, err := m.pop(op)
		if err != nil {
			return err
		}
		module, err := m.pop(op)
		if err != nil {
			return err
		}
		ms, ok1 := module.(string)
		ns, ok2 := name.(string)
		if !ok1 || !ok2 {
			return m.corrupt("STACK_GLOBAL of a %s and a %s", kindOf(module), kindOf(name))
		}
		g, err := m.d.findClass(ms, ns)
		if err != nil {
			return err
		}
		m.push(g)
	case 'R': // REDUCE
		return m.reduce()
	case 0x81, 0x92: // NEWOBJ NEWOBJ_EX: Python's pickler uses them for class instances only
		return m.newObject(op)
	case 'b': // BUILD
		return m.buildOp()
	case 'P': // PERSID (text)
		l, err := m.line()
		if err != nil {
			return err
		}
		_, err = m.d.persistentLoad(string(l))
		return err
	case 'Q': // BINPERSID
		pid, err := m.pop(op)
		if err != nil {
			return err
		}
		v, err := m.value(pid)
		if err != nil {
			return err
		}
		s, err := m.d.persistentLoad(v)
		if err != nil {
			return err
		}
		m.push(s)
	case 'p', 'g': // PUT GET (text)
		l, err := m.line()
		if err != nil {
			return err
		}
		idx, ok := textIndex(l)
		if !ok {
			return m.corrupt("bad memo index for opcode %q", op)
		}
		if op == 'p' {
			return m.put(idx)
		}
		return m.get(idx)
	case 'q', 'r', 'h', 'j': // BINPUT LONG_BINPUT BINGET LONG_BINGET
		width := 1
		if op == 'r' || op == 'j' {
			width = 4
		}
		idx, err := m.uint(width)
		if err != nil {
			return err
		}
		if op == 'q' || op == 'r' {
			return m.put(idx)
		}
		return m.get(idx)
	case 0x94: // MEMOIZE
		return m.put(uint64(m.slots.n))
	default:
		// INST OBJ EXT1 EXT2 EXT4 NEXT_BUFFER READONLY_BUFFER never reach here: scanPickle
		// refuses them, and every other byte is no opcode.
		return fmt.Errorf("%w: %s: pickle opcode 0x%02x", ErrUnsupported, m.d.record, op)
	}
	return nil
}

func (m *machine) pushString(n int) error {
	b, err := m.counted(n)
	if err == nil {
		m.push(string(b))
	}
	return err
}

func (m *machine) pushBytes(n int) error {
	b, err := m.counted(n)
	if err == nil {
		m.push(checkpoint.Bytes(slices.Clone(b)))
	}
	return err
}

// textInt reads INT and LONG: decimal text, "00" and "01" for False and True (INT), a
// trailing "L" (LONG).
func (m *machine) textInt(op byte) error {
	l, err := m.line()
	if err != nil {
		return err
	}
	s := string(l)
	if op == 'I' && (s == "00" || s == "01") {
		m.push(s == "01")
		return nil
	}
	if op == 'L' && len(s) > 0 && s[len(s)-1] == 'L' {
		s = s[:len(s)-1]
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		m.push(v)
		return nil
	}
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return m.corrupt("integer %s", brief(s))
	}
	m.push(b)
	return nil
}

// decodeLong reads a two's-complement little-endian integer (LONG1, LONG4): an int64 when
// it fits, else a *big.Int.
func decodeLong(b []byte) checkpoint.Value {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var buf [8]byte
		copy(buf[:], b)
		v := binary.LittleEndian.Uint64(buf[:])
		if shift := 64 - 8*uint(len(b)); shift > 0 {
			return int64(v<<shift) >> shift // sign-extend
		}
		return int64(v)
	}
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	v := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	if v.IsInt64() {
		return v.Int64()
	}
	return v
}

func (m *machine) fromMark(op byte, make func([]checkpoint.Value) any) error {
	items, err := m.popMark(op)
	if err != nil {
		return err
	}
	vs, err := m.values(items)
	if err != nil {
		return err
	}
	m.push(make(vs))
	return nil
}

func (m *machine) appendTo(op byte, items []any) error {
	target, err := m.top(op)
	if err != nil {
		return err
	}
	l, ok := target.(*checkpoint.List)
	if !ok {
		return m.corrupt("APPEND to a %s", kindOf(target))
	}
	for _, it := range items {
		v, err := m.value(it)
		if err != nil {
			return err
		}
		l.Items = append(l.Items, v)
	}
	return nil
}

// setItems sets key/value pairs of a dict or OrderedDict. A key set twice keeps its first
// position and its last value, as in Python; keys that are not plain values (tuples, ...)
// are kept as they come.
func (m *machine) setItems(op byte, target any, kv []any) error {
	var entries *[]checkpoint.Entry
	switch d := target.(type) {
	case *checkpoint.Dict:
		entries = &d.Entries
	case *checkpoint.OrderedDict:
		entries = &d.Entries
	default:
		return m.corrupt("SETITEM of a %s", kindOf(target))
	}
	if len(kv)%2 != 0 {
		return m.corrupt("opcode %q with a key but no value", op)
	}
	// Room is made once rather than by doubling, each time a copy into freshly faulted memory.
	if n := len(*entries) + len(kv)/2; n > cap(*entries) && m.stateDictSized(n) {
		*entries = slices.Grow(*entries, m.d.entriesHint-len(*entries))
	}
	for i := 0; i < len(kv); i += 2 {
		k, err := m.value(kv[i])
		if err != nil {
			return err
		}
		v, err := m.value(kv[i+1])
		if err != nil {
			return err
		}
		if j, ok := m.find(target, k, len(*entries), func(j int) checkpoint.Value { return (*entries)[j].Key }); ok {
			(*entries)[j].Value = v
			continue
		}
		*entries = append(*entries, checkpoint.Entry{Key: k, Value: v})
	}
	return nil
}

func (m *machine) addItems(l *checkpoint.List, items []any) error {
	for _, it := range items {
		v, err := m.value(it)
		if err != nil {
			return err
		}
		if _, ok := m.find(l, v, len(l.Items), func(j int) checkpoint.Value { return l.Items[j] }); !ok {
			l.Items = append(l.Items, v)
		}
	}
	return nil
}

// find returns where key k already is among the n keys of container c (keyAt(j) is the
// j-th) and, when it is not there, records that it will be at n. Small containers are
// scanned, larger ones indexed once.
func (m *machine) find(c any, k checkpoint.Value, n int, keyAt func(int) checkpoint.Value) (int, bool) {
	switch k.(type) {
	case string, int64, bool, nil, float64:
	default:
		return 0, false
	}
	if n < indexFrom {
		for j := range n {
			if kj := keyAt(j); kj == k {
				return j, true
			}
		}
		return 0, false
	}
	idx := m.index[c]
	if idx == nil {
		if m.index == nil {
			m.index = map[any]*keyIndex{}
		}
		idx = &keyIndex{strs: make(map[string]int, 2*n)}
		for j := range n {
			switch kj := keyAt(j); kj.(type) {
			case string, int64, bool, nil, float64:
				idx.at(kj, j) // keeps the first position of a key set twice
			}
		}
		m.index[c] = idx
	}
	j, found := idx.at(k, n)
	if !found && len(idx.strs) == 1024 && m.stateDictSized(len(idx.strs)) {
		// The index takes its room at once too (see setItems).
		grown := make(map[string]int, m.d.entriesHint)
		for key, at := range idx.strs {
			grown[key] = at
		}
		idx.strs = grown
	}
	return j, found
}

// stateDictSized reports whether a dict reaching n entries is likely the state_dict of a
// checkpoint of many storages, with about an entry per storage (decoder.entriesHint): past
// a thousand entries, with more storages still to come.
func (m *machine) stateDictSized(n int) bool {
	return n >= 1024 && m.d.entriesHint > n
}

// reduce applies an allowed global to its arguments. collections.OrderedDict() is the one
// call the machine itself makes: its entries come from later SETITEMS.
func (m *machine) reduce() error {
	args, err := m.pop('R')
	if err != nil {
		return err
	}
	fn, err := m.pop('R')
	if err != nil {
		return err
	}
	t, ok := args.(*checkpoint.Tuple)
	if !ok {
		return m.corrupt("REDUCE with arguments in a %s", kindOf(args))
	}
	g, ok := fn.(*pyGlobal)
	if !ok {
		return m.corrupt("REDUCE of a %s", kindOf(fn))
	}
	if g.g.Module == "collections" && g.g.Name == "OrderedDict" {
		if len(t.Items) != 0 {
			return m.corrupt("OrderedDict called with %d arguments", len(t.Items))
		}
		m.push(&checkpoint.OrderedDict{})
		return nil
	}
	m.push(&pyCall{fn: g, args: t.Items})
	return nil
}

// buildOp runs BUILD: a call keeps its state for decoder.build; an OrderedDict takes the
// attributes torch gives a state_dict (_metadata) as its State.
func (m *machine) buildOp() error {
	st, err := m.pop('b')
	if err != nil {
		return err
	}
	state, err := m.value(st)
	if err != nil {
		return err
	}
	inst, err := m.top('b')
	if err != nil {
		return err
	}
	switch x := inst.(type) {
	case *pyCall:
		if x.hasState {
			return m.corrupt("%s built twice", x.fn.g)
		}
		if x.built {
			return fmt.Errorf("%w: %s: %s built after it was used", ErrUnsupported, m.d.record, x.fn.g)
		}
		x.state, x.hasState = state, true
		return nil
	case *checkpoint.OrderedDict:
		return m.orderedDictState(x, state)
	case *checkpoint.Tensor:
		return fmt.Errorf("%w: %s: a tensor built with extra state", ErrUnsupported, m.d.record)
	}
	if state == nil {
		return nil
	}
	return fmt.Errorf("%w: %s: BUILD of a %s with state", ErrUnsupported, m.d.record, kindOf(inst))
}

// orderedDictState sets an OrderedDict's attributes from a BUILD: state is a dict of them,
// or (dict, slots) without slots. They are kept in a Dict sorted by name.
func (m *machine) orderedDictState(od *checkpoint.OrderedDict, state checkpoint.Value) error {
	if t, ok := state.(*checkpoint.Tuple); ok && len(t.Items) == 2 {
		if t.Items[1] != nil {
			return fmt.Errorf("%w: %s: OrderedDict built with slots", ErrUnsupported, m.d.record)
		}
		state = t.Items[0]
	}
	if state == nil {
		return nil
	}
	attrs, ok := state.(*checkpoint.Dict)
	if !ok {
		return fmt.Errorf("%w: %s: OrderedDict built with a %s", ErrUnsupported, m.d.record, kindOf(state))
	}
	merged := map[string]checkpoint.Value{}
	if old, ok := od.State.(*checkpoint.Dict); ok {
		for _, e := range old.Entries {
			merged[e.Key.(string)] = e.Value
		}
	}
	for _, e := range attrs.Entries {
		k, ok := e.Key.(string)
		if !ok {
			return m.corrupt("OrderedDict attribute named by a %s", kindOf(e.Key))
		}
		merged[k] = e.Value
	}
	if len(merged) == 0 {
		return nil
	}
	out := &checkpoint.Dict{}
	for _, k := range sortedKeys(merged) {
		out.Entries = append(out.Entries, checkpoint.Entry{Key: k, Value: merged[k]})
	}
	od.State = out
	return nil
}

// kindOf names a stack item's type for an error message.
func kindOf(x any) string {
	switch x := x.(type) {
	case *pyGlobal:
		return "global " + x.g.String()
	case *pyCall:
		return "call of " + x.fn.g.String()
	case *pySet:
		return "set"
	}
	return checkpoint.TypeName(x)
}
