package rewrite

import (
	"github.com/pt2conv/pt2conv/checkpoint"
	"strings"
)

// stateDict is a dict of the checkpoint whose keys look like module.parameter names.
type stateDict struct {
	path    checkpoint.Path
	obj     checkpoint.Value // *checkpoint.Dict or *checkpoint.OrderedDict: identity for shared dicts
	entries []checkpoint.Entry
	order   int // position in the walk, to keep changes in file order

	evidence *dictEvidence  // built on first use
	keyIndex map[string]int // key -> entry index, built on first use
	listed   []weight       // weights(), listed on first use
}

// weight is a "<module>.weight" tensor of a state_dict.
type weight struct {
	dict   *stateDict
	index  int // entry index in dict.entries
	key    string
	module string
	tensor *checkpoint.Tensor
}

func (w *weight) path() checkpoint.Path {
	return append(append(checkpoint.Path(nil), w.dict.path...), w.key)
}

func (w *weight) rank() int { return len(w.tensor.Size) }

// findStateDicts lists every dict below root that looks like a state_dict, in file order. A
// dict reachable by two paths is listed under both, since both must change.
func findStateDicts(root checkpoint.Value) []*stateDict {
	var out []*stateDict
	_ = checkpoint.Walk(root, func(path checkpoint.Path, v checkpoint.Value) error {
		var entries []checkpoint.Entry
		switch d := v.(type) {
		case *checkpoint.Dict:
			entries = d.Entries
		case *checkpoint.OrderedDict:
			entries = d.Entries
		default:
			return nil
		}
		if !looksLikeStateDict(entries) {
			return nil
		}
		out = append(out, &stateDict{
			path:    append(checkpoint.Path(nil), path...),
			obj:     v,
			entries: entries,
			order:   len(out),
		})
		return checkpoint.SkipChildren
	})
	return out
}

// looksLikeStateDict: string keys only, mostly tensors, and at least one tensor named like
// a module's weight.
func looksLikeStateDict(entries []checkpoint.Entry) bool {
	tensors, weights := 0, 0
	for _, e := range entries {
		k, ok := e.Key.(string)
		if !ok {
			return false
		}
		if _, ok := checkpoint.AsTensor(e.Value); ok {
			tensors++
			if k == "weight" || strings.HasSuffix(k, ".weight") {
				weights++
			}
		} else if checkpoint.IsTensor(e.Value) { // sparse, meta, nested: counted, never converted
			tensors++
		}
	}
	return weights > 0 && 2*tensors > len(entries)
}

// weights lists the dict's "<module>.weight" tensors in key order, once per dict, in one
// allocation.
func (d *stateDict) weights() []weight {
	if d.listed != nil {
		return d.listed
	}
	n := 0
	for i := range d.entries {
		if _, ok := d.weightAt(i); ok {
			n++
		}
	}
	d.listed = make([]weight, 0, n)
	for i := range d.entries {
		if w, ok := d.weightAt(i); ok {
			d.listed = append(d.listed, w)
		}
	}
	return d.listed
}

// weightAt is entry i as a weight, if it is one.
func (d *stateDict) weightAt(i int) (weight, bool) {
	k := d.entries[i].Key.(string)
	module, ok := cutParam(k, "weight")
	if !ok {
		return weight{}, false
	}
	t, ok := checkpoint.AsTensor(d.entries[i].Value)
	if !ok || len(t.Stride) != len(t.Size) {
		return weight{}, false
	}
	return weight{dict: d, index: i, key: k, module: module, tensor: t}, true
}

// key returns the entry index of key, indexing the dict's keys on first use.
func (d *stateDict) key(key string) (int, bool) {
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
	i, ok := d.keyIndex[key]
	return i, ok
}

// hasParam reports whether the dict has the key "<module>.<name>" (or "<name>" for the root
// module). It looks next to the module's weight first, where torch puts its other
// parameters, and indexes the keys only when they are elsewhere.
func (d *stateDict) hasParam(w *weight, name string) bool {
	for _, i := range [...]int{w.index + 1, w.index - 1} {
		if i >= 0 && i < len(d.entries) {
			if k, ok := d.entries[i].Key.(string); ok {
				if m, ok := cutParam(k, name); ok && m == w.module {
					return true
				}
			}
		}
	}
	if w.module == "" {
		_, ok1 := d.key(name)
		_, ok2 := d.key("." + name)
		return ok1 || ok2
	}
	_, ok := d.key(w.module + "." + name)
	return ok
}

// bufferNames are the state_dict entries that are buffers, not parameters, in torch.nn's
// modules: model.parameters() (and so an optimizer's indices) skips them.
var bufferNames = map[string]bool{
	"running_mean":        true,
	"running_var":         true,
	"num_batches_tracked": true,
}

func isBuffer(key string) bool {
	i := strings.LastIndexByte(key, '.')
	return bufferNames[key[i+1:]] || strings.HasSuffix(key, "_extra_state")
}

// param is one parameter of model.parameters() order: a tensor and every key it appears
// under (more than one when tied).
type param struct {
	keys   []string
	tensor *checkpoint.Tensor
}

// tensorIdentity tells tied tensors apart from merely equal ones: torch's state_dict
// detaches every parameter, so a tied weight is two tensor objects over one storage, offset,
// size and stride.
type tensorIdentity struct {
	storage *checkpoint.Storage
	offset  int64
	view    string
}

func identityOf(t *checkpoint.Tensor) tensorIdentity {
	return tensorIdentity{t.Storage, t.Offset, shape(t.Size) + shape(t.Stride)}
}

// params lists the dict's parameters in model.parameters() order. Only tensors that share
// a storage with another entry can be tied, so only those are told apart by identityOf,
// which renders their view; the others, nearly all, cost a pointer lookup.
func (d *stateDict) params() []*param {
	type entry struct {
		key    string
		tensor *checkpoint.Tensor
	}
	var tensors []entry
	views := make(map[*checkpoint.Storage]int, len(d.entries))
	for _, e := range d.entries {
		k := e.Key.(string)
		t, ok := checkpoint.AsTensor(e.Value)
		if !ok || isBuffer(k) {
			continue
		}
		tensors = append(tensors, entry{k, t})
		views[t.Storage]++
	}
	out := make([]*param, 0, len(tensors))
	slab := make([]param, len(tensors)) // one allocation for all, rather than one each
	keys := make([]string, len(tensors))
	var seen map[tensorIdentity]*param
	for i, e := range tensors {
		var id tensorIdentity
		if views[e.tensor.Storage] > 1 {
			id = identityOf(e.tensor)
			if p := seen[id]; p != nil {
				p.keys = append(p.keys, e.key)
				continue
			}
		}
		keys[i] = e.key
		p := &slab[i]
		p.keys, p.tensor = keys[i:i+1:i+1], e.tensor
		if views[e.tensor.Storage] > 1 {
			if seen == nil {
				seen = map[tensorIdentity]*param{}
			}
			seen[id] = p
		}
		out = append(out, p)
	}
	return out
}
