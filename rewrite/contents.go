package rewrite

import (
	"regexp"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// StateDicts lists the paths of the dicts of c that look like state_dicts (string keys,
// mostly tensors, some named like a module's weight), in file order: what --layer names
// match in and what --state-dict can select.
func StateDicts(c *checkpoint.Checkpoint) []checkpoint.Path {
	var out []checkpoint.Path
	for _, d := range findStateDicts(c.Root) {
		out = append(out, d.path)
	}
	return out
}

// OptimizerState describes an optimizer state_dict found in a checkpoint: what
// Options.OptimizerKey can name.
type OptimizerState struct {
	Path checkpoint.Path
	// Params is the number of parameters its param_groups list.
	Params int
	// State names the per-parameter state tensors, in order of first appearance
	// (momentum_buffer; exp_avg, exp_avg_sq).
	State []string
	// Tensors counts its state tensors, scalars (Adam's step) included.
	Tensors int
}

// Optimizers lists every optimizer state_dict of c ({"state": {...}, "param_groups": [...]}),
// in dicts or lists, in file order.
func Optimizers(c *checkpoint.Checkpoint) []OptimizerState {
	var out []OptimizerState
	_ = checkpoint.Walk(c.Root, func(path checkpoint.Path, v checkpoint.Value) error {
		if _, ok := entriesOf(v); !ok {
			return leavesOnly(v)
		}
		opt, err := parseOptimizer(path, v)
		if err != nil {
			return leavesOnly(v)
		}
		s := OptimizerState{Path: append(checkpoint.Path(nil), path...), Params: len(opt.indices)}
		seen := map[string]bool{}
		opt.stateTensors(func(_ int64, name string, _ *checkpoint.Tensor) {
			s.Tensors++
			if !seen[name] {
				seen[name] = true
				s.State = append(s.State, name)
			}
		})
		out = append(out, s)
		return checkpoint.SkipChildren
	})
	return out
}

// embeddingName matches module names of embedding tables and of output layers tied to them.
var embeddingName = regexp.MustCompile(`(?i)(embed|lm_head|wte$|wpe$|tok_emb|pos_emb|token|vocab|tied)`)

// notLinear says why a bias-less 2-D weight is probably an embedding table (nn.Embedding's
// weight is (num_embeddings, dim), no bias) or an output layer tied to one, rather than a
// Linear that belongs in a convolution; "" when nothing says so. A name, a storage shared
// with another 2-D tensor (tied weights) or a vocabulary-sized first dimension is the sign.
func notLinear(w *weight, hasBias bool, tied bool) string {
	if hasBias {
		return ""
	}
	switch {
	case embeddingName.MatchString(w.module):
		return "bias-less and named like an embedding or a layer tied to one"
	case tied:
		return "bias-less and shares its storage with another 2-D tensor (tied to an embedding)"
	case w.tensor.Size[0] >= 8*w.tensor.Size[1] && w.tensor.Size[0] >= 8192:
		return "bias-less with a vocabulary-sized first dimension"
	}
	return ""
}
