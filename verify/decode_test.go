package verify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

func TestDecodeLayouts(t *testing.T) {
	// logical [2, 3] tensor 1..6, stored in several ways
	want := []float64{1, 2, 3, 4, 5, 6}
	tests := []struct {
		name   string
		vals   []float64
		offset int64
		size   []int64
		stride []int64
		want   []float64
	}{
		{"contiguous", want, 0, []int64{2, 3}, []int64{3, 1}, want},
		{"transposed", []float64{1, 4, 2, 5, 3, 6}, 0, []int64{2, 3}, []int64{1, 2}, want},
		{"offset", []float64{9, 9, 1, 2, 3, 4, 5, 6, 9}, 2, []int64{2, 3}, []int64{3, 1}, want},
		{"row gap", []float64{1, 2, 3, 0, 4, 5, 6, 0}, 0, []int64{2, 3}, []int64{4, 1}, want},
		{"column of a matrix", []float64{0, 1, 0, 2, 0, 3}, 1, []int64{3}, []int64{2}, []float64{1, 2, 3}},
		{"broadcast", []float64{7}, 0, []int64{2, 2}, []int64{0, 0}, []float64{7, 7, 7, 7}},
		{"overlapping windows", []float64{1, 2, 3, 4}, 0, []int64{3, 2}, []int64{1, 1}, []float64{1, 2, 2, 3, 3, 4}},
		{"scalar", []float64{0, 5}, 1, nil, nil, []float64{5}},
		{"empty", []float64{1}, 0, []int64{0, 4}, []int64{4, 1}, []float64{}},
		{"4-D view", want, 0, []int64{2, 3, 1, 1}, []int64{3, 1, 1, 1}, want},
		{"4-D channels-last view", want, 0, []int64{1, 2, 3, 1}, []int64{6, 1, 2, 1}, []float64{1, 3, 5, 2, 4, 6}},
	}
	kinds := []checkpoint.StorageKind{checkpoint.Float32, checkpoint.Float64, checkpoint.Float16, checkpoint.BFloat16,
		checkpoint.Int64, checkpoint.Int32, checkpoint.Int16, checkpoint.Int8, checkpoint.Uint8}
	for _, tt := range tests {
		for _, kind := range kinds {
			t.Run(tt.name+"/"+kind.String(), func(t *testing.T) {
				b := newBuilder(t)
				ten := b.add("x", kind, tt.vals, tt.offset, tt.size, tt.stride)
				c := b.build()
				d, err := Decode(c, ten)
				if err != nil {
					t.Fatal(err)
				}
				if got := toFloat64(d.Data); !slices.Equal(got, tt.want) {
					t.Errorf("Decode = %v, want %v", got, tt.want)
				}
				if len(d.Shape) != len(tt.size) {
					t.Errorf("shape %v for size %v", d.Shape, tt.size)
				}
				got64, err := DecodeFloat64(c, ten)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got64, tt.want) {
					t.Errorf("DecodeFloat64 = %v, want %v", got64, tt.want)
				}
			})
		}
	}
}

func toFloat64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func TestDecodeFloat64Exact(t *testing.T) {
	vals := []float64{math.Pi, 1e300, -math.SmallestNonzeroFloat64, 1 + 0x1p-52}
	b := newBuilder(t)
	ten := b.add("x", checkpoint.Float64, vals, 0, []int64{4}, []int64{1})
	c := b.build()
	got, err := DecodeFloat64(c, ten)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, vals) {
		t.Errorf("DecodeFloat64 = %v, want %v", got, vals)
	}
	d, err := Decode(c, ten)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if d.Data[i] != float32(v) {
			t.Errorf("Decode[%d] = %v, want %v", i, d.Data[i], float32(v))
		}
	}
}

func TestDecodeBool(t *testing.T) {
	b := newBuilder(t)
	ten := b.add("x", checkpoint.Bool, []float64{0, 1, 1}, 0, []int64{3}, []int64{1})
	d, err := Decode(b.build(), ten)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Data, []float32{0, 1, 1}) {
		t.Errorf("Decode = %v", d.Data)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		offset int64
		size   []int64
		stride []int64
		want   error
	}{
		{"past the end", 0, []int64{2, 4}, []int64{4, 1}, ErrOutOfBounds},
		{"offset past the end", 5, []int64{2}, []int64{1}, ErrOutOfBounds},
		{"negative offset", -1, []int64{2}, []int64{1}, ErrOutOfBounds},
		{"stride past the end", 0, []int64{2, 3}, []int64{1, 3}, ErrOutOfBounds},
		{"rank mismatch", 0, []int64{2, 3}, []int64{3}, nil},
		{"negative size", 0, []int64{-2}, []int64{1}, nil},
		{"huge", 0, []int64{1 << 30, 1 << 30}, []int64{0, 0}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder(t)
			ten := b.add("x", checkpoint.Float32, []float64{1, 2, 3, 4, 5, 6}, tt.offset, tt.size, tt.stride)
			_, err := Decode(b.build(), ten)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
	b := newBuilder(t)
	ten := b.add("x", checkpoint.Float32, []float64{1}, 0, []int64{1}, []int64{1})
	ten.Storage.Kind = checkpoint.Complex64
	b.data[ten.Storage] = make([]byte, 8)
	if _, err := Decode(b.build(), ten); !errors.Is(err, ErrDType) {
		t.Errorf("complex64: error %v, want %v", err, ErrDType)
	}
}

func TestHalfToFloat32(t *testing.T) {
	for h := range 1 << 16 {
		got := halfToFloat32(uint16(h))
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		exp, mant := h>>10&0x1f, h&0x3ff
		var want float64
		switch exp {
		case 0:
			want = sign * math.Ldexp(float64(mant), -24)
		case 31:
			want = math.Inf(int(sign))
			if mant != 0 {
				if !math.IsNaN(float64(got)) {
					t.Fatalf("%#04x: got %v, want NaN", h, got)
				}
				continue
			}
		default:
			want = sign * math.Ldexp(1+float64(mant)/1024, exp-15)
		}
		if float64(got) != want || math.Signbit(float64(got)) != (sign < 0) {
			t.Fatalf("%#04x: got %v, want %v", h, got, want)
		}
	}
}

func TestDecodeHalfSpecials(t *testing.T) {
	b := newBuilder(t)
	ten := b.add("x", checkpoint.Float16, []float64{0, 0, 0}, 0, []int64{3}, []int64{1})
	b.data[ten.Storage] = []byte{0x01, 0x00, 0x00, 0x7c, 0x00, 0xfc} // 2^-24, +inf, -inf
	d, err := Decode(b.build(), ten)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0x1p-24, float32(math.Inf(1)), float32(math.Inf(-1))}
	if !slices.Equal(d.Data, want) {
		t.Errorf("Decode = %v, want %v", d.Data, want)
	}
}

// A window in the middle of a large storage decodes to exactly its elements.
func TestDecodeWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	vals := exactValues(rng, 1000)
	b := newBuilder(t)
	ten := b.add("x", checkpoint.Float32, vals, 100, []int64{10, 10}, []int64{20, 1})
	got, err := Decode(b.build(), ten)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		for j := range 10 {
			if w := vals[100+20*i+j]; float64(got.Data[10*i+j]) != w {
				t.Fatalf("element (%d, %d) = %v, want %v", i, j, got.Data[10*i+j], w)
			}
		}
	}
}

// Streaming in storage order gives the same elements whatever the chunk size.
func TestDecodeStreamChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	vals := exactValues(rng, 400)
	views := []struct {
		name   string
		offset int64
		size   []int64
		stride []int64
	}{
		{"transposed", 0, []int64{20, 20}, []int64{1, 20}},
		{"permuted 3-D with offset", 7, []int64{3, 4, 5}, []int64{1, 15, 3}},
		{"gaps", 5, []int64{6, 7}, []int64{50, 3}},
		{"4-D view of a transpose", 0, []int64{20, 5, 2, 2}, []int64{1, 80, 40, 20}},
	}
	for _, v := range views {
		for _, kind := range []checkpoint.StorageKind{checkpoint.Float32, checkpoint.Float16} {
			t.Run(v.name+"/"+kind.String(), func(t *testing.T) {
				b := newBuilder(t)
				ten := b.add("x", kind, vals, v.offset, v.size, v.stride)
				c := b.build()
				if _, ok := storageOrder(ten); !ok {
					t.Fatal("view not streamable")
				}
				want := expectedView(vals, v.offset, v.size, v.stride)
				for _, chunk := range []int64{2, 6, 64, 4 << 20} {
					saved := streamChunk
					streamChunk = chunk
					got, err := DecodeFloat64(c, ten)
					streamChunk = saved
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(got, want) {
						t.Fatalf("chunk %d: got %v, want %v", chunk, got, want)
					}
				}
			})
		}
	}
}

// expectedView gathers a strided view the obvious way.
func expectedView(vals []float64, offset int64, size, stride []int64) []float64 {
	var out []float64
	var walk func(d int, pos int64)
	walk = func(d int, pos int64) {
		if d == len(size) {
			out = append(out, vals[pos])
			return
		}
		for i := int64(0); i < size[d]; i++ {
			walk(d+1, pos+i*stride[d])
		}
	}
	walk(0, offset)
	return out
}

// TestBlockReads reads storages through a block as readAt does: the same bytes, the same
// errors, and one read of the file for neighbouring storages.
func TestBlockReads(t *testing.T) {
	b := newBuilder(t)
	for i := range 6 {
		b.add(fmt.Sprint("t", i), checkpoint.Float32, []float64{float64(i), 1, 2}, 0, []int64{3}, []int64{1})
	}
	c := b.build()
	src, size := c.Source()
	reads := 0
	counted := checkpoint.New(c.Root, readerAtFunc(func(p []byte, off int64) (int, error) {
		reads++
		return src.ReadAt(p, off)
	}), size, c.Name)
	var blk block
	for _, s := range checkpoint.Storages(c.Root) {
		for _, span := range [][2]int64{{0, 12}, {4, 8}, {8, 4}} {
			want := make([]byte, span[1])
			if err := readAt(c, s, want, span[0]); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, span[1])
			if err := blk.readAt(counted, s, got, span[0]); err != nil || !bytes.Equal(got, want) {
				t.Errorf("storage %s bytes %v: %v, %v; want %v", s.Key, span, got, err, want)
			}
		}
		if err := blk.readAt(counted, s, make([]byte, 8), 8); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("storage %s: reading past its end: %v, want io.ErrUnexpectedEOF", s.Key, err)
		}
	}
	if reads != 1 {
		t.Errorf("%d reads of the file for 6 storages one after another, want 1", reads)
	}
	// A file shorter than its storages need: the error readAt gives.
	short := checkpoint.New(c.Root, bytes.NewReader(make([]byte, 30)), size, c.Name)
	last := checkpoint.Storages(c.Root)[5]
	want := readAt(short, last, make([]byte, 12), 0)
	if err := (&block{}).readAt(short, last, make([]byte, 12), 0); want == nil || err == nil || err.Error() != want.Error() {
		t.Errorf("a short file: %v, want %v", err, want)
	}
}

type readerAtFunc func(p []byte, off int64) (int, error)

func (f readerAtFunc) ReadAt(p []byte, off int64) (int, error) { return f(p, off) }
