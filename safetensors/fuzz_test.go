package safetensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// FuzzHeader feeds arbitrary files to the reader. Whatever the input, it must return
// without panicking either a checkpoint or an error matching one of the sentinels; a file
// it accepts must write out and read back with the same tensors. Inputs that once failed
// are kept under testdata/fuzz/FuzzHeader/ and run by plain `go test`.
func FuzzHeader(f *testing.F) {
	for _, h := range []string{
		`{}`,
		`{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`,
		`{"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]},"a":{"dtype":"BOOL","shape":[],"data_offsets":[0,1]}}`,
		`{"a":{"dtype":"F8_E4M3","shape":[0,4],"data_offsets":[0,0]},"__metadata__":null}`,
		`{"a":{"dtype":"I64","shape":[1,1],"data_offsets":[0,8]}}       `,
	} {
		f.Add(file(h, 8))
	}
	names, _ := filepath.Glob("../fixtures/safetensors/*.safetensors")
	for _, n := range names {
		if b, err := os.ReadFile(n); err == nil && len(b) < 1<<16 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := open(data)
		if err != nil {
			for _, s := range []error{ErrTruncated, ErrCorrupt, ErrLimit, ErrUnsupported} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("unclassified error: %v", err)
		}
		var buf bytes.Buffer
		if _, err := Write(&buf, c, nil); err != nil {
			if errors.Is(err, ErrUnsupported) {
				return // a tensor named __metadata__ is all the header cannot say again
			}
			t.Fatalf("writing an accepted file: %v", err)
		}
		back, err := open(buf.Bytes())
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		want, got := checkpoint.Tensors(c.Root), checkpoint.Tensors(back.Root)
		if len(want) != len(got) {
			t.Fatalf("%d tensors back, want %d", len(got), len(want))
		}
		byName := map[string]*checkpoint.Tensor{}
		for _, nt := range got {
			byName[nt.Path.String()] = nt.Tensor
		}
		for _, nt := range want {
			g := byName[nt.Path.String()]
			if g == nil || g.Storage.Kind != nt.Tensor.Storage.Kind || !equalInts(g.Size, nt.Tensor.Size) {
				t.Fatalf("tensor %q changed", nt.Path)
			}
			a := make([]byte, g.Storage.ByteLen())
			b := make([]byte, g.Storage.ByteLen())
			back.StorageReader(g.Storage).ReadAt(a, 0)
			c.StorageReader(nt.Tensor.Storage).ReadAt(b, 0)
			if !bytes.Equal(a, b) {
				t.Fatalf("tensor %q: bytes changed", nt.Path)
			}
		}
	})
}
