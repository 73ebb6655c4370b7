package verify

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/blockread"
	"io"
	"math"
	"slices"
	"unsafe"
)

var (
	// ErrOutOfBounds: a tensor's view reaches outside its storage.
	ErrOutOfBounds = errors.New("tensor view reaches outside its storage")
	// ErrDType: the tensor's element type cannot be decoded to real numbers.
	ErrDType = errors.New("unsupported dtype")
)

// maxElements bounds what one decode may allocate, so that a corrupt size tuple fails
// cleanly instead of asking for exabytes.
const maxElements = 1 << 36

// Dense is a row-major array of float32 values.
type Dense struct {
	Shape []int
	Data  []float32
}

// NewDense returns a zeroed array of the given shape.
func NewDense(shape ...int) *Dense {
	return &Dense{Shape: append([]int(nil), shape...), Data: make([]float32, numElements(shape))}
}

func numElements(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}

// Decode reads the tensor's elements from the checkpoint into a row-major float32 array,
// honouring the storage offset and arbitrary strides. Only the storage span the view can
// touch is read. A contiguous float32 tensor is read straight into the result; other
// layouts stream the span in storage order through a small buffer, scattering each element
// to its place, so no second copy of a large weight is made. Float16, bfloat16 and integer values
// convert to float32 exactly (integers beyond 2^24 round); float64 values round to nearest.
func Decode(c *checkpoint.Checkpoint, t *checkpoint.Tensor) (*Dense, error) {
	data, shape, err := decodeAs[float32](c, t)
	if err != nil {
		return nil, err
	}
	return &Dense{Shape: shape, Data: data}, nil
}

// DecodeFloat64 is Decode with float64 results, exact for every real dtype torch stores
// (int64 values beyond 2^53 round). It returns the elements in row-major order.
func DecodeFloat64(c *checkpoint.Checkpoint, t *checkpoint.Tensor) ([]float64, error) {
	data, _, err := decodeAs[float64](c, t)
	return data, err
}

type float interface{ ~float32 | ~float64 }

var littleEndianHost = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func decodeAs[T float](c *checkpoint.Checkpoint, t *checkpoint.Tensor) ([]T, []int, error) {
	return decodeWith(source{c: c}, t, func(n int) []T { return make([]T, n) })
}

// decodeWith is decodeAs with the result in a buffer of n elements that alloc returns
// zeroed.
func decodeWith[T float](c source, t *checkpoint.Tensor, alloc func(n int) []T) ([]T, []int, error) {
	lo, hi, shape, err := checkView(t)
	if err != nil {
		return nil, nil, err
	}
	n := numElements(shape)
	out := alloc(n)
	if n == 0 {
		return out, shape, nil
	}
	s := t.Storage
	kind := t.Kind()
	size := kind.ItemSize()
	var zero T
	if t.IsContiguous() && littleEndianHost && uintptr(size) == unsafe.Sizeof(zero) &&
		(kind == checkpoint.Float32 && size == 4 || kind == checkpoint.Float64 && size == 8) {
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), n*size)
		if err := c.readAt(s, raw, lo*int64(size)); err != nil {
			return nil, nil, err
		}
		return out, shape, nil
	}
	elem, err := converter[T](kind)
	if err != nil {
		return nil, nil, err
	}
	if order, ok := storageOrder(t); ok {
		if err := streamInto(c, t, order, lo, hi, out, elem); err != nil {
			return nil, nil, err
		}
		return out, shape, nil
	}
	// Overlapping views (stride 0, or strides that interleave) revisit elements: read the
	// span once and gather.
	raw := make([]byte, (hi-lo)*int64(size))
	if err := c.readAt(s, raw, lo*int64(size)); err != nil {
		return nil, nil, err
	}
	i := 0
	forEachRow(t.Size, t.Stride, t.Offset-lo, func(start, step int64, count int) {
		for k := 0; k < count; k++ {
			p := (start + int64(k)*step) * int64(size)
			out[i] = elem(raw[p : p+int64(size)])
			i++
		}
	})
	return out, shape, nil
}

// storageOrder returns the tensor's dimensions (those longer than 1) from the largest
// stride to the smallest, if walking them in that order visits strictly increasing storage
// positions: true of every view that does not overlap itself, such as transposes, slices
// and offsets.
func storageOrder(t *checkpoint.Tensor) ([]int, bool) {
	var order []int
	for d, n := range t.Size {
		if n > 1 {
			order = append(order, d)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(t.Stride[b], t.Stride[a]) })
	for j, d := range order {
		if t.Stride[d] < 1 {
			return nil, false
		}
		if j+1 < len(order) {
			next := order[j+1]
			if t.Stride[d] < t.Stride[next]*t.Size[next] {
				return nil, false
			}
		}
	}
	return order, true
}

// streamChunk is how many bytes of storage streamInto reads at a time.
var streamChunk int64 = 4 << 20

// streamInto decodes a non-overlapping view by walking it in storage order, reading the
// span front to back in chunks and scattering each element to its row-major place, so
// that memory beyond the result stays bounded whatever the layout.
func streamInto[T float](c source, t *checkpoint.Tensor, order []int, lo, hi int64, out []T, elem func([]byte) T) error {
	size := int64(t.Kind().ItemSize())
	outStride := make([]int64, len(t.Size))
	step := int64(1)
	for d := len(t.Size) - 1; d >= 0; d-- {
		outStride[d] = step
		step *= t.Size[d]
	}
	buf := make([]byte, min(max(1, streamChunk/size), hi-lo)*size)
	var bufLo, bufHi int64 // storage positions (elements) buf holds
	load := func(pos int64) error {
		n := min(int64(len(buf))/size, hi-pos)
		bufLo, bufHi = pos, pos+n
		return c.readAt(t.Storage, buf[:n*size], pos*size)
	}
	if len(order) == 0 { // a single element
		if err := load(t.Offset); err != nil {
			return err
		}
		out[0] = elem(buf[:size])
		return nil
	}
	inner := order[len(order)-1]
	outer := order[:len(order)-1]
	idx := make([]int64, len(outer))
	for {
		pos, dst := t.Offset, int64(0)
		for j, d := range outer {
			pos += idx[j] * t.Stride[d]
			dst += idx[j] * outStride[d]
		}
		for k := int64(0); k < t.Size[inner]; k++ {
			if pos >= bufHi {
				if err := load(pos); err != nil {
					return err
				}
			}
			p := (pos - bufLo) * size
			out[dst] = elem(buf[p : p+size])
			pos += t.Stride[inner]
			dst += outStride[inner]
		}
		j := len(outer) - 1
		for ; j >= 0; j-- {
			idx[j]++
			if idx[j] < t.Size[outer[j]] {
				break
			}
			idx[j] = 0
		}
		if j < 0 {
			return nil
		}
	}
}

// checkView validates the tensor's view against its storage and returns the element span
// [lo, hi) it touches and its shape.
func checkView(t *checkpoint.Tensor) (lo, hi int64, shape []int, err error) {
	if t == nil || t.Storage == nil {
		return 0, 0, nil, fmt.Errorf("tensor has no storage")
	}
	if len(t.Size) != len(t.Stride) {
		return 0, 0, nil, fmt.Errorf("tensor has %d sizes but %d strides", len(t.Size), len(t.Stride))
	}
	n := int64(1)
	shape = make([]int, len(t.Size))
	for i, s := range t.Size {
		if s < 0 {
			return 0, 0, nil, fmt.Errorf("tensor size %s has a negative dimension", shapeText(t.Size))
		}
		if s > 0 && n > maxElements/s {
			return 0, 0, nil, fmt.Errorf("tensor size %s: more than %d elements", shapeText(t.Size), int64(maxElements))
		}
		n *= s
		shape[i] = int(s)
	}
	item := int64(t.Kind().ItemSize())
	if item == 0 || t.Quant != nil {
		return 0, 0, nil, fmt.Errorf("storage %q: %w %s", t.Storage.Key, ErrDType, t.Kind())
	}
	lo, hi = t.Span()
	// Elements of the tensor's dtype that fit in the storage (an untyped storage counts bytes).
	held := t.Storage.ByteLen() / item
	if n > 0 && (t.Offset < 0 || lo < 0 || hi > held) {
		return 0, 0, nil, fmt.Errorf("tensor at offset %d size %s stride %s touches elements [%d, %d) of storage %q holding %d: %w",
			t.Offset, shapeText(t.Size), shapeText(t.Stride), lo, hi, t.Storage.Key, held, ErrOutOfBounds)
	}
	return lo, hi, shape, nil
}

// source is where decoding reads a checkpoint's storages: through blk, when set, for small
// reads, and with readAt otherwise.
type source struct {
	c   *checkpoint.Checkpoint
	blk *block
}

func (r source) readAt(s *checkpoint.Storage, buf []byte, off int64) error {
	if r.blk != nil && len(buf) <= smallRead {
		return r.blk.readAt(r.c, s, buf, off)
	}
	return readAt(r.c, s, buf, off)
}

// smallRead is the most bytes a block serves in one read; blockSize is how many bytes of
// the file a block holds.
const (
	smallRead = 64 << 10
	blockSize = 1 << 20
)

// block serves small reads of a checkpoint's storages from one span of its file, read
// blockSize bytes at a time from the first byte asked for. Check loads layers in file
// order, so the weights and biases of a checkpoint of thousands of small layers cost a few
// reads rather than one each, and copying them touches no page of a mapping, which would
// count as the process's own memory. A block serves one checkpoint.
type block struct{ r *blockread.Reader }

// readAt is readAt of the storage's bytes, through the block.
func (b *block) readAt(c *checkpoint.Checkpoint, s *checkpoint.Storage, buf []byte, off int64) error {
	src, size := c.Source()
	if src == nil {
		return readAt(c, s, buf, off)
	}
	if off < 0 || off > s.ByteLen()-int64(len(buf)) {
		return fmt.Errorf("reading storage %q: %w", s.Key, io.ErrUnexpectedEOF)
	}
	if b.r == nil {
		b.r = blockread.NewReader(src, size, blockSize, smallRead)
	}
	if n, err := b.r.ReadAt(buf, s.Offset+off); err != nil || n < len(buf) {
		return readAt(c, s, buf, off) // which names what went wrong
	}
	return nil
}

// readAt reads len(buf) bytes of the storage from byte offset off: from the mapping when
// there is one, and from the file otherwise.
func readAt(c *checkpoint.Checkpoint, s *checkpoint.Storage, buf []byte, off int64) error {
	if b, ok := c.MappedBytes(s); ok {
		if off < 0 || off > int64(len(b))-int64(len(buf)) {
			return fmt.Errorf("reading storage %q: %w", s.Key, io.ErrUnexpectedEOF)
		}
		copy(buf, b[off:])
		return nil
	}
	r := c.StorageReader(s)
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("reading storage %q: %w", s.Key, err)
}

// forEachRow calls fn once for every innermost row of a strided view, in row-major order,
// with the row's first position (relative to the span start), its step and its length.
func forEachRow(size, stride []int64, start int64, fn func(start, step int64, count int)) {
	if len(size) == 0 {
		fn(start, 1, 1)
		return
	}
	last := len(size) - 1
	idx := make([]int64, last)
	for {
		pos := start
		for d, i := range idx {
			pos += i * stride[d]
		}
		fn(pos, stride[last], int(size[last]))
		d := last - 1
		for ; d >= 0; d-- {
			idx[d]++
			if idx[d] < size[d] {
				break
			}
			idx[d] = 0
		}
		if d < 0 {
			return
		}
	}
}

// converter returns a function that decodes one little-endian element of kind k.
func converter[T float](k checkpoint.StorageKind) (func([]byte) T, error) {
	le := binary.LittleEndian
	switch k {
	case checkpoint.Float32:
		return func(b []byte) T { return T(math.Float32frombits(le.Uint32(b))) }, nil
	case checkpoint.Float64:
		return func(b []byte) T { return T(math.Float64frombits(le.Uint64(b))) }, nil
	case checkpoint.Float16:
		return func(b []byte) T { return T(halfToFloat32(le.Uint16(b))) }, nil
	case checkpoint.BFloat16:
		return func(b []byte) T { return T(math.Float32frombits(uint32(le.Uint16(b)) << 16)) }, nil
	case checkpoint.Int64:
		return func(b []byte) T { return T(int64(le.Uint64(b))) }, nil
	case checkpoint.Int32:
		return func(b []byte) T { return T(int32(le.Uint32(b))) }, nil
	case checkpoint.Int16:
		return func(b []byte) T { return T(int16(le.Uint16(b))) }, nil
	case checkpoint.Int8:
		return func(b []byte) T { return T(int8(b[0])) }, nil
	case checkpoint.Uint8:
		return func(b []byte) T { return T(b[0]) }, nil
	case checkpoint.Bool:
		return func(b []byte) T {
			if b[0] != 0 {
				return 1
			}
			return 0
		}, nil
	case checkpoint.UInt16:
		return func(b []byte) T { return T(le.Uint16(b)) }, nil
	case checkpoint.UInt32:
		return func(b []byte) T { return T(le.Uint32(b)) }, nil
	case checkpoint.UInt64:
		return func(b []byte) T { return T(le.Uint64(b)) }, nil
	case checkpoint.Float8E4M3FN:
		return func(b []byte) T { return T(float8E4M3FN[b[0]]) }, nil
	case checkpoint.Float8E5M2:
		return func(b []byte) T { return T(float8E5M2[b[0]]) }, nil
	case checkpoint.Float8E4M3FNUZ:
		return func(b []byte) T { return T(float8E4M3FNUZ[b[0]]) }, nil
	case checkpoint.Float8E5M2FNUZ:
		return func(b []byte) T { return T(float8E5M2FNUZ[b[0]]) }, nil
	}
	return nil, fmt.Errorf("%w %s", ErrDType, k)
}

// halfToFloat32 widens an IEEE 754 binary16 value; every half value is exact in float32.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, nan
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0: // zero, subnormal: mant * 2^-24
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
