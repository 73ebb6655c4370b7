package pickle_test

import (
	"bytes"
	"io"
	"runtime"
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

// maxModelBytesPerTensor bounds what an opened checkpoint holds per tensor: its Tensor,
// Storage, key and dict entry (about 330 bytes in all). The storage bytes stay in the file.
const maxModelBytesPerTensor = 400

// TestModelBytesPerTensor measures the heap an opened checkpoint of many small tensors holds,
// per tensor, and keeps it under maxModelBytesPerTensor (bench/scaling.sh reports it).
func TestModelBytesPerTensor(t *testing.T) {
	const n = 5_000
	var buf bytes.Buffer
	if _, err := pickle.Write(&buf, manytensors.Shared(t, n), nil); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	before := heapInUse()
	c, err := pickle.NewReader(bytes.NewReader(file), int64(len(file)), "many.pt")
	if err != nil {
		t.Fatal(err)
	}
	per := float64(heapInUse()-before) / n
	runtime.KeepAlive(c)
	t.Logf("object model of an opened checkpoint: %.0f bytes per tensor", per)
	if per > maxModelBytesPerTensor {
		t.Errorf("an opened checkpoint holds %.0f bytes per tensor, want at most %d", per, maxModelBytesPerTensor)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
