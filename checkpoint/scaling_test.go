package checkpoint_test

import (
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/manytensors"
)

// TestWalkScale: listing a checkpoint's tensors and storages allocates the same per tensor
// for 1,000 tensors as for 100,000.
func TestWalkScale(t *testing.T) {
	manytensors.CheckFlat(t, "tensors and storages", 1.3, func(n int) func() {
		c := manytensors.Shared(t, n)
		return func() {
			if got := len(checkpoint.Tensors(c.Root)); got != n {
				t.Fatalf("%d tensors, want %d", got, n)
			}
			if got := len(checkpoint.Storages(c.Root)); got != n {
				t.Fatalf("%d storages, want %d", got, n)
			}
		}
	})
}
