package verify

import (
	"encoding/binary"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"math"
	"math/rand/v2"
	"testing"
)

// encode stores values as little-endian elements of kind. Values must be exact in kind.
func encode(t testing.TB, kind checkpoint.StorageKind, vals []float64) []byte {
	t.Helper()
	size := kind.ItemSize()
	b := make([]byte, len(vals)*size)
	le := binary.LittleEndian
	for i, v := range vals {
		p := b[i*size:]
		switch kind {
		case checkpoint.Float32:
			le.PutUint32(p, math.Float32bits(float32(v)))
		case checkpoint.Float64:
			le.PutUint64(p, math.Float64bits(v))
		case checkpoint.BFloat16:
			bits := math.Float32bits(float32(v))
			if bits&0xffff != 0 {
				t.Fatalf("%v is not exact in bfloat16", v)
			}
			le.PutUint16(p, uint16(bits>>16))
		case checkpoint.Float16:
			le.PutUint16(p, exactHalf(t, v))
		case checkpoint.Int64:
			le.PutUint64(p, uint64(int64(v)))
		case checkpoint.Int32:
			le.PutUint32(p, uint32(int32(v)))
		case checkpoint.Int16:
			le.PutUint16(p, uint16(int16(v)))
		case checkpoint.Int8, checkpoint.Uint8, checkpoint.Bool:
			p[0] = byte(int(v))
		case checkpoint.UInt16:
			le.PutUint16(p, uint16(v))
		case checkpoint.UInt32:
			le.PutUint32(p, uint32(v))
		case checkpoint.UInt64:
			le.PutUint64(p, uint64(v))
		case checkpoint.Float8E4M3FN:
			p[0] = exactFloat8(t, &float8E4M3FN, v)
		case checkpoint.Float8E5M2:
			p[0] = exactFloat8(t, &float8E5M2, v)
		default:
			t.Fatalf("cannot encode %s", kind)
		}
	}
	return b
}

// exactHalf encodes a finite value that must be exact in float16.
func exactHalf(t testing.TB, v float64) uint16 {
	t.Helper()
	var sign uint16
	if math.Signbit(v) {
		sign = 0x8000
	}
	if a := math.Abs(v); a < 0x1p-14 { // zero or subnormal: a multiple of 2^-24
		m := a * (1 << 24)
		if m != math.Trunc(m) {
			t.Fatalf("%v is not exact in float16", v)
		}
		return sign | uint16(m)
	}
	bits := math.Float32bits(float32(v))
	exp := int(bits>>23&0xff) - 127 + 15
	if float64(float32(v)) != v || exp >= 31 || bits&0x1fff != 0 {
		t.Fatalf("%v is not exact in float16", v)
	}
	return sign | uint16(exp)<<10 | uint16(bits>>13&0x3ff)
}

// exactValues returns n values k/128, |k| < 128, exact in every float dtype.
func exactValues(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(rng.IntN(255)-127) / 128
	}
	return v
}

// ckBuilder assembles an in-memory checkpoint.
type ckBuilder struct {
	t       testing.TB
	dict    *checkpoint.OrderedDict
	data    map[*checkpoint.Storage][]byte
	storage int
}

func newBuilder(t testing.TB) *ckBuilder {
	return &ckBuilder{t: t, dict: &checkpoint.OrderedDict{}, data: map[*checkpoint.Storage][]byte{}}
}

// add stores vals in a new storage and adds a view of it under key.
func (b *ckBuilder) add(key string, kind checkpoint.StorageKind, vals []float64, offset int64, size, stride []int64) *checkpoint.Tensor {
	s := &checkpoint.Storage{Kind: kind, Key: fmt.Sprint(b.storage), Location: "cpu", Len: int64(len(vals))}
	b.storage++
	b.data[s] = encode(b.t, kind, vals)
	t := &checkpoint.Tensor{Storage: s, Offset: offset, Size: size, Stride: stride}
	b.dict.Entries = append(b.dict.Entries, checkpoint.Entry{Key: key, Value: t})
	return t
}

func (b *ckBuilder) build() *checkpoint.Checkpoint {
	c, err := checkpoint.FromBytes(b.dict, b.data)
	if err != nil {
		b.t.Fatal(err)
	}
	return c
}

// layout is how the original 2-D weight sits in its storage.
type layout int

const (
	contiguous layout = iota
	transposed        // storage holds Wᵀ, the view has strides (1, out)
	offsetView        // the view starts 3 elements into a larger storage
)

// variant is how the converted 4-D view maps onto the same elements.
type variant int

const (
	correct      variant = iota // strides (s0, H·W·s1, W·s1, s1): torch's flatten order
	channelsLast                // the weight flattened as H, W, C
	swappedHW                   // H and W exchanged
)

type fcSpec struct {
	name       string
	out        int
	c, h, w    int
	bias       bool
	layout     layout
	conversion variant
}

// buildFC adds spec's 2-D weight to orig and its 4-D view to conv, each checkpoint with
// its own storages holding the same bytes. It returns the logical weight values.
func buildFC(rng *rand.Rand, orig, conv *ckBuilder, kind checkpoint.StorageKind, spec fcSpec) []float64 {
	out, in := spec.out, spec.c*spec.h*spec.w
	w := exactValues(rng, out*in)
	var vals []float64
	var offset, s0, s1 int64
	switch spec.layout {
	case contiguous:
		vals, s0, s1 = w, int64(in), 1
	case transposed:
		vals = make([]float64, len(w))
		for o := range out {
			for i := range in {
				vals[i*out+o] = w[o*in+i]
			}
		}
		s0, s1 = 1, int64(out)
	case offsetView:
		vals = append(append([]float64{0.5, -0.5, 0.25}, w...), 0.75, 1)
		offset, s0, s1 = 3, int64(in), 1
	}
	C, H, W := int64(spec.c), int64(spec.h), int64(spec.w)
	var stride []int64
	switch spec.conversion {
	case correct:
		stride = []int64{s0, H * W * s1, W * s1, s1}
	case channelsLast:
		stride = []int64{s0, s1, W * C * s1, C * s1}
	case swappedHW:
		stride = []int64{s0, H * W * s1, s1, H * s1}
	}
	orig.add(spec.name+".weight", kind, vals, offset, []int64{int64(out), int64(in)}, []int64{s0, s1})
	conv.add(spec.name+".weight", kind, vals, offset, []int64{int64(out), C, H, W}, stride)
	if spec.bias {
		b := exactValues(rng, out)
		orig.add(spec.name+".bias", kind, b, 0, []int64{int64(out)}, []int64{1})
		conv.add(spec.name+".bias", kind, b, 0, []int64{int64(out)}, []int64{1})
	}
	return w
}

// exactFloat8 finds the byte whose value is v (NaNs by their sign).
func exactFloat8(t testing.TB, table *[256]float32, v float64) byte {
	t.Helper()
	for b, x := range table {
		if float64(x) == v && math.Signbit(float64(x)) == math.Signbit(v) ||
			math.IsNaN(v) && math.IsNaN(float64(x)) && math.Signbit(float64(x)) == math.Signbit(v) {
			return byte(b)
		}
	}
	t.Fatalf("%v is not exact in this float8 format", v)
	return 0
}
