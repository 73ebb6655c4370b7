package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// file builds a safetensors file from a header text and a data region of n bytes
// (0, 1, 2, ...), with the header length the text's.
func file(header string, n int) []byte {
	b := make([]byte, 8, 8+len(header)+n)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	for i := 0; i < n; i++ {
		b = append(b, byte(i))
	}
	return b
}

func withLength(n uint64, rest []byte) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, n)
	return append(b, rest...)
}

func open(b []byte) (*checkpoint.Checkpoint, error) {
	return NewReader(bytes.NewReader(b), int64(len(b)), "t.safetensors")
}

// TestReadRefuses holds one case per rule of the reference reader.
func TestReadRefuses(t *testing.T) {
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	tests := []struct {
		name string
		file []byte
		want error
		msg  string
	}{
		{"shorter than the length", []byte{1, 2, 3}, ErrTruncated, "too short"},
		{"header length 2^63", withLength(1<<63, []byte("{}")), ErrLimit, "header length"},
		{"header length over 100 MB", withLength(MaxHeaderBytes+1, []byte("{}")), ErrLimit, "100000000"},
		{"header past the end", withLength(100, []byte("{}")), ErrTruncated, "claims 100 bytes"},
		{"not an object", file(`[1,2]`, 0), ErrCorrupt, "start with '{'"},
		{"invalid JSON", file(`{"a":`, 0), ErrCorrupt, "not a valid JSON"},
		{"not UTF-8", file("{\"\xff\":1}", 0), ErrCorrupt, "UTF-8"},
		{"bytes after the object", file(`{}x`, 0), ErrCorrupt, "after its closing brace"},
		{"deep nesting", file(`{"a":`+deep+`}`, 0), ErrCorrupt, "JSON"},
		{"duplicate key", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), ErrCorrupt, `"a" twice`},
		{"duplicate field", file(`{"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}`, 1), ErrCorrupt, `"dtype" twice`},
		{"duplicate metadata key", file(`{"__metadata__":{"k":"1","k":"2"}}`, 0), ErrCorrupt, "twice"},
		{"metadata not strings", file(`{"__metadata__":{"k":1}}`, 0), ErrCorrupt, "not a string"},
		{"metadata not an object", file(`{"__metadata__":"x"}`, 0), ErrCorrupt, "not a JSON object"},
		{"unknown dtype", file(`{"a":{"dtype":"F12","shape":[1],"data_offsets":[0,1]}}`, 1), ErrCorrupt, `unknown dtype "F12"`},
		{"newer dtype", file(`{"a":{"dtype":"F8_E8M0","shape":[1],"data_offsets":[0,1]}}`, 1), ErrUnsupported, "F8_E8M0"},
		{"missing dtype", file(`{"a":{"shape":[1],"data_offsets":[0,1]}}`, 1), ErrCorrupt, "no dtype"},
		{"tensor not an object", file(`{"a":[1]}`, 1), ErrCorrupt, "not a JSON object"},
		{"negative shape", file(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}`, 1), ErrCorrupt, "non-negative"},
		{"float shape", file(`{"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}`, 1), ErrCorrupt, "non-negative"},
		{"three offsets", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, 1), ErrCorrupt, "3 entries"},
		{"shape overflow", file(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, 0), ErrCorrupt, "overflows"},
		{"span differs from shape", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4), ErrCorrupt, "needs 8 bytes"},
		{"ends before it begins", file(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[1,0]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1), ErrCorrupt, "ends (0) before"},
		{"hole", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}`, 3), ErrCorrupt, "hole"},
		{"overlap", file(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}`, 3), ErrCorrupt, "overlaps"},
		{"out of bounds", file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, 2), ErrTruncated, "data region has 2"},
		{"data left over", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 3), ErrCorrupt, "cover 1 bytes"},
		{"first tensor not at zero", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), ErrCorrupt, "expected 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := open(tt.file)
			if err == nil {
				t.Fatalf("accepted: %v", c)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %q does not match %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "t.safetensors: ") {
				t.Errorf("error %q: want the file name and %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines", err)
			}
		})
	}
}

// TestReadAccepts holds files other writers produce that the reference reads.
func TestReadAccepts(t *testing.T) {
	tests := []struct {
		name   string
		file   []byte
		shapes map[string][]int64
		meta   map[string]string
	}{
		{"unpadded header, data not aligned", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4), map[string][]int64{"a": {1}}, nil},
		{"header order differs from data order", file(`{"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 3), map[string][]int64{"a": {1}, "b": {2}}, nil},
		{"metadata null", file(`{"__metadata__":null,"a":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}`, 1), map[string][]int64{"a": {}}, nil},
		{"metadata", file(`{"__metadata__":{"format":"pt","k":""}}`, 0), map[string][]int64{}, map[string]string{"format": "pt", "k": ""}},
		{"rank 0 and empty", file(`{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0,3],"data_offsets":[8,8]}}`, 8), map[string][]int64{"s": {}, "e": {0, 3}}, nil},
		{"unknown fields and trailing spaces", file(`{"a":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1],"extra":[1]}}   `, 1), map[string][]int64{"a": {1}}, nil},
		{"empty", file(`{}`, 0), map[string][]int64{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := open(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]int64{}
			for _, nt := range checkpoint.Tensors(c.Root) {
				got[nt.Path.String()] = nt.Tensor.Size
				if !nt.Tensor.IsContiguous() {
					t.Errorf("%s not contiguous", nt.Path)
				}
			}
			if len(got) != len(tt.shapes) {
				t.Fatalf("tensors %v, want %v", got, tt.shapes)
			}
			for k, want := range tt.shapes {
				if g, ok := got[k]; !ok || len(g) != len(want) {
					t.Errorf("%s: shape %v, want %v", k, g, want)
				}
			}
			h := HeaderOf(c)
			if len(h.Metadata) != len(tt.meta) {
				t.Errorf("metadata %v, want %v", h.Metadata, tt.meta)
			}
			for k, v := range tt.meta {
				if h.Metadata[k] != v {
					t.Errorf("metadata[%s] = %q, want %q", k, h.Metadata[k], v)
				}
			}
		})
	}
}

// TestReadOffsets checks where each tensor's bytes are found.
func TestReadOffsets(t *testing.T) {
	hdr := `{"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`
	c, err := open(file(hdr, 3))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"a": {0}, "b": {1, 2}}
	for _, nt := range checkpoint.Tensors(c.Root) {
		buf := make([]byte, nt.Tensor.Storage.ByteLen())
		if _, err := c.StorageReader(nt.Tensor.Storage).ReadAt(buf, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, want[nt.Path.String()]) {
			t.Errorf("%s holds %v, want %v", nt.Path, buf, want[nt.Path.String()])
		}
	}
	if e := c.Root.(*checkpoint.OrderedDict).Entries; e[0].Key != "b" {
		t.Errorf("first tensor %v, want the header's order", e[0].Key)
	}
}
