package verify_test

import (
	"io"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/manytensors"
	"github.com/pt2conv/pt2conv/rewrite"
	"github.com/pt2conv/pt2conv/verify"
)

// TestCheckScale: finding the converted layers and checking every one of them allocate the
// same per tensor for 1,000 tensors as for 100,000.
func TestCheckScale(t *testing.T) {
	converted := func(n int) (orig, conv *checkpoint.Checkpoint) {
		orig = manytensors.Shared(t, n)
		sp, err := rewrite.ParseSpec("model.layers.*.w1")
		if err != nil {
			t.Fatal(err)
		}
		p, err := rewrite.NewPlan(orig, []rewrite.Spec{sp}, rewrite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		conv, err = rewrite.Apply(orig, p)
		if err != nil {
			t.Fatal(err)
		}
		return orig, conv
	}
	manytensors.CheckFlat(t, "find layers", 1.3, func(n int) func() {
		orig, conv := converted(n)
		return func() {
			layers, err := verify.FindLayers(orig, conv)
			if err != nil || len(layers) != n/manytensors.TensorsPerExpert {
				t.Fatalf("%d layers, %v; want %d", len(layers), err, n/manytensors.TensorsPerExpert)
			}
		}
	})
	manytensors.CheckFlat(t, "check", 1.3, func(n int) func() {
		orig, conv := converted(n)
		return func() {
			rep, err := verify.Check(orig, conv, verify.Options{Samples: 1, Grow: 1})
			if err != nil || !rep.Passed() {
				t.Fatalf("check: %v", err)
			}
		}
	})
}

// TestCheckCostPerLayer checks a conversion of every Linear of a checkpoint of many small
// layers whose two files are apart, so that every storage is compared and every layer's
// weights and biases are read, and bounds what that costs per tensor whatever their number:
// allocations and allocated bytes (one layer's buffers serve the next, small layers run on
// the caller's goroutine) and reads of the files (storages and tensors that lie one after
// another are read together, a span of the file at a time, not one read each). Allocating
// each layer's buffers anew, starting goroutines for each layer and reading each tensor on
// its own cost about 50 allocations, 5.5 KB and 3 reads per tensor.
func TestCheckCostPerLayer(t *testing.T) {
	const (
		maxAllocs = 12   // per tensor
		maxBytes  = 2500 // per tensor, beyond fixedBytes
		// fixedBytes is what the buffers of a check take whatever the number of tensors:
		// chunks to compare storages with, a block of each file, a layer's scratch.
		fixedBytes = 8 << 20
	)
	counts := manytensors.Counts()
	for _, n := range []int{counts[0], counts[len(counts)-1]} {
		orig, origReads := apart(t, n, false)
		conv, convReads := apart(t, n, true)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		rep, err := verify.Check(orig, conv, verify.Options{})
		runtime.ReadMemStats(&after)
		if err != nil || !rep.Passed() {
			t.Fatalf("%d tensors: check: %v", n, err)
		}
		layers := n / manytensors.TensorsPerExpert
		if len(rep.Layers) != layers || rep.Structure.Storages != n || rep.Structure.Reshaped != layers {
			t.Fatalf("%d tensors: %d layers, %d storages compared, %d reshaped", n, len(rep.Layers), rep.Structure.Storages, rep.Structure.Reshaped)
		}
		allocs := float64(after.Mallocs-before.Mallocs) / float64(n)
		bytes := float64(after.TotalAlloc-before.TotalAlloc) / float64(n)
		reads := origReads.Load() + convReads.Load()
		t.Logf("%d tensors: %.1f allocations, %.0f bytes per tensor; %d reads", n, allocs, bytes, reads)
		if allocs > maxAllocs || after.TotalAlloc-before.TotalAlloc > fixedBytes+maxBytes*uint64(n) {
			t.Errorf("%d tensors: check allocates %.1f times, %.0f bytes per tensor; want at most %d, and %d bytes beyond %d",
				n, allocs, bytes, maxAllocs, maxBytes, fixedBytes)
		}
		// Both files are read whole for the proof, and the layers' tensors again: spans of
		// a MiB, a handful of reads, not a few for each layer.
		if reads > 10+int64(layers)/100 {
			t.Errorf("%d tensors (%d layers): %d reads of the files; want at most %d", n, layers, reads, 10+layers/100)
		}
	}
}

// apart returns manytensors.StateDict(n), with each Linear's weight reshaped to
// [out, in, 1, 1] when converted, over a source of its own that counts reads.
func apart(t *testing.T, n int, converted bool) (*checkpoint.Checkpoint, *atomic.Int64) {
	t.Helper()
	c, err := manytensors.StateDict(n)
	if err != nil {
		t.Fatal(err)
	}
	if converted {
		for _, nt := range checkpoint.Tensors(c.Root) {
			if w := nt.Tensor; len(w.Size) == 2 {
				w.Size = []int64{w.Size[0], w.Size[1], 1, 1}
				w.Stride = []int64{w.Stride[0], 1, 1, 1}
			}
		}
	}
	src, size := c.Source()
	reads := &atomic.Int64{}
	return checkpoint.New(c.Root, countingReader{src, reads}, size, c.Name), reads
}

type countingReader struct {
	r     io.ReaderAt
	reads *atomic.Int64
}

func (c countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	return c.r.ReadAt(p, off)
}
