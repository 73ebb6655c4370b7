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
}

// Candidates lists every 2-D "<module>.weight" of every state_dict in c, in file order.
func Candidates(c *checkpoint.Checkpoint) []Candidate {
	var out []Candidate
	for _, d := range findStateDicts(c.Root) {
		keys := map[string]bool{}
		for _, e := range d.entries {
			keys[e.Key.(string)] = true
		}
		for _, w := range d.weights() {
			if w.rank() != 2 {
				continue
			}
			cand := Candidate{
				Layer: w.module, Dict: d.path, Weight: w.path(),
				Out: w.tensor.Size[0], In: w.tensor.Size[1],
				HasBias: keys[w.module+".bias"] || (w.module == "" && keys["bias"]),
				Spec:    w.module, Rule: "in x 1 x 1",
			}
			if ev := evidenceFor(w); ev.Fixed {
				cand.Rule = "auto: " + ev.Rule
				if ev.H*ev.W > 1 {
					cand.Spec = fmt.Sprintf("%s=%dx%dx%d", w.module, ev.C, ev.H, ev.W)
				}
			} else if ev.Source != "" || len(ev.Skipped) > 0 {
				cand.Rule = "in x 1 x 1 (auto: " + ev.Rule + ")"
			}
			out = append(out, cand)
		}
	}
	return out
}
