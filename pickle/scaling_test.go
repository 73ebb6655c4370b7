package pickle_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/manytensors"
	"github.com/pt2conv/pt2conv/pickle"
)

// TestWriteAndReadScale: writing a checkpoint (data.pkl, every storage record and the zip
// directory) and reading it back allocate the same per tensor for 1,000 tensors as for
// 100,000.
func TestWriteAndReadScale(t *testing.T) {
	manytensors.CheckFlat(t, "write", 1.3, func(n int) func() {
		c := manytensors.Shared(t, n)
		return func() {
			if _, err := pickle.Write(io.Discard, c, nil); err != nil {
				t.Fatal(err)
			}
		}
	})
	manytensors.CheckFlat(t, "read", 1.3, func(n int) func() {
		var buf bytes.Buffer
		if _, err := pickle.Write(&buf, manytensors.Shared(t, n), nil); err != nil {
			t.Fatal(err)
		}
		file := buf.Bytes()
		return func() {
			c, err := pickle.NewReader(bytes.NewReader(file), int64(len(file)), "many.pt")
			if err != nil {
				t.Fatal(err)
			}
			if sd, ok := c.Root.(*checkpoint.OrderedDict); !ok || len(sd.Entries) != n {
				t.Fatalf("read back %s, want an OrderedDict of %d tensors", checkpoint.TypeName(c.Root), n)
			}
		}
	})
}
