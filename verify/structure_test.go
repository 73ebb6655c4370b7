package verify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// proveCase builds an original with a Linear fc (4 -> 2, bias), a second tensor sharing a
// storage with a view of it, a plain value and a _metadata state, converts fc to 1x2x2,
// applies change to the converted side, and returns Prove's differences.
func proveCase(t *testing.T, change func(o, c *ckBuilder, root *checkpoint.Dict)) []Difference {
	t.Helper()
	build := func() (*ckBuilder, *checkpoint.Dict) {
		b := newBuilder(t)
		b.dict.State = &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "_metadata", Value: &checkpoint.Dict{}}}}
		b.add("fc.weight", checkpoint.Float32, []float64{1, 2, 3, 4, 5, 6, 7, 8}, 0, []int64{2, 4}, []int64{4, 1})
		b.add("fc.bias", checkpoint.Float32, []float64{0, 1, 2, 3, 4, 5}, 0, []int64{2}, []int64{1})
		bias := b.dict.Entries[1].Value.(*checkpoint.Tensor)
		b.dict.Entries = append(b.dict.Entries, checkpoint.Entry{Key: "fc.bias_view", Value: &checkpoint.Tensor{
			Storage: bias.Storage, Offset: 2, Size: []int64{2}, Stride: []int64{1}}})
		root := &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "model", Value: b.dict}, {Key: "lr", Value: 0.0}}}
		return b, root
	}
	o, oroot := build()
	c, croot := build()
	w := c.dict.Entries[0].Value.(*checkpoint.Tensor)
	w.Size, w.Stride = []int64{2, 1, 2, 2}, []int64{4, 4, 2, 1}
	change(o, c, croot)
	oc, err := checkpoint.FromBytes(oroot, o.data)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := checkpoint.FromBytes(croot, c.data)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := FindLayers(oc, cc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Prove(oc, cc, layers)
	if err != nil {
		t.Fatal(err)
	}
	return s.Differences
}

func TestProve(t *testing.T) {
	entry := func(c *ckBuilder, key string) *checkpoint.Tensor {
		for _, e := range c.dict.Entries {
			if e.Key == key {
				return e.Value.(*checkpoint.Tensor)
			}
		}
		panic(key)
	}
	setFloat := func(c *ckBuilder, key string, i int, v float32) {
		b := c.data[entry(c, key).Storage]
		bits := math.Float32bits(v)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
	}
	tests := []struct {
		name   string
		change func(o, c *ckBuilder, root *checkpoint.Dict)
		want   string // "" for no difference
	}{
		{"identical but for the view", func(o, c *ckBuilder, root *checkpoint.Dict) {}, ""},
		{"weight element", func(o, c *ckBuilder, root *checkpoint.Dict) { setFloat(c, "fc.weight", 5, 6.5) },
			"model/fc.weight: element [1 1] differs (first difference in storage order): 6 (0x40c00000) in the original, 6.5 (0x40d00000)"},
		{"-0.0 for +0.0", func(o, c *ckBuilder, root *checkpoint.Dict) { setFloat(c, "fc.bias", 0, float32(math.Copysign(0, -1))) },
			"model/fc.bias: element [0] differs"},
		{"byte outside every view", func(o, c *ckBuilder, root *checkpoint.Dict) { setFloat(c, "fc.bias", 5, 9) },
			"model/fc.bias: storage \"1\" element 5, outside every tensor's view, differs"},
		{"plain float by its bits", func(o, c *ckBuilder, root *checkpoint.Dict) { root.Entries[1].Value = math.Copysign(0, -1) },
			"lr: 0 (bits 0x0000000000000000) in the original, -0 (bits 0x8000000000000000)"},
		{"deleted key", func(o, c *ckBuilder, root *checkpoint.Dict) { c.dict.Entries = c.dict.Entries[:2] },
			"model/fc.bias_view: missing from the converted file"},
		{"keys reordered", func(o, c *ckBuilder, root *checkpoint.Dict) {
			e := c.dict.Entries
			e[1], e[2] = e[2], e[1]
		}, "keys are in another order"},
		{"metadata", func(o, c *ckBuilder, root *checkpoint.Dict) { c.dict.State = nil }, "model/_metadata: missing from the converted file"},
		{"sharing lost", func(o, c *ckBuilder, root *checkpoint.Dict) {
			v := entry(c, "fc.bias_view")
			s := *v.Storage
			v.Storage = &s
			c.data[&s] = append([]byte(nil), c.data[entry(c, "fc.bias").Storage]...)
		}, "model/fc.bias_view: the original's storage \"1\" is one storage there; here it is split"},
		{"element order", func(o, c *ckBuilder, root *checkpoint.Dict) {
			w := entry(c, "fc.weight")
			w.Stride = []int64{4, 4, 1, 2} // H and W swapped
		}, "model/fc.weight: the new view (2, 1, 2, 2) stride (4, 4, 1, 2) reads storage element 2 at flat index 1"},
		{"stride of an unconverted tensor", func(o, c *ckBuilder, root *checkpoint.Dict) {
			entry(c, "fc.bias_view").Offset = 3
		}, "model/fc.bias_view: view size (2) stride (1) offset 3, was stride (1) offset 2"},
		{"dtype", func(o, c *ckBuilder, root *checkpoint.Dict) {
			s := entry(c, "fc.weight").Storage
			s.Kind = checkpoint.Int32
		}, "model/fc.weight: dtype int32, was float32"},
		{"attributes kept", func(o, c *ckBuilder, root *checkpoint.Dict) {
			withAttrs(o, 0, "a")
			withAttrs(c, 0, "a")
		}, ""},
		{"attribute changed", func(o, c *ckBuilder, root *checkpoint.Dict) {
			withAttrs(o, 0, "a")
			withAttrs(c, 0, "b")
		}, `model/fc.weight/(attributes)/note: "a" in the original, "b" in the converted file`},
		{"attributes dropped", func(o, c *ckBuilder, root *checkpoint.Dict) { withAttrs(o, 0, "a") },
			"model/fc.weight: a Tensor with attributes in the original, a Tensor in the converted file"},
		{"sparse kept", func(o, c *ckBuilder, root *checkpoint.Dict) {
			withSparse(o, "sparse_coo")
			withSparse(c, "sparse_coo")
		}, ""},
		{"sparse layout", func(o, c *ckBuilder, root *checkpoint.Dict) {
			withSparse(o, "sparse_coo")
			withSparse(c, "sparse_csr")
		}, "model/sp: sparse tensor sparse_csr, was sparse_coo"},
		{"sparse values", func(o, c *ckBuilder, root *checkpoint.Dict) {
			withSparse(o, "sparse_coo")
			withSparse(c, "sparse_coo")
			setFloat(c, "fc.bias", 3, 9)
		}, "element [1] differs"},
		{"quantizer", func(o, c *ckBuilder, root *checkpoint.Dict) {
			entry(o, "fc.bias").Quant = &checkpoint.Quantizer{Scheme: "per_tensor_affine", Scale: 0.5, ZeroPoint: int64(0)}
			entry(c, "fc.bias").Quant = &checkpoint.Quantizer{Scheme: "per_tensor_affine", Scale: 0.25, ZeroPoint: int64(0)}
		}, "model/fc.bias/(scale): 0.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diffs := proveCase(t, tt.change)
			got := fmt.Sprint(diffs)
			if tt.want == "" && len(diffs) != 0 || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("differences %s\nwant %q", got, tt.want)
			}
			// Storages larger than a chunk stream through chunks of their own instead of
			// being read in one span with their neighbours: the same differences.
			defer func(n int) { compareChunk = n }(compareChunk)
			compareChunk = 8
			if streamed := fmt.Sprint(proveCase(t, tt.change)); streamed != got {
				t.Errorf("storages streamed: differences %s\nread in spans: %s", streamed, got)
			}
		})
	}
}

// TestProveSpans compares storages that lie one after another, read in spans of the files,
// with storages that differ in length, in the middle of a span and at its ends, and files
// too short to hold them: the differences are listed in storage order, as they are when
// every storage is read on its own, and a short file is an error naming the storage.
func TestProveSpans(t *testing.T) {
	build := func(change func(i int, vals []float64) []float64) *checkpoint.Checkpoint {
		b := newBuilder(t)
		for i := range 12 {
			vals := []float64{float64(i), 1, 2, 3}
			if change != nil {
				vals = change(i, vals)
			}
			b.add(fmt.Sprintf("t%d", i), checkpoint.Float32, vals, 0, []int64{4}, []int64{1})
		}
		return b.build()
	}
	orig := build(nil)
	conv := build(func(i int, vals []float64) []float64 {
		switch i {
		case 0, 5, 11:
			vals[2] = -1
		case 7:
			vals = append(vals, 4)
		}
		return vals
	})
	var lists []string
	for _, chunk := range []int{1 << 20, 40, 4} {
		defer func(n int) { compareChunk = n }(compareChunk)
		compareChunk = chunk
		s, err := Prove(orig, conv, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Storages != 12 || s.Bytes != 11*16 {
			t.Errorf("chunk %d: %d storages, %d bytes compared", chunk, s.Storages, s.Bytes)
		}
		lists = append(lists, fmt.Sprint(s.Differences))
	}
	want := "[t0: element [2] differs (first difference in storage order): 2 (0x40000000) in the original, -1 (0xbf800000) in the converted file " +
		"t5: element [2] differs (first difference in storage order): 2 (0x40000000) in the original, -1 (0xbf800000) in the converted file " +
		"t7: its storage holds 5 elements, was 4 " +
		"t11: element [2] differs (first difference in storage order): 2 (0x40000000) in the original, -1 (0xbf800000) in the converted file]"
	for i, got := range lists {
		if got != want {
			t.Errorf("chunk %d: differences\n%s\nwant\n%s", []int{1 << 20, 40, 4}[i], got, want)
		}
	}

	// The converted file cut short in its fourth storage.
	src, size := conv.Source()
	raw := make([]byte, size)
	if _, err := src.ReadAt(raw, 0); err != nil {
		t.Fatal(err)
	}
	short := checkpoint.New(conv.Root, bytes.NewReader(raw[:3*16+6]), size, "short.pt")
	if _, err := Prove(orig, short, nil); err == nil || !strings.Contains(err.Error(), `t3: reading storage "3" of short.pt`) {
		t.Errorf("a file cut short: %v, want an error reading storage \"3\" of short.pt", err)
	}
}

// TestProveSharingSplit: a converted file whose tensors share a storage that their
// originals did not is a difference, not a crash, whichever tensor comes first.
func TestProveSharingSplit(t *testing.T) {
	build := func(shared bool) *checkpoint.Checkpoint {
		b := newBuilder(t)
		a := b.add("a", checkpoint.Float32, []float64{1, 2}, 0, []int64{2}, []int64{1})
		c := b.add("b", checkpoint.Float32, []float64{1, 2}, 0, []int64{2}, []int64{1})
		if shared {
			delete(b.data, c.Storage)
			c.Storage = a.Storage
		}
		return b.build()
	}
	s, err := Prove(build(false), build(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(s.Differences); !strings.Contains(got, `b: shares storage "0" with tensors it did not share it with in the original`) || s.Storages != 1 {
		t.Errorf("differences %s, %d storages compared", got, s.Storages)
	}
}

// Prove's cost grows linearly with the number of tensors: compare the ns/tensor of the two
// sizes (100,000 tensors is a large checkpoint).
func BenchmarkProveManyTensors(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			build := func() *checkpoint.Checkpoint {
				bl := newBuilder(b)
				for i := range n {
					bl.add(fmt.Sprintf("layer%d.weight", i), checkpoint.Float32, []float64{1, 2, 3, 4}, 0, []int64{2, 2}, []int64{2, 1})
				}
				return bl.build()
			}
			orig, conv := build(), build()
			b.ResetTimer()
			for b.Loop() {
				s, err := Prove(orig, conv, nil)
				if err != nil || !s.Passed() {
					b.Fatal(err, s.Differences)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/tensor")
		})
	}
}

// withAttrs gives the i-th tensor of b's state_dict a Python attribute note=value.
func withAttrs(b *ckBuilder, i int, value string) {
	e := &b.dict.Entries[i]
	e.Value = &checkpoint.AttrTensor{
		Tensor: e.Value,
		Class:  &checkpoint.Global{Module: "torch", Name: "Tensor"},
		State:  &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "note", Value: value}}},
	}
}

// withSparse adds a sparse tensor "sp" whose values are a view of fc.bias's storage.
func withSparse(b *ckBuilder, layout string) {
	bias := b.dict.Entries[1].Value.(*checkpoint.Tensor)
	values := &checkpoint.Tensor{Storage: bias.Storage, Offset: 2, Size: []int64{2}, Stride: []int64{1}}
	b.dict.Entries = append(b.dict.Entries, checkpoint.Entry{Key: "sp", Value: &checkpoint.SparseTensor{
		Layout: layout, Indices: []*checkpoint.Tensor{values}, Values: values,
		Size: &checkpoint.Tuple{Items: []checkpoint.Value{int64(4)}}}})
}

// TestFirstDifferenceAt finds the first differing byte of two readers, on and around
// chunk boundaries, and says which side could not be read.
func TestFirstDifferenceAt(t *testing.T) {
	bufs := &[3][]byte{make([]byte, 8), make([]byte, 8), make([]byte, 8)}
	a := make([]byte, 40)
	for i := range a {
		a[i] = byte(i)
	}
	for _, at := range []int{-1, 0, 7, 8, 9, 23, 39} {
		b := bytes.Clone(a)
		if at >= 0 {
			b[at] ^= 0x80
		}
		got, errA, errB := firstDifferenceAt(bytes.NewReader(a), bytes.NewReader(b), int64(len(a)), bufs)
		if errA != nil || errB != nil || got != int64(at) {
			t.Errorf("difference at %d: got %d, %v, %v", at, got, errA, errB)
		}
	}
	short := bytes.NewReader(a[:20])
	if _, errA, errB := firstDifferenceAt(bytes.NewReader(a), short, 40, bufs); errA != nil || !errors.Is(errB, io.ErrUnexpectedEOF) && !errors.Is(errB, io.EOF) {
		t.Errorf("short second reader: got %v, %v, want EOF for the second", errA, errB)
	}
	if _, errA, errB := firstDifferenceAt(short, bytes.NewReader(a), 40, bufs); errB != nil || !errors.Is(errA, io.ErrUnexpectedEOF) && !errors.Is(errA, io.EOF) {
		t.Errorf("short first reader: got %v, %v, want EOF for the first", errA, errB)
	}
}
