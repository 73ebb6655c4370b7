package pickle

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"io"
	"math"
	"math/big"
	"unicode/utf8"
)

// Pickle opcodes the Encoder emits. torch.load(weights_only=True) in torch 1.13 understands
// all of them except BINFLOAT, which is written only for float values in the tree.
const (
	opMark       = '('
	opStop       = '.'
	opBinInt     = 'J'
	opBinInt1    = 'K'
	opBinInt2    = 'M'
	opNone       = 'N'
	opBinPersID  = 'Q'
	opReduce     = 'R'
	opBinUnicode = 'X'
	opAppend     = 'a'
	opBuild      = 'b'
	opGlobal     = 'c'
	opEmptyDict  = '}'
	opAppends    = 'e'
	opBinGet     = 'h'
	opLongBinGet = 'j'
	opEmptyList  = ']'
	opBinPut     = 'q'
	opLongBinPut = 'r'
	opSetItem    = 's'
	opTuple      = 't'
	opEmptyTuple = ')'
	opSetItems   = 'u'
	opBinFloat   = 'G'
	opProto      = 0x80
	opTuple1     = 0x85
	opTuple2     = 0x86
	opTuple3     = 0x87
	opNewTrue    = 0x88
	opNewFalse   = 0x89
	opLong1      = 0x8a
	opLong4      = 0x8b
)

// batchSize is how many items Python's pickler puts between one MARK and its
// APPENDS/SETITEMS.
const batchSize = 1000

// ErrCycle is returned by Encode when a tuple, tensor, parameter or call contains itself:
// protocol 2 can only express that with opcodes torch's restricted unpickler refuses.
var ErrCycle = errors.New("object contains itself through a tuple or call")

// An Encoder writes a Value as a pickle in protocol 2, opcode for opcode the way Python's
// pickler writes it for torch.save: dict entries in order, OrderedDict state via BUILD,
// storages as persistent ids, and every shared object written once and then referenced
// from the memo, so that tied tensors stay tied when the file is loaded.
//
// It is written by hand because the Go pickle encoders at hand (github.com/kisielk/og-rek)
// iterate dicts in hash order, have no BUILD and no memo, so key order, _metadata and
// shared tensors would be lost, and they emit DICT/LIST, which torch's weights_only loader
// rejects.
type Encoder struct {
	w   *bufio.Writer
	err error

	memoLen uint32
	objects map[any]uint32 // containers, parameters and calls, by pointer
	// tensors memoizes tensors apart: a map keyed by their pointer type hashes faster than
	// one keyed by interface values, and a checkpoint may hold a hundred thousand.
	tensors map[*checkpoint.Tensor]uint32
	// strings memoizes str objects by value; torch's storage keys, numbers, are found by
	// position rather than by hash (seqIndex).
	strings  seqIndex[uint32]
	globals  map[checkpoint.Global]uint32
	building map[any]bool // tuples, tensors and calls being written, to detect cycles
	// sizeHint is about how many tensors the object holds (0 when not known): the memo's
	// maps are made that large at once rather than grown by doubling.
	sizeHint int
	scratch  [10]byte
}

// NewEncoder returns an Encoder that writes to w. Each Encode writes one complete pickle
// with a fresh memo.
func NewEncoder(w io.Writer) *Encoder {
	return &Encoder{w: bufio.NewWriter(w)}
}

// Encode writes v as one pickle (PROTO 2 ... STOP) and flushes it to the underlying writer.
func (e *Encoder) Encode(v checkpoint.Value) error {
	e.memoLen = 0
	e.objects = map[any]uint32{}
	e.tensors = make(map[*checkpoint.Tensor]uint32, e.sizeHint)
	e.strings = newSeqIndex[uint32](e.sizeHint)       // a storage key per tensor
	e.strings.m = make(map[string]uint32, e.sizeHint) // and a key
	e.globals = map[checkpoint.Global]uint32{}
	e.building = map[any]bool{}
	e.err = nil

	e.write(opProto, 2)
	if err := e.value(v); err != nil {
		return err
	}
	e.write(opStop)
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}

// write writes an opcode and its argument, a few bytes, one at a time: bufio.Writer.Write
// may hand its slice on to the underlying writer, so the bytes of every call made through
// it would escape to the heap, an allocation per opcode.
func (e *Encoder) write(b ...byte) {
	for _, c := range b {
		if e.err == nil {
			e.err = e.w.WriteByte(c)
		}
	}
}

func (e *Encoder) writeString(s string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

// put assigns the next memo slot to the object just written.
func (e *Encoder) put() uint32 {
	i := e.memoLen
	e.memoLen++
	if i < 256 {
		e.write(opBinPut, byte(i))
	} else {
		e.scratch[0] = opLongBinPut
		binary.LittleEndian.PutUint32(e.scratch[1:5], i)
		e.write(e.scratch[:5]...)
	}
	return i
}

func (e *Encoder) get(i uint32) {
	if i < 256 {
		e.write(opBinGet, byte(i))
	} else {
		e.scratch[0] = opLongBinGet
		binary.LittleEndian.PutUint32(e.scratch[1:5], i)
		e.write(e.scratch[:5]...)
	}
}

// memoized writes a BINGET and reports true when key was written before.
func (e *Encoder) memoized(key any) bool {
	if i, ok := e.objects[key]; ok {
		e.get(i)
		return true
	}
	return false
}

// enter marks a non-memoizable-until-finished object as being written; it fails when the
// object is already being written higher up.
func (e *Encoder) enter(key any) error {
	if e.building[key] {
		return fmt.Errorf("pickle: encoding %s: %w", checkpoint.TypeName(key), ErrCycle)
	}
	e.building[key] = true
	return nil
}

func (e *Encoder) value(v checkpoint.Value) error {
	if e.err != nil {
		return e.err
	}
	switch v := v.(type) {
	case nil:
		e.write(opNone)
	case bool:
		if v {
			e.write(opNewTrue)
		} else {
			e.write(opNewFalse)
		}
	case int64:
		e.int(v)
	case int:
		e.int(int64(v))
	case *big.Int:
		if v.IsInt64() {
			e.int(v.Int64())
		} else {
			e.long(v)
		}
	case float64:
		e.scratch[0] = opBinFloat
		binary.BigEndian.PutUint64(e.scratch[1:9], math.Float64bits(v))
		e.write(e.scratch[:9]...)
	case string:
		e.str(v)
	case checkpoint.Bytes:
		return e.bytes(v)
	case *checkpoint.List:
		return e.list(v)
	case *checkpoint.Tuple:
		return e.tuple(v)
	case *checkpoint.Dict:
		return e.dict(v)
	case *checkpoint.OrderedDict:
		return e.orderedDict(v)
	case *checkpoint.Global:
		e.global(v.Module, v.Name)
	case *checkpoint.Call:
		return e.call(v)
	case *checkpoint.Tensor:
		return e.tensor(v)
	case *checkpoint.Parameter:
		return e.parameter(v)
	case *checkpoint.SparseTensor:
		return e.sparse(v)
	case *checkpoint.AttrTensor:
		return e.attrTensor(v)
	default:
		return fmt.Errorf("pickle: cannot encode a value of Go type %T", v)
	}
	return e.err
}

// int chooses the opcode like Python's save_long: the smallest fixed-width form that holds
// the value, LONG1 beyond 32 bits.
func (e *Encoder) int(n int64) {
	switch {
	case n >= 0 && n <= 0xff:
		e.write(opBinInt1, byte(n))
	case n >= 0 && n <= 0xffff:
		e.write(opBinInt2, byte(n), byte(n>>8))
	case n >= math.MinInt32 && n <= math.MaxInt32:
		e.scratch[0] = opBinInt
		binary.LittleEndian.PutUint32(e.scratch[1:5], uint32(int32(n)))
		e.write(e.scratch[:5]...)
	default:
		e.long(big.NewInt(n))
	}
}

// long writes LONG1 (or LONG4) with the shortest little-endian two's complement encoding,
// as Python's encode_long does.
func (e *Encoder) long(n *big.Int) {
	b := twosComplementLE(n)
	if len(b) < 256 {
		e.write(opLong1, byte(len(b)))
	} else {
		e.scratch[0] = opLong4
		binary.LittleEndian.PutUint32(e.scratch[1:5], uint32(len(b)))
		e.write(e.scratch[:5]...)
	}
	e.write(b...)
}

func twosComplementLE(n *big.Int) []byte {
	if n.Sign() == 0 {
		return nil
	}
	// Enough bytes for the magnitude plus a sign bit.
	size := n.BitLen()/8 + 1
	var v big.Int
	if n.Sign() < 0 {
		// 256^size + n is the two's complement bit pattern of n in size bytes.
		v.Lsh(big.NewInt(1), uint(size*8))
		v.Add(&v, n)
	} else {
		v.Set(n)
	}
	be := v.FillBytes(make([]byte, size))
	le := make([]byte, size)
	for i, c := range be {
		le[size-1-i] = c
	}
	// Drop a redundant sign byte, as Python does (-128 is one byte 0x80, not 0x80 0xff).
	if n.Sign() < 0 && size > 1 && le[size-1] == 0xff && le[size-2]&0x80 != 0 {
		le = le[:size-1]
	}
	return le
}

func (e *Encoder) str(s string) {
	if i, ok := e.strings.get(s); ok {
		e.get(i)
		return
	}
	e.scratch[0] = opBinUnicode
	binary.LittleEndian.PutUint32(e.scratch[1:5], uint32(len(s)))
	e.write(e.scratch[:5]...)
	e.writeString(s)
	e.strings.add(s, e.put())
}

func (e *Encoder) global(module, name string) {
	key := checkpoint.Global{Module: module, Name: name}
	if i, ok := e.globals[key]; ok {
		e.get(i)
		return
	}
	e.write(opGlobal)
	e.writeString(module)
	e.write('\n')
	e.writeString(name)
	e.write('\n')
	e.globals[key] = e.put()
}

// bytes follows Python's protocol-2 fallback for bytes: bytes() for empty data, else
// _codecs.encode(data decoded as latin-1, "latin1").
func (e *Encoder) bytes(b checkpoint.Bytes) error {
	if len(b) == 0 {
		e.global("__builtin__", "bytes")
		e.write(opEmptyTuple, opReduce)
		e.put()
		return e.err
	}
	e.global("_codecs", "encode")
	latin1 := make([]byte, 0, len(b)+len(b)/2)
	for _, c := range b {
		latin1 = utf8.AppendRune(latin1, rune(c))
	}
	e.str(string(latin1))
	e.str("latin1")
	e.write(opTuple2)
	e.put()
	e.write(opReduce)
	e.put()
	return e.err
}

func (e *Encoder) list(l *checkpoint.List) error {
	if e.memoized(l) {
		return e.err
	}
	e.write(opEmptyList)
	e.objects[l] = e.put()
	return e.appends(l.Items)
}

func (e *Encoder) appends(items []checkpoint.Value) error {
	for len(items) > 0 {
		n := min(len(items), batchSize)
		if n == 1 {
			if err := e.value(items[0]); err != nil {
				return err
			}
			e.write(opAppend)
		} else {
			e.write(opMark)
			for _, it := range items[:n] {
				if err := e.value(it); err != nil {
					return err
				}
			}
			e.write(opAppends)
		}
		items = items[n:]
	}
	return e.err
}

func (e *Encoder) dict(d *checkpoint.Dict) error {
	if e.memoized(d) {
		return e.err
	}
	e.write(opEmptyDict)
	e.objects[d] = e.put()
	return e.setItems(d.Entries)
}

func (e *Encoder) setItems(entries []checkpoint.Entry) error {
	for len(entries) > 0 {
		n := min(len(entries), batchSize)
		if n > 1 {
			e.write(opMark)
		}
		for _, en := range entries[:n] {
			if err := e.value(en.Key); err != nil {
				return err
			}
			if err := e.value(en.Value); err != nil {
				return err
			}
		}
		if n > 1 {
			e.write(opSetItems)
		} else {
			e.write(opSetItem)
		}
		entries = entries[n:]
	}
	return e.err
}

// orderedDict writes collections.OrderedDict the way its __reduce__ asks: called with no
// arguments, memoized, filled, then BUILT with its instance dict (a state_dict's _metadata).
func (e *Encoder) orderedDict(d *checkpoint.OrderedDict) error {
	if e.memoized(d) {
		return e.err
	}
	e.global("collections", "OrderedDict")
	e.write(opEmptyTuple, opReduce)
	e.objects[d] = e.put()
	if err := e.setItems(d.Entries); err != nil {
		return err
	}
	if d.State != nil {
		if err := e.value(d.State); err != nil {
			return err
		}
		e.write(opBuild)
	}
	return e.err
}

// tupleItems writes items as a tuple object. The tuple is memoized like Python memoizes
// a tuple it has just built, but under no key: each call writes a new one.
func (e *Encoder) tupleItems(items []checkpoint.Value) error {
	if len(items) == 0 {
		e.write(opEmptyTuple)
		return e.err
	}
	if len(items) > 3 {
		e.write(opMark)
	}
	for _, it := range items {
		if err := e.value(it); err != nil {
			return err
		}
	}
	e.write(tupleOp(len(items)))
	e.put()
	return e.err
}

// tupleOp is the opcode that makes a tuple of the n items before it (after a MARK when n > 3).
func tupleOp(n int) byte {
	switch n {
	case 1:
		return opTuple1
	case 2:
		return opTuple2
	case 3:
		return opTuple3
	}
	return opTuple
}

func (e *Encoder) tuple(t *checkpoint.Tuple) error {
	if e.memoized(t) {
		return e.err
	}
	if len(t.Items) == 0 {
		e.write(opEmptyTuple)
		return e.err
	}
	if err := e.enter(t); err != nil {
		return err
	}
	defer delete(e.building, t)
	if err := e.tupleItems(t.Items); err != nil {
		return err
	}
	e.objects[t] = e.memoLen - 1
	return e.err
}

func (e *Encoder) call(c *checkpoint.Call) error {
	if e.memoized(c) {
		return e.err
	}
	if c.Func == nil {
		return fmt.Errorf("pickle: encoding a call: no function")
	}
	if err := e.enter(c); err != nil {
		return err
	}
	defer delete(e.building, c)
	e.global(c.Func.Module, c.Func.Name)
	args := c.Args
	if args == nil {
		args = &checkpoint.Tuple{}
	}
	if err := e.tuple(args); err != nil {
		return err
	}
	e.write(opReduce)
	e.objects[c] = e.put()
	if c.State != nil {
		if err := e.value(c.State); err != nil {
			return err
		}
		e.write(opBuild)
	}
	return e.err
}
