package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/osfile"
)

// elements gathers a view's bytes one element at a time: the slow, obvious reference.
func elements(t *testing.T, data []byte, tn *checkpoint.Tensor) []byte {
	t.Helper()
	isz := int64(tn.Storage.Kind.ItemSize())
	var out []byte
	eachIndex(tn.Size, func(idx []int64) bool {
		e := tn.Offset
		for i, x := range idx {
			e += x * tn.Stride[i]
		}
		out = append(out, data[e*isz:(e+1)*isz]...)
		return true
	})
	return out
}

func storage(kind checkpoint.StorageKind, n int64) (*checkpoint.Storage, []byte) {
	s := &checkpoint.Storage{Kind: kind, Len: n, Location: "cpu"}
	b := make([]byte, s.ByteLen())
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return s, b
}

type named struct {
	name string
	t    *checkpoint.Tensor
}

func build(t *testing.T, tensors []named, data map[*checkpoint.Storage][]byte) *checkpoint.Checkpoint {
	t.Helper()
	od := &checkpoint.OrderedDict{}
	for _, n := range tensors {
		od.Entries = append(od.Entries, checkpoint.Entry{Key: n.name, Value: n.t})
	}
	c, err := checkpoint.FromBytes(od, data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWriteViews writes contiguous tensors, views at offsets, transposed and permuted
// views (some larger than a tile), rank-0 and empty tensors, reads the file back and
// compares every tensor with an element-by-element gather of the source.
func TestWriteViews(t *testing.T) {
	data := map[*checkpoint.Storage][]byte{}
	add := func(kind checkpoint.StorageKind, n int64) *checkpoint.Storage {
		s, b := storage(kind, n)
		data[s] = b
		return s
	}
	plain := add(checkpoint.Float32, 12)
	shared := add(checkpoint.Float16, 40)
	big := add(checkpoint.Float32, 1200*1100) // 5.3 MB: over one tile
	cube := add(checkpoint.Int64, 64*80*70)   // 2.9 MB
	huge := add(checkpoint.Uint8, 3000*2000)  // 6 MB of bytes
	scalar := add(checkpoint.Float64, 3)
	empty := add(checkpoint.Bool, 0)
	tensors := []named{
		{"plain", &checkpoint.Tensor{Storage: plain, Size: []int64{3, 4}, Stride: []int64{4, 1}}},
		{"head", &checkpoint.Tensor{Storage: shared, Offset: 0, Size: []int64{4, 5}, Stride: []int64{5, 1}}},
		{"tail", &checkpoint.Tensor{Storage: shared, Offset: 20, Size: []int64{4, 5}, Stride: []int64{1, 4}}},
		{"big.T", &checkpoint.Tensor{Storage: big, Size: []int64{1100, 1200}, Stride: []int64{1, 1100}}},
		{"cube.permuted", &checkpoint.Tensor{Storage: cube, Size: []int64{70, 64, 80}, Stride: []int64{1, 80 * 70, 70}}},
		{"huge.T", &checkpoint.Tensor{Storage: huge, Size: []int64{2000, 3000}, Stride: []int64{1, 2000}}},
		{"big.T.part", &checkpoint.Tensor{Storage: big, Offset: 1100*7 + 3, Size: []int64{1000, 500}, Stride: []int64{1, 1100}}},
		{"huge.rows", &checkpoint.Tensor{Storage: huge, Offset: 2000, Size: []int64{1000, 1000}, Stride: []int64{4000, 2}}},
		{"scalar", &checkpoint.Tensor{Storage: scalar, Offset: 2, Size: []int64{}, Stride: []int64{}}},
		{"empty", &checkpoint.Tensor{Storage: empty, Size: []int64{0, 3}, Stride: []int64{3, 1}}},
	}
	c := build(t, tensors, data)
	var warnings []string
	var buf bytes.Buffer
	var last, total int64
	n, err := Write(&buf, c, &WriteOptions{
		Warn:     func(m string) { warnings = append(warnings, m) },
		Progress: func(d, tot int64) { last, total = d, tot },
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("Write returned %d, wrote %d", n, buf.Len())
	}
	if last != total || total == 0 {
		t.Errorf("progress ended at %d of %d", last, total)
	}
	if len(warnings) != 3 || !strings.Contains(warnings[0], "head, tail") {
		t.Errorf("warnings %q, want the three groups of aliases", warnings)
	}
	if hl := binary.LittleEndian.Uint64(buf.Bytes()); hl%8 != 0 || bytes.TrimRight(buf.Bytes()[8:8+hl], " ")[0] != '{' {
		t.Errorf("header length %d is not padded to 8", hl)
	}
	// To a file, transposed matrices are written in place band by band: the same bytes.
	path := filepath.Join(t.TempDir(), "views.safetensors")
	if err := Save(path, c, nil); err != nil {
		t.Fatal(err)
	}
	if onDisk, _ := os.ReadFile(path); !bytes.Equal(onDisk, buf.Bytes()) {
		t.Errorf("the file differs from what Write gave a buffer")
	}
	back, err := open(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := HeaderOf(back).Metadata; got["format"] != "pt" || len(got) != 1 {
		t.Errorf("metadata %v, want format=pt for a checkpoint not read from safetensors", got)
	}
	got := map[string]*checkpoint.Tensor{}
	for _, nt := range checkpoint.Tensors(back.Root) {
		got[nt.Path.String()] = nt.Tensor
	}
	for _, tn := range tensors {
		g, ok := got[tn.name]
		if !ok {
			t.Errorf("%s missing", tn.name)
			continue
		}
		if g.Storage.Kind != tn.t.Storage.Kind || !equalInts(g.Size, tn.t.Size) {
			t.Errorf("%s: %s %v, want %s %v", tn.name, g.Storage.Kind, g.Size, tn.t.Storage.Kind, tn.t.Size)
		}
		b := make([]byte, g.Storage.ByteLen())
		if _, err := back.StorageReader(g.Storage).ReadAt(b, 0); err != nil && len(b) > 0 {
			t.Fatal(err)
		}
		if want := elements(t, data[tn.t.Storage], tn.t); !bytes.Equal(b, want) {
			t.Errorf("%s: bytes differ from the source's elements", tn.name)
		}
		if g.Storage.Offset%int64(g.Storage.Kind.ItemSize()) != 0 {
			t.Errorf("%s: at offset %d, not aligned to its item size", tn.name, g.Storage.Offset)
		}
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSaveRoundTrip saves a file read from safetensors again: metadata and data region
// stay as they were, and the header changes only by what changed.
func TestSaveRoundTrip(t *testing.T) {
	hdr := `{"__metadata__":{"format":"pt","note":"<&>"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}}`
	dir := t.TempDir()
	in := filepath.Join(dir, "in.safetensors")
	if err := os.WriteFile(in, file(hdr, 32), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A Linear weight as a 1x1 convolution: sizes and strides only.
	w := c.Root.(*checkpoint.OrderedDict).Entries[0].Value.(*checkpoint.Tensor)
	w.Size, w.Stride = []int64{2, 3, 1, 1}, []int64{3, 1, 1, 1}
	out := filepath.Join(dir, "out.safetensors")
	if err := Save(out, c, nil); err != nil {
		t.Fatal(err)
	}
	if err := Save(out, c, nil); !errors.Is(err, ErrExists) {
		t.Errorf("second Save: %v, want ErrExists", err)
	}
	if err := Save(in, c, &SaveOptions{Force: true}); !errors.Is(err, ErrSameFile) {
		t.Errorf("Save over the input: %v, want ErrSameFile", err)
	}
	back, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	h := HeaderOf(back)
	if h.Metadata["note"] != "<&>" || h.Metadata["format"] != "pt" {
		t.Errorf("metadata %v not kept", h.Metadata)
	}
	src, _ := os.ReadFile(in)
	dst, _ := os.ReadFile(out)
	if !bytes.Equal(src[len(src)-32:], dst[h.DataStart():]) {
		t.Errorf("data region changed")
	}
	if !strings.Contains(string(dst), `"shape":[2,3,1,1]`) {
		t.Errorf("header %s lacks the new shape", dst[8:h.DataStart()])
	}
}

func TestWriteRefuses(t *testing.T) {
	s, b := storage(checkpoint.Float32, 4)
	tn := &checkpoint.Tensor{Storage: s, Size: []int64{4}, Stride: []int64{1}}
	nested := &checkpoint.Dict{Entries: []checkpoint.Entry{
		{Key: "epoch", Value: int64(3)},
		{Key: "model", Value: &checkpoint.OrderedDict{Entries: []checkpoint.Entry{{Key: "fc.weight", Value: tn}}}},
	}}
	c, err := checkpoint.FromBytes(nested, map[*checkpoint.Storage][]byte{s: b})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Write(&bytes.Buffer{}, c, nil)
	if !errors.Is(err, ErrNotStateDict) || !strings.Contains(err.Error(), "--state-dict KEY: model") {
		t.Errorf("nested checkpoint: %v, want ErrNotStateDict naming model", err)
	}
	cs, cb := storage(checkpoint.Complex64, 2)
	cplx := build(t, []named{{"z", &checkpoint.Tensor{Storage: cs, Size: []int64{2}, Stride: []int64{1}}}}, map[*checkpoint.Storage][]byte{cs: cb})
	if _, err := Write(&bytes.Buffer{}, cplx, nil); !errors.Is(err, ErrUnsupported) {
		t.Errorf("complex tensor: %v, want ErrUnsupported", err)
	}
	out := build(t, []named{{"x", &checkpoint.Tensor{Storage: s, Offset: 2, Size: []int64{4}, Stride: []int64{1}}}}, map[*checkpoint.Storage][]byte{s: b})
	if _, err := Write(&bytes.Buffer{}, out, nil); err == nil || !strings.Contains(err.Error(), "outside its storage") {
		t.Errorf("view past its storage: %v", err)
	}
}

// A state_dict holding a tensor with no dense data of its own, or with Python attributes, is
// refused by name rather than written without it or them.
func TestStateDictRefusesWhatItCannotHold(t *testing.T) {
	s := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Location: "cpu", Len: 2}
	dense := &checkpoint.Tensor{Storage: s, Size: []int64{2}, Stride: []int64{1}}
	tests := []struct {
		value checkpoint.Value
		want  string
	}{
		{&checkpoint.Call{Func: &checkpoint.Global{Module: "torch._utils", Name: "_rebuild_meta_tensor_no_storage"}, Tensor: "meta tensor"},
			`tensor "x" is a meta tensor, which a safetensors file cannot hold`},
		{&checkpoint.SparseTensor{Layout: "sparse_coo", Indices: []*checkpoint.Tensor{dense}, Values: dense},
			`tensor "x" is a sparse Tensor, which a safetensors file cannot hold`},
		{&checkpoint.AttrTensor{Tensor: dense, Class: &checkpoint.Global{Module: "torch", Name: "Tensor"}},
			`tensor "x" carries Python attributes`},
	}
	for _, tt := range tests {
		root := &checkpoint.OrderedDict{Entries: []checkpoint.Entry{{Key: "w", Value: dense}, {Key: "x", Value: tt.value}}}
		_, err := StateDict(root)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrUnsupported: %s", checkpoint.TypeName(tt.value), err, tt.want)
		}
	}
	// Next to a plain value the dict is no state_dict at all: that is the error, as before.
	root := &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "x", Value: tests[0].value}, {Key: "epoch", Value: int64(3)}}}
	if _, err := StateDict(root); !errors.Is(err, ErrNotStateDict) {
		t.Errorf("meta tensor next to an int: %v, want ErrNotStateDict", err)
	}
}

// TestDataPlacement checks where Write puts the data region: congruent modulo
// osfile.CloneBlock to where the largest run of raw bytes lies in a source file, at the
// cost of fewer than osfile.CloneBlock bytes of header, and with no more than the usual
// 8-byte padding for a small file or a source that is not a file.
func TestDataPlacement(t *testing.T) {
	for _, tt := range []struct {
		name    string
		weights int64 // float32 elements of the 2-D weight
		aligned bool
	}{
		{"small", 64, false},
		{"large", 64 << 10, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, wb := storage(checkpoint.Float32, tt.weights)
			b, bb := storage(checkpoint.Float32, 8)
			w.Key, b.Key = "w", "b"
			sd := &checkpoint.OrderedDict{Entries: []checkpoint.Entry{
				{Key: "fc.weight", Value: &checkpoint.Tensor{Storage: w, Size: []int64{8, tt.weights / 8}, Stride: []int64{tt.weights / 8, 1}}},
				{Key: "fc.bias", Value: &checkpoint.Tensor{Storage: b, Size: []int64{8}, Stride: []int64{1}}},
			}}
			mem, err := checkpoint.FromBytes(sd, map[*checkpoint.Storage][]byte{w: wb, b: bb})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := Write(&buf, mem, nil); err != nil {
				t.Fatal(err)
			}
			if pad := padding(buf.Bytes()); pad >= 8 {
				t.Errorf("from memory: %d spaces of padding, want under 8", pad)
			}
			in := filepath.Join(t.TempDir(), "in.safetensors")
			if err := os.WriteFile(in, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			src, err := Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			// The weight as a 1×1 convolution: a longer header over the same bytes.
			od := src.Root.(*checkpoint.OrderedDict)
			v := *od.Entries[0].Value.(*checkpoint.Tensor)
			v.Size, v.Stride = append(v.Size, 1, 1), append(v.Stride, 1, 1)
			conv := src.WithRoot(&checkpoint.OrderedDict{Entries: []checkpoint.Entry{{Key: "fc.weight", Value: &v}, od.Entries[1]}})
			var out bytes.Buffer
			if _, err := Write(&out, conv, nil); err != nil {
				t.Fatal(err)
			}
			inStart := HeaderOf(src).DataStart()
			outStart := 8 + int64(binary.LittleEndian.Uint64(out.Bytes()))
			pad := padding(out.Bytes())
			if tt.aligned {
				if outStart%osfile.CloneBlock != inStart%osfile.CloneBlock || pad >= osfile.CloneBlock {
					t.Errorf("data at %d (%d spaces of padding), input's at %d: want congruent modulo %d with under %d spaces",
						outStart, pad, inStart, osfile.CloneBlock, osfile.CloneBlock)
				}
			} else if pad >= 8 {
				t.Errorf("small file: %d spaces of padding, want under 8", pad)
			}
			if outStart%8 != 0 {
				t.Errorf("data at %d, not a multiple of 8", outStart)
			}
			if !bytes.Equal(out.Bytes()[outStart:], buf.Bytes()[inStart:]) {
				t.Error("the data region changed")
			}
		})
	}
}

// padding counts the spaces that end a safetensors file's header.
func padding(file []byte) int {
	n := binary.LittleEndian.Uint64(file)
	hdr := file[8 : 8+n]
	return len(hdr) - len(bytes.TrimRight(hdr, " "))
}
