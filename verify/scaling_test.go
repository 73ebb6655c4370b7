package verify_test

import (
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
