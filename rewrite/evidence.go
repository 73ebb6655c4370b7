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

// carrierKind is what a carrier's channel count comes from.
type carrierKind uint8

const (
	notCarrier carrierKind = iota
	convCarrier
	normCarrier
	linearCarrier
)

var kindNames = [...]string{convCarrier: "conv", normCarrier: "norm", linearCarrier: "linear"}

// carrier is a tensor of a state_dict that carries a channel count.
type carrier struct {
	index    int // entry index in the dict
	key      string
	module   string
	kind     carrierKind
	channels int64
}

// classify says whether entry e of a state_dict is a carrier, and which.
func classify(index int, e checkpoint.Entry) (carrier, bool) {
	k, _ := e.Key.(string)
	t, ok := checkpoint.AsTensor(e.Value)
	if !ok || len(t.Size) != len(t.Stride) || len(t.Size) == 0 {
		return carrier{}, false
	}
	module, isWeight := cutParam(k, "weight")
	var kind carrierKind
	switch {
	case isWeight && len(t.Size) == 4:
		kind = convCarrier
	case isWeight && len(t.Size) == 2:
		kind = linearCarrier
	case isWeight && len(t.Size) == 1:
		kind = normCarrier
	default:
		if m, ok := cutParam(k, "running_mean"); ok && len(t.Size) == 1 {
			module, kind = m, normCarrier
		}
	}
	if kind == notCarrier {
		return carrier{}, false
	}
	return carrier{index: index, key: k, module: module, kind: kind, channels: t.Size[0]}, true
}

// within reports whether module m lies inside module p: p is its parent or further up.
func within(m, p string) bool {
	return len(m) > len(p) && m[len(p)] == '.' && m[:len(p)] == p
}

// carrierSource finds the carriers before a Linear in its dict's key order: by looking back
// through the entries, or through an index of them all.
type carrierSource interface {
	// before returns the last carrier at an entry index below i; ok is false when there
	// is none, and done is false when the source gave up looking.
	before(i int) (c carrier, ok, done bool)
	// runStart returns the entry index of the first of the carriers, one after another
	// up to c, that lie inside c's parent module (c's own index for a top-level module),
	// or done false when the source gave up looking.
	runStart(c carrier) (start int, done bool)
}

// scanLimit bounds the entries one lookup reads back through before the dict is indexed:
// the evidence for a Linear sits a few keys before it, so that looking up one layer costs
// a few entries, not an index of the whole dict, while a dict where lookups would read far
// back is indexed once (O(n)) and then answers each in O(log n).
const scanLimit = 256

// entryScan looks back through a dict's entries, reading at most budget of them.
type entryScan struct {
	entries []checkpoint.Entry
	budget  int
}

func (s *entryScan) before(i int) (carrier, bool, bool) {
	for i--; i >= 0; i-- {
		if s.budget--; s.budget < 0 {
			return carrier{}, false, false
		}
		if c, ok := classify(i, s.entries[i]); ok {
			return c, true, true
		}
	}
	return carrier{}, false, true
}

func (s *entryScan) runStart(c carrier) (int, bool) {
	parent := parentModule(c.module)
	if parent == "" {
		return c.index, true
	}
	for {
		prev, ok, done := s.before(c.index)
		if !done {
			return 0, false
		}
		if !ok || !within(prev.module, parent) {
			return c.index, true
		}
		c = prev
	}
}

// dictEvidence indexes one state_dict's carriers in key order; built once per dict, and
// only for a dict where looking back through the entries went too far.
type dictEvidence struct {
	entries  []checkpoint.Entry
	carriers []indexedCarrier
}

// indexedCarrier is a carrier in the index, compact: its key and module are read back
// from the entry.
type indexedCarrier struct {
	index    int32
	module   int32 // length of the module name, a prefix of the key
	start    int32 // the carrier index runStart gives, see carrierSource
	kind     carrierKind
	channels int64
}

func (ix *dictEvidence) carrier(j int) carrier {
	c := ix.carriers[j]
	key, _ := ix.entries[c.index].Key.(string)
	return carrier{index: int(c.index), key: key, module: key[:c.module], kind: c.kind, channels: c.channels}
}

func (ix *dictEvidence) before(i int) (carrier, bool, bool) {
	j := sort.Search(len(ix.carriers), func(k int) bool { return int(ix.carriers[k].index) >= i })
	if j == 0 {
		return carrier{}, false, true
	}
	return ix.carrier(j - 1), true, true
}

func (ix *dictEvidence) runStart(c carrier) (int, bool) {
	j := sort.Search(len(ix.carriers), func(k int) bool { return int(ix.carriers[k].index) >= c.index })
	return int(ix.carriers[ix.carriers[j].start].index), true
}

func (d *stateDict) evidenceIndex() *dictEvidence {
	if d.evidence != nil {
		return d.evidence
	}
	n := 0
	for i, e := range d.entries {
		if _, ok := classify(i, e); ok {
			n++
		}
	}
	ix := &dictEvidence{entries: d.entries, carriers: make([]indexedCarrier, 0, n)}
	for i, e := range d.entries {
		c, ok := classify(i, e)
		if !ok {
			continue
		}
		j := len(ix.carriers)
		start := j
		// The run inside c's parent goes back through the carriers before c that lie
		// inside it, a whole run of a deeper module at a time.
		if parent := parentModule(c.module); parent != "" {
			for k := j - 1; k >= 0; {
				prev := ix.carrier(k)
				if !within(prev.module, parent) {
					break
				}
				start = int(ix.carriers[k].start)
				if parentModule(prev.module) == parent {
					break // its run is the run inside parent
				}
				k = start - 1
			}
		}
		ix.carriers = append(ix.carriers, indexedCarrier{index: int32(i), module: int32(len(c.module)), start: int32(start), kind: c.kind, channels: c.channels})
	}
	d.evidence = ix
	return ix
}

// cutParam splits "<module>.<name>" (or a bare "<name>") into the module.
func cutParam(key, name string) (string, bool) {
	if key == name {
		return "", true
	}
	if len(key) > len(name) && key[len(key)-len(name)-1] == '.' && key[len(key)-len(name):] == name {
		return key[:len(key)-len(name)-1], true
	}
	return key, false
}

func parentModule(m string) string {
	if i := strings.LastIndexByte(m, '.'); i >= 0 {
		return m[:i]
	}
	return ""
}

// evidenceFor works out the evidence for the Linear weight w. It looks back through the
// entries before w, and indexes the dict when that goes too far.
func evidenceFor(w *weight) Evidence {
	return w.evidence("")
}

// evidence is evidenceFor with its Rule starting with prefix.
func (w *weight) evidence(prefix string) Evidence {
	d := w.dict
	if d.evidence == nil {
		if ev, ok := findEvidence(&entryScan{entries: d.entries, budget: scanLimit}, w, prefix); ok {
			return ev
		}
	}
	ev, _ := findEvidence(d.evidenceIndex(), w, prefix)
	return ev
}

// findEvidence walks back from w through the carriers of src; ok is false when src gave up.
func findEvidence(src carrierSource, w *weight, prefix string) (ev Evidence, ok bool) {
	in := w.tensor.Size[1]
	i := w.index
	for {
		c, found, done := src.before(i)
		if !done {
			return Evidence{}, false
		}
		if !found {
			break
		}
		key, kind := c.key, kindNames[c.kind]
		if c.kind == linearCarrier {
			if c.channels == in {
				ev.Source, ev.Kind, ev.Channels = key, kind, c.channels
				ev.Fixed, ev.C, ev.H, ev.W = true, in, 1, 1
				ev.Rule = prefix + "after Linear " + strings.TrimSuffix(key, ".weight")
				return ev, true
			}
			ev.Skipped = append(ev.Skipped, fmt.Sprintf("Linear %s (%d outputs, not %d)", strings.TrimSuffix(key, ".weight"), c.channels, in))
			if len(ev.Skipped) > maxSkips {
				break
			}
			if i, done = src.runStart(c); !done { // the next carrier is before the branch
				return Evidence{}, false
			}
			continue
		}
		ev.Source, ev.Kind, ev.Channels = key, kind, c.channels
		what := ""
		if c.kind == normCarrier {
			what = "norm layer "
		}
		switch {
		case c.channels == 0 || in%c.channels != 0:
			ev.Rule = fmt.Sprintf("%s%d inputs are not a multiple of the %d channels of %s%s", prefix, in, c.channels, what, key)
		default:
			side, ok := isqrt(in / c.channels)
			if !ok {
				ev.Rule = fmt.Sprintf("%s%d inputs / %d channels of %s%s = %d, not a square", prefix, in, c.channels, what, key, in/c.channels)
				break
			}
			ev.Fixed, ev.C, ev.H, ev.W = true, c.channels, side, side
			ev.Rule = fmt.Sprintf("%sC=%d from %s%s", prefix, c.channels, what, key)
		}
		ev.Rule += ev.skippedNote()
		return ev, true
	}
	ev.Rule = prefix + "nothing before it carries a channel count" + ev.skippedNote()
	return ev, true
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
	i, ok := d.key(path[len(path)-1])
	if !ok {
		return Evidence{}, false
	}
	w, ok := d.weightAt(i)
	if !ok || w.rank() != 2 {
		return Evidence{}, false
	}
	return evidenceFor(&w), true
}
