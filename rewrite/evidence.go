package rewrite

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// Evidence is what a checkpoint says about the feature map entering one of its Linear layers.
// A state_dict holds no graph, so this is inference from key order: the nearest tensor
// before the layer that carries a channel count — a Conv2d weight's out-channels, a norm
// layer's length (running_mean, or a 1-D weight) — or a Linear whose outputs can feed it.
// H and W can never be read from a checkpoint: when in/C is a square, H = W is assumed.
type Evidence struct {
	// Source is the key of the tensor the channel count comes from ("" when none was found).
	Source string `json:"source"`
	// Kind is "conv", "norm" or "linear" (Source is a Linear whose outputs equal in).
	Kind string `json:"kind"`
	// Channels is the count Source carries.
	Channels int64 `json:"channels"`
	// Skipped names Linear layers passed over: their outputs cannot feed this layer's
	// inputs, so they belong to another branch (an auxiliary head).
	Skipped []string `json:"skipped"`
	// Fixed is set when the evidence gives a shape, C×H×W.
	Fixed bool  `json:"fixed"`
	C     int64 `json:"c"`
	H     int64 `json:"h"`
	W     int64 `json:"w"`
	// Rule explains the shape (or its absence) in one line, for reports.
	Rule string `json:"rule"`
}

// Shape renders the evidence's shape as CxHxW ("" when not fixed).
func (e Evidence) Shape() string {
	if !e.Fixed {
		return ""
	}
	return fmt.Sprintf("%dx%dx%d", e.C, e.H, e.W)
}

// Agrees reports whether a C×H×W split is the one the evidence gives; true when the
// evidence fixes none.
func (e Evidence) Agrees(c, h, w int64) bool {
	return !e.Fixed || e.C == c && e.H == h && e.W == w
}

// maxSkips bounds how many foreign branches one lookup passes over, so that a lookup costs
// O(log n) whatever the checkpoint holds.
const maxSkips = 8

// carrier is a tensor of a state_dict that carries a channel count.
type carrier struct {
	index    int // entry index in the dict
	key      string
	kind     string // "conv", "norm", "linear"
	channels int64
	// groupStart is the carrier index where the run of carriers inside this carrier's
	// parent module begins (this carrier's own index for a top-level module).
	groupStart int
}

// dictEvidence indexes one state_dict's carriers in key order; built once per dict.
type dictEvidence struct {
	carriers []carrier
	byIndex  map[int]int // entry index -> carrier index, for Linear weights
}

func (d *stateDict) evidenceIndex() *dictEvidence {
	if d.evidence != nil {
		return d.evidence
	}
	ix := &dictEvidence{byIndex: map[int]int{}}
	// runStart[p] is where the current contiguous run of carriers under module prefix p
	// began; last[p] is the last carrier seen under p.
	runStart, last := map[string]int{}, map[string]int{}
	for i, e := range d.entries {
		k, _ := e.Key.(string)
		t, ok := checkpoint.AsTensor(e.Value)
		if !ok || len(t.Size) != len(t.Stride) || len(t.Size) == 0 {
			continue
		}
		module, isWeight := cutParam(k, "weight")
		var kind string
		switch {
		case isWeight && len(t.Size) == 4:
			kind = "conv"
		case isWeight && len(t.Size) == 2:
			kind = "linear"
		case isWeight && len(t.Size) == 1:
			kind = "norm"
		default:
			if m, ok := cutParam(k, "running_mean"); ok && len(t.Size) == 1 {
				module, kind = m, "norm"
			}
		}
		if kind == "" {
			continue
		}
		j := len(ix.carriers)
		parent := parentModule(module)
		start := j
		if parent != "" {
			if l, ok := last[parent]; ok && l == j-1 {
				start = runStart[parent]
			}
		}
		for p := parent; p != ""; p = parentModule(p) {
			if l, ok := last[p]; !ok || l != j-1 {
				runStart[p] = j
			}
			last[p] = j
		}
		if kind == "linear" {
			ix.byIndex[i] = j
		}
		ix.carriers = append(ix.carriers, carrier{index: i, key: k, kind: kind, channels: t.Size[0], groupStart: start})
	}
	d.evidence = ix
	return ix
}

// cutParam splits "<module>.<name>" (or a bare "<name>") into the module.
func cutParam(key, name string) (string, bool) {
	if key == name {
		return "", true
	}
	return strings.CutSuffix(key, "."+name)
}

func parentModule(m string) string {
	if i := strings.LastIndexByte(m, '.'); i >= 0 {
		return m[:i]
	}
	return ""
}

// evidenceFor works out the evidence for the Linear weight w.
func evidenceFor(w *weight) Evidence {
	ix := w.dict.evidenceIndex()
	in := w.tensor.Size[1]
	j, ok := ix.byIndex[w.index]
	if !ok { // not indexed as a Linear: find the first carrier at or after it
		j = sort.Search(len(ix.carriers), func(k int) bool { return ix.carriers[k].index >= w.index })
	}
	var ev Evidence
	for j--; j >= 0; j-- {
		c := ix.carriers[j]
		if c.kind == "linear" {
			if c.channels == in {
				ev.Source, ev.Kind, ev.Channels = c.key, c.kind, c.channels
				ev.Fixed, ev.C, ev.H, ev.W = true, in, 1, 1
				ev.Rule = "after Linear " + strings.TrimSuffix(c.key, ".weight")
				return ev
			}
			ev.Skipped = append(ev.Skipped, fmt.Sprintf("Linear %s (%d outputs, not %d)", strings.TrimSuffix(c.key, ".weight"), c.channels, in))
			if len(ev.Skipped) > maxSkips {
				break
			}
			j = c.groupStart // the loop's j-- steps before the branch
			continue
		}
		ev.Source, ev.Kind, ev.Channels = c.key, c.kind, c.channels
		what := map[string]string{"conv": "", "norm": "norm layer "}[c.kind]
		switch {
		case c.channels == 0 || in%c.channels != 0:
			ev.Rule = fmt.Sprintf("%d inputs are not a multiple of the %d channels of %s%s", in, c.channels, what, c.key)
		default:
			side, ok := isqrt(in / c.channels)
			if !ok {
				ev.Rule = fmt.Sprintf("%d inputs / %d channels of %s%s = %d, not a square", in, c.channels, what, c.key, in/c.channels)
				break
			}
			ev.Fixed, ev.C, ev.H, ev.W = true, c.channels, side, side
			ev.Rule = fmt.Sprintf("C=%d from %s%s", c.channels, what, c.key)
		}
		ev.Rule += ev.skippedNote()
		return ev
	}
	ev.Rule = "nothing before it carries a channel count" + ev.skippedNote()
	return ev
}

func (e Evidence) skippedNote() string {
	if len(e.Skipped) == 0 {
		return ""
	}
	return "; passed over " + strings.Join(e.Skipped, ", ")
}

// EvidenceIndex answers evidence queries for the Linear weights of a checkpoint. It is built
// once (O(n) in the number of tensors); each query costs O(log n).
type EvidenceIndex struct {
	dicts map[string]*stateDict // by path
}

// NewEvidenceIndex indexes the state_dicts of root.
func NewEvidenceIndex(root checkpoint.Value) *EvidenceIndex {
	ix := &EvidenceIndex{dicts: map[string]*stateDict{}}
	for _, d := range findStateDicts(root) {
		if _, ok := ix.dicts[d.path.String()]; !ok {
			ix.dicts[d.path.String()] = d
		}
	}
	return ix
}

// For returns the evidence for the 2-D weight at path (a state_dict's key under the dict's
// path); ok is false when path is not such a weight.
func (ix *EvidenceIndex) For(path checkpoint.Path) (Evidence, bool) {
	if len(path) == 0 {
		return Evidence{}, false
	}
	d := ix.dicts[path[:len(path)-1].String()]
	if d == nil {
		return Evidence{}, false
	}
	if d.keyIndex == nil {
		d.keyIndex = make(map[string]int, len(d.entries))
		for i, e := range d.entries {
			if k, ok := e.Key.(string); ok {
				if _, dup := d.keyIndex[k]; !dup {
					d.keyIndex[k] = i
				}
			}
		}
	}
	key := path[len(path)-1]
	i, ok := d.keyIndex[key]
	if !ok {
		return Evidence{}, false
	}
	t, ok := checkpoint.AsTensor(d.entries[i].Value)
	module, isWeight := cutParam(key, "weight")
	if !ok || !isWeight || len(t.Size) != 2 || len(t.Stride) != 2 {
		return Evidence{}, false
	}
	return evidenceFor(&weight{dict: d, index: i, key: key, module: module, tensor: t}), true
}
