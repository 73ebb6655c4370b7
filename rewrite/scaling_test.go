package rewrite_test

import (
	"testing"

	"github.com/pt2conv/pt2conv/internal/manytensors"
	"github.com/pt2conv/pt2conv/rewrite"
)

// TestPlanAndApplyScale: planning and applying a conversion allocate the same per tensor
// whether the checkpoint holds 1,000 or 100,000 tensors, for a glob over every Linear, one
// layer, and a plan that names every Linear one by one.
func TestPlanAndApplyScale(t *testing.T) {
	glob := mustSpecs(t, "model.layers.*.w1")
	one := mustSpecs(t, "model.layers.0.experts.0.w1")
	plan := func(specs func(n int) []rewrite.Spec) func(n int) func() {
		return func(n int) func() {
			c, sp := manytensors.Shared(t, n), specs(n)
			return func() {
				if _, err := rewrite.NewPlan(c, sp, rewrite.Options{}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	manytensors.CheckFlat(t, "plan, glob", 1.3, plan(func(int) []rewrite.Spec { return glob }))
	manytensors.CheckFlat(t, "plan, one layer", 1.3, plan(func(int) []rewrite.Spec { return one }))
	manytensors.CheckFlat(t, "plan, every layer by name", 1.3, plan(everyLayer(t)))
	manytensors.CheckFlat(t, "apply, glob", 1.3, func(n int) func() {
		c := manytensors.Shared(t, n)
		p, err := rewrite.NewPlan(c, glob, rewrite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Changes) != n/manytensors.TensorsPerExpert {
			t.Fatalf("%d changes for %d tensors", len(p.Changes), n)
		}
		return func() {
			if _, err := rewrite.Apply(c, p); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestCandidatesScale: listing the Linear candidates, with the evidence for each, allocates
// the same per tensor for 1,000 tensors as for 100,000.
func TestCandidatesScale(t *testing.T) {
	manytensors.CheckFlat(t, "candidates", 1.3, func(n int) func() {
		c := manytensors.Shared(t, n)
		return func() {
			if got := len(rewrite.Candidates(c)); got != n/manytensors.TensorsPerExpert {
				t.Fatalf("%d candidates for %d tensors", got, n)
			}
		}
	})
}

// TestPlanOneLayerIndexesNothing: planning one named layer reads the few keys before it for
// its evidence and indexes nothing, so that its allocations do not grow with the tensors
// around it at all.
func TestPlanOneLayerIndexesNothing(t *testing.T) {
	one := mustSpecs(t, manytensors.Key(7, "w1"))
	const slack = 16 // a map grown a step further, say: not one allocation per tensor
	var most float64
	for _, n := range manytensors.Counts() {
		c := manytensors.Shared(t, n)
		allocs := testing.AllocsPerRun(3, func() {
			p, err := rewrite.NewPlan(c, one, rewrite.Options{})
			if err != nil || len(p.Changes) != 1 {
				t.Fatal(p, err)
			}
		})
		t.Logf("%d tensors: %.0f allocations", n, allocs)
		if most == 0 {
			most = allocs + slack
		}
		if allocs > most {
			t.Errorf("planning one layer among %d tensors allocates %.0f times, among fewer %.0f", n, allocs, most-slack)
		}
	}
}

func everyLayer(t *testing.T) func(n int) []rewrite.Spec {
	return func(n int) []rewrite.Spec {
		var names []string
		for i := range n / manytensors.TensorsPerExpert {
			names = append(names, manytensors.Key(i, "w1"))
		}
		return mustSpecs(t, names...)
	}
}

func mustSpecs(t *testing.T, ss ...string) []rewrite.Spec {
	t.Helper()
	out := make([]rewrite.Spec, len(ss))
	for i, s := range ss {
		sp, err := rewrite.ParseSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = sp
	}
	return out
}
