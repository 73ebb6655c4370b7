package pickle

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Limits bound what a pickle may ask of the reader. A hostile file cannot make pt2conv
// allocate more than a small multiple of the bytes it really holds: every declared length
// is checked against the bytes that follow before anything is allocated.
type Limits struct {
	MaxPickleBytes int64 // size of data.pkl (or one legacy pickle)
	MaxStack       int   // values on the pickle machine's stack, marks included
	MaxMarks       int   // nested MARKs
	MaxMemo        int   // memo entries
	MaxLine        int   // text arguments (protocol 0 opcodes, GLOBAL names)
	MaxDepth       int   // nesting of containers in the object tree
	// MaxObjects bounds the values a Walk of the tree visits. An object shared n times is
	// visited n times, so a few hundred bytes of memo references can make a tree that
	// takes 2^50 steps to walk; the reader refuses those instead.
	MaxObjects int
}

// DefaultLimits are generous for real checkpoints: torch's own pickles of models with
// thousands of tensors stay far below them.
var DefaultLimits = Limits{
	MaxPickleBytes: 1 << 30,
	MaxStack:       1 << 20,
	MaxMarks:       1000,
	MaxMemo:        1 << 24,
	MaxLine:        1 << 16,
	MaxDepth:       1000,
	MaxObjects:     1 << 24,
}

// scanPickle walks the opcodes of one pickle without building anything, checks it
// against the limits, and returns its length in bytes (through STOP). Nothing is
// allocated for what the pickle claims until this pass has seen it hold together: the
// machine that then builds the objects (machine.go) runs only on a pickle that passed. avail is how many bytes the source can still deliver.
func scanPickle(r io.ByteReader, avail int64, lim Limits) (int64, error) {
	n, _, _, err := scanPickleMemo(r, avail, lim)
	return n, err
}

// scanPickleMemo is scanPickle that also returns how many memo entries the pickle makes,
// about the number of objects it builds, and the pickle's protocol: its PROTO opcode's,
// else 1 when it uses protocol 1's binary opcodes, else 0.
func scanPickleMemo(r io.ByteReader, avail int64, lim Limits) (n int64, memo, proto int, err error) {
	s := scanner{r: r, avail: avail, lim: lim}
	n, err = s.run()
	return n, s.memo.n, s.proto, err
}

// protocol1Ops are the opcodes protocol 1 added; a pickle without PROTO that uses one is
// protocol 1.
var protocol1Ops = [256]bool{'J': true, 'K': true, 'M': true, 'Q': true, 'T': true, 'U': true,
	'X': true, 'h': true, 'j': true, 'q': true, 'r': true, ']': true, '}': true, ')': true,
	'e': true, 'u': true, 'G': true, '1': true, 'o': true}

type scanner struct {
	r     io.ByteReader
	buf   []byte // the whole source, when it is in memory: read directly, not through r
	avail int64
	pos   int64
	lim   Limits
	stack int   // values above the innermost mark
	marks []int // saved stack heights
	total int   // values and marks on the whole stack
	memo  memoSet
	read  memoSet // slots some GET reads
	proto int
}

// memoSet records which memo slots have been PUT. Picklers number the slots 0, 1, 2, ...,
// so a bit per slot costs far less than a map entry; a slot far beyond the number of
// entries goes to a map instead, so that a hostile index cannot make the bits large.
type memoSet struct {
	bits   []uint64
	sparse map[uint64]bool
	n      int // distinct slots
}

func (m *memoSet) has(i uint64) bool {
	if i/64 < uint64(len(m.bits)) {
		return m.bits[i/64]&(1<<(i%64)) != 0
	}
	return m.sparse[i]
}

func (m *memoSet) add(i uint64) {
	if m.has(i) {
		return
	}
	m.n++
	if w := i / 64; w < uint64(len(m.bits)) || w <= 2*uint64(m.n/64)+16 {
		if w >= uint64(len(m.bits)) {
			m.bits = append(m.bits, make([]uint64, int(w)+1-len(m.bits))...)
		}
		m.bits[w] |= 1 << (i % 64)
		return
	}
	if m.sparse == nil {
		m.sparse = map[uint64]bool{}
	}
	m.sparse[i] = true
}

var errShort = errors.New("ends before its STOP opcode")

func (s *scanner) byte1() (byte, error) {
	if s.pos >= s.avail {
		return 0, errShort
	}
	if s.buf != nil {
		if s.pos >= int64(len(s.buf)) {
			return 0, errShort
		}
		b := s.buf[s.pos]
		s.pos++
		return b, nil
	}
	b, err := s.r.ReadByte()
	if err != nil {
		return 0, errShort
	}
	s.pos++
	return b, nil
}

func (s *scanner) skip(n uint64) error {
	if n > uint64(s.avail-s.pos) {
		return fmt.Errorf("%w: an argument claims %d bytes, %d remain", ErrTruncated, n, s.avail-s.pos)
	}
	if n > uint64(s.lim.MaxPickleBytes) {
		return fmt.Errorf("%w: a %d-byte argument", ErrLimit, n)
	}
	if s.buf != nil {
		if n > uint64(int64(len(s.buf))-s.pos) {
			return errShort
		}
		s.pos += int64(n)
		return nil
	}
	for i := uint64(0); i < n; i++ {
		if _, err := s.byte1(); err != nil {
			return err
		}
	}
	return nil
}

func (s *scanner) uint(n int) (uint64, error) {
	var buf [8]byte
	for i := 0; i < n; i++ {
		b, err := s.byte1()
		if err != nil {
			return 0, err
		}
		buf[i] = b
	}
	return binary.LittleEndian.Uint64(buf[:]), nil
}

func (s *scanner) line() ([]byte, error) {
	var out []byte
	for {
		b, err := s.byte1()
		if err != nil {
			return nil, err
		}
		if b == '\n' {
			return out, nil
		}
		if len(out) >= s.lim.MaxLine {
			return nil, fmt.Errorf("%w: a text argument longer than %d bytes", ErrLimit, s.lim.MaxLine)
		}
		out = append(out, b)
	}
}

// push and pop track the stack height between marks.
func (s *scanner) push(n int) error {
	s.stack += n
	s.total += n
	if s.total > s.lim.MaxStack {
		return fmt.Errorf("%w: more than %d values on the pickle stack", ErrLimit, s.lim.MaxStack)
	}
	return nil
}

func (s *scanner) pop(n int, op byte) error {
	if s.stack < n {
		return fmt.Errorf("%w: opcode %q at byte %d pops an empty stack", ErrCorrupt, op, s.pos-1)
	}
	s.stack -= n
	s.total -= n
	return nil
}

// need checks that n values sit above the innermost mark.
func (s *scanner) need(n int, op byte) error {
	if s.stack < n {
		return fmt.Errorf("%w: opcode %q at byte %d needs %d values on the stack", ErrCorrupt, op, s.pos-1, n)
	}
	return nil
}

func (s *scanner) popMark(op byte) error {
	if len(s.marks) == 0 {
		return fmt.Errorf("%w: opcode %q at byte %d without a MARK", ErrCorrupt, op, s.pos-1)
	}
	s.total -= s.stack + 1
	s.stack = s.marks[len(s.marks)-1]
	s.marks = s.marks[:len(s.marks)-1]
	return nil
}

func (s *scanner) put(idx uint64) error {
	if s.stack == 0 {
		return fmt.Errorf("%w: memo PUT from an empty stack at byte %d", ErrCorrupt, s.pos)
	}
	if !s.memo.has(idx) && s.memo.n >= s.lim.MaxMemo {
		return fmt.Errorf("%w: more than %d memo entries", ErrLimit, s.lim.MaxMemo)
	}
	s.memo.add(idx)
	return nil
}

func (s *scanner) get(idx uint64) error {
	if !s.memo.has(idx) {
		return fmt.Errorf("%w: memo GET of slot %d that was never PUT", ErrCorrupt, idx)
	}
	s.read.add(idx)
	return s.push(1)
}

func (s *scanner) textIndex(op byte) (uint64, error) {
	l, err := s.line()
	if err != nil {
		return 0, err
	}
	var v uint64
	if len(l) == 0 || len(l) > 18 {
		return 0, fmt.Errorf("%w: bad memo index for opcode %q", ErrCorrupt, op)
	}
	for _, c := range l {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: bad memo index for opcode %q", ErrCorrupt, op)
		}
		v = v*10 + uint64(c-'0')
	}
	return v, nil
}

func (s *scanner) run() (int64, error) {
	for {
		op, err := s.byte1()
		if err != nil {
			return 0, fmt.Errorf("%w: pickle %v", ErrTruncated, err)
		}
		if s.proto == 0 && protocol1Ops[op] {
			s.proto = 1
		}
		if err := s.step(op); err != nil {
			if err == errStop {
				return s.pos, nil
			}
			if err == errShort {
				return 0, fmt.Errorf("%w: pickle %v", ErrTruncated, err)
			}
			return 0, err
		}
	}
}

var errStop = errors.New("stop")

// step checks one opcode's argument and applies its effect on the stack height.
// The opcode set is Python's, protocols 0 to 5.
func (s *scanner) step(op byte) error {
	switch op {
	case '.': // STOP
		if s.stack != 1 || len(s.marks) != 0 {
			return fmt.Errorf("%w: STOP with %d values and %d marks on the stack", ErrCorrupt, s.stack, len(s.marks))
		}
		return errStop
	case 0x80: // PROTO
		p, err := s.byte1()
		if err != nil {
			return err
		}
		if p > 5 {
			return fmt.Errorf("%w: pickle protocol %d", ErrUnsupported, p)
		}
		s.proto = int(p)
		return nil
	case 0x95: // FRAME: a hint, the opcodes inside are scanned like any others
		n, err := s.uint(8)
		if err != nil {
			return err
		}
		if n > uint64(s.avail-s.pos) {
			return fmt.Errorf("%w: a frame claims %d bytes, %d remain", ErrTruncated, n, s.avail-s.pos)
		}
		return nil
	case '(': // MARK
		if len(s.marks) >= s.lim.MaxMarks {
			return fmt.Errorf("%w: more than %d nested MARKs", ErrLimit, s.lim.MaxMarks)
		}
		s.marks = append(s.marks, s.stack)
		s.stack = 0
		s.total++
		return nil
	case 'N', 0x88, 0x89, ')', ']', '}', 0x8f: // NONE NEWTRUE NEWFALSE EMPTY_TUPLE EMPTY_LIST EMPTY_DICT EMPTY_SET
		return s.push(1)
	case 'K': // BININT1
		return s.argPush(1)
	case 'M': // BININT2
		return s.argPush(2)
	case 'J': // BININT
		return s.argPush(4)
	case 'G': // BINFLOAT
		return s.argPush(8)
	case 'I', 'L', 'F', 'S', 'V': // INT LONG FLOAT STRING UNICODE (text)
		if _, err := s.line(); err != nil {
			return err
		}
		return s.push(1)
	case 0x8a: // LONG1
		n, err := s.uint(1)
		if err != nil {
			return err
		}
		return s.skipPush(n)
	case 0x8b: // LONG4
		n, err := s.uint(4)
		if err != nil {
			return err
		}
		return s.skipPush(n)
	case 'U', 'C', 0x8c: // SHORT_BINSTRING SHORT_BINBYTES SHORT_BINUNICODE
		n, err := s.uint(1)
		if err != nil {
			return err
		}
		return s.skipPush(n)
	case 'T', 'B', 'X': // BINSTRING BINBYTES BINUNICODE
		n, err := s.uint(4)
		if err != nil {
			return err
		}
		return s.skipPush(n)
	case 0x8d, 0x8e, 0x96: // BINUNICODE8 BINBYTES8 BYTEARRAY8
		n, err := s.uint(8)
		if err != nil {
			return err
		}
		return s.skipPush(n)
	case 'c': // GLOBAL: two text lines
		if _, err := s.line(); err != nil {
			return err
		}
		if _, err := s.line(); err != nil {
			return err
		}
		return s.push(1)
	case 0x93: // STACK_GLOBAL
		if err := s.pop(2, op); err != nil {
			return err
		}
		return s.push(1)
	case 'P': // PERSID
		if _, err := s.line(); err != nil {
			return err
		}
		return s.push(1)
	case 'Q', 0x85: // BINPERSID TUPLE1: pop one, push one
		return s.need(1, op)
	case 'R', 0x81: // REDUCE NEWOBJ: pop two, push one
		if err := s.pop(2, op); err != nil {
			return err
		}
		return s.push(1)
	case 0x92: // NEWOBJ_EX
		if err := s.pop(3, op); err != nil {
			return err
		}
		return s.push(1)
	case 'b', 'a': // BUILD APPEND: pop one into the object below
		if err := s.need(2, op); err != nil {
			return err
		}
		return s.pop(1, op)
	case 0x86: // TUPLE2
		if err := s.pop(2, op); err != nil {
			return err
		}
		return s.push(1)
	case 0x87: // TUPLE3
		if err := s.pop(3, op); err != nil {
			return err
		}
		return s.push(1)
	case 't', 'l', 'd', 0x91: // TUPLE LIST DICT FROZENSET: mark..items -> one
		if err := s.popMark(op); err != nil {
			return err
		}
		return s.push(1)
	case 'e', 'u', 0x90: // APPENDS SETITEMS ADDITEMS: mark..items into the object below
		if err := s.popMark(op); err != nil {
			return err
		}
		return s.need(1, op)
	case 's': // SETITEM
		if err := s.need(3, op); err != nil {
			return err
		}
		return s.pop(2, op)
	case '0': // POP
		if s.stack == 0 {
			return s.popMark(op)
		}
		return s.pop(1, op)
	case '1': // POP_MARK
		return s.popMark(op)
	case '2': // DUP
		if err := s.need(1, op); err != nil {
			return err
		}
		return s.push(1)
	case 'p': // PUT (text)
		idx, err := s.textIndex(op)
		if err != nil {
			return err
		}
		return s.put(idx)
	case 'q': // BINPUT
		idx, err := s.uint(1)
		if err != nil {
			return err
		}
		return s.put(idx)
	case 'r': // LONG_BINPUT
		idx, err := s.uint(4)
		if err != nil {
			return err
		}
		return s.put(idx)
	case 0x94: // MEMOIZE
		return s.put(uint64(s.memo.n))
	case 'g': // GET (text)
		idx, err := s.textIndex(op)
		if err != nil {
			return err
		}
		return s.get(idx)
	case 'h': // BINGET
		idx, err := s.uint(1)
		if err != nil {
			return err
		}
		return s.get(idx)
	case 'j': // LONG_BINGET
		idx, err := s.uint(4)
		if err != nil {
			return err
		}
		return s.get(idx)
	case 'i', 'o', 0x82, 0x83, 0x84, 0x97, 0x98:
		// INST OBJ EXT1 EXT2 EXT4 NEXT_BUFFER READONLY_BUFFER: never in torch checkpoints,
		// and INST/OBJ import classes by name.
		return fmt.Errorf("%w: pickle opcode 0x%02x, which torch checkpoints do not use", ErrUnsupported, op)
	}
	return fmt.Errorf("%w: unknown pickle opcode 0x%02x at byte %d", ErrCorrupt, op, s.pos-1)
}

func (s *scanner) argPush(n int) error {
	if _, err := s.uint(n); err != nil {
		return err
	}
	return s.push(1)
}

func (s *scanner) skipPush(n uint64) error {
	if err := s.skip(n); err != nil {
		return err
	}
	return s.push(1)
}

// scanPickleBytes scans a pickle held in memory, in place. Besides its length and
// protocol it returns the memo slots some GET reads: the machine keeps only those, so
// that the many objects a pickler memoizes and never refers to again are garbage as soon
// as they are used.
func scanPickleBytes(data []byte, lim Limits) (n int64, read *memoSet, proto int, err error) {
	s := scanner{buf: data, avail: int64(len(data)), lim: lim}
	n, err = s.run()
	return n, &s.read, s.proto, err
}

// scanStream scans one pickle at the start of r (at most avail bytes) and returns its length.
func scanStream(r io.Reader, avail int64, lim Limits) (int64, error) {
	return scanPickle(bufio.NewReaderSize(r, 64<<10), avail, lim)
}
