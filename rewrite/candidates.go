package rewrite

import (
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
)

// Candidate is a Linear layer of the checkpoint that can become a convolution, with the
// --layer spec that would convert it.
type Candidate struct {
	Layer   string          // module name, e.g. "classifier.0"
	Dict    checkpoint.Path // the state_dict holding it
	Weight  checkpoint.Path // the weight's path
	In, Out int64
	HasBias bool
	// Spec converts the layer: "NAME=CxHxW" where auto finds a conv before it, else "NAME"
	// (in x 1 x 1).
	Spec string
	Rule string
	// NotLinear says why the weight is probably an embedding table (or tied to one) and
	// not a Linear to convert; "" for a Linear.
	NotLinear string
}

// Candidates lists every 2-D "<module>.weight" of every state_dict in c, in file order.
// Each Spec selects that layer and no other weight: the bare module name when it is unique
// in the checkpoint, else the name qualified by its state_dict's path (LayerSpecName).
func Candidates(c *checkpoint.Checkpoint) []Candidate {
	dicts := findStateDicts(c.Root)
	// 2-D tensors per storage view, to see tied weights.
	type view struct {
		s   *checkpoint.Storage
		off int64
	}
	total, paths := 0, 0 // candidates, and the keys of their paths
	for _, d := range dicts {
		for _, w := range d.weights() {
			if w.rank() == 2 {
				total++
				paths += len(d.path) + 1
			}
		}
	}
	views := make(map[view]int, total)
	counted := map[any]bool{}
	for _, d := range dicts {
		if counted[d.obj] {
			continue // one dict under two paths ties nothing
		}
		counted[d.obj] = true
		for _, w := range d.weights() {
			if w.rank() == 2 {
				views[view{w.tensor.Storage, w.tensor.Offset}]++
			}
		}
	}
	// How many weights, in all state_dicts, sit in each module: a bare module name is a
	// spec that selects exactly one layer when the count is one. Counted once, so listing
	// candidates stays linear in the number of tensors.
	perModule := make(map[string]int, total)
	for _, d := range dicts {
		for _, w := range d.weights() {
			perModule[w.module]++
		}
	}
	out := make([]Candidate, 0, total)
	slab := make(checkpoint.Path, 0, paths) // every candidate's Weight, in one allocation
	for _, d := range dicts {
		ws := d.weights()
		for i := range ws {
			w := &ws[i]
			if w.rank() != 2 {
				continue
			}
			start := len(slab)
			slab = append(append(slab, d.path...), w.key)
			cand := Candidate{
				Layer: w.module, Dict: d.path, Weight: slab[start:len(slab):len(slab)],
				Out: w.tensor.Size[0], In: w.tensor.Size[1],
				HasBias: d.hasParam(w, "bias"),
				Spec:    moduleName(w.module), Rule: "in x 1 x 1",
			}
			cand.NotLinear = notLinear(w, cand.HasBias, views[view{w.tensor.Storage, w.tensor.Offset}] > 1)
			if perModule[w.module] != 1 {
				cand.Spec = LayerSpecName(d.path, w.module)
			}
			name := cand.Spec
			if ev := w.evidence("auto: "); ev.Fixed {
				cand.Rule = ev.Rule
				if ev.H*ev.W > 1 {
					cand.Spec = fmt.Sprintf("%s=%dx%dx%d", name, ev.C, ev.H, ev.W)
				}
			} else if ev.Source != "" || len(ev.Skipped) > 0 {
				cand.Rule = "in x 1 x 1 (" + ev.Rule + ")"
			}
			out = append(out, cand)
		}
	}
	return out
}
