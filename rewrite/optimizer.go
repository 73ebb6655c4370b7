package rewrite

import (
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"slices"
	"strings"
)

// optimizer is a torch optimizer state_dict:
// {'state': {index: {name: tensor, ...}}, 'param_groups': [{'params': [index, ...], ...}]}.
type optimizer struct {
	path    checkpoint.Path
	state   []checkpoint.Entry // index -> per-parameter state dict
	indices []int64            // the param_groups' indices, in order: model.parameters() order
	groups  int
	// stateAt finds a parameter's state entry by index without a pass over all of them.
	stateAt map[int64]checkpoint.Value
}

func entriesOf(v checkpoint.Value) ([]checkpoint.Entry, bool) {
	switch d := v.(type) {
	case *checkpoint.Dict:
		return d.Entries, true
	case *checkpoint.OrderedDict:
		return d.Entries, true
	}
	return nil, false
}

func lookupKey(entries []checkpoint.Entry, key string) (checkpoint.Value, bool) {
	for _, e := range entries {
		if k, ok := e.Key.(string); ok && k == key {
			return e.Value, true
		}
	}
	return nil, false
}

// parseOptimizer reads v as an optimizer state_dict, or says why it is not one.
func parseOptimizer(path checkpoint.Path, v checkpoint.Value) (*optimizer, error) {
	entries, ok := entriesOf(v)
	if !ok {
		return nil, fmt.Errorf("is not a dict")
	}
	stateV, ok1 := lookupKey(entries, "state")
	groupsV, ok2 := lookupKey(entries, "param_groups")
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("has no 'state' and 'param_groups'")
	}
	opt := &optimizer{path: append(checkpoint.Path(nil), path...)} // Walk's path is reused
	if opt.state, ok = entriesOf(stateV); !ok {
		return nil, fmt.Errorf("'state' is not a dict")
	}
	groups, ok := groupsV.(*checkpoint.List)
	if !ok {
		return nil, fmt.Errorf("'param_groups' is not a list")
	}
	opt.groups = len(groups.Items)
	seen := map[int64]bool{}
	for gi, g := range groups.Items {
		ge, ok := entriesOf(g)
		if !ok {
			return nil, fmt.Errorf("param_groups[%d] is not a dict", gi)
		}
		pv, _ := lookupKey(ge, "params")
		params, ok := pv.(*checkpoint.List)
		if !ok {
			return nil, fmt.Errorf("param_groups[%d] has no 'params' list", gi)
		}
		for _, it := range params.Items {
			idx, ok := it.(int64)
			if !ok || seen[idx] {
				return nil, fmt.Errorf("param_groups[%d] holds %v, not a new parameter index", gi, checkpoint.KeyString(it))
			}
			seen[idx] = true
			opt.indices = append(opt.indices, idx)
		}
	}
	opt.stateAt = make(map[int64]checkpoint.Value, len(opt.state))
	for _, e := range opt.state {
		idx, ok := e.Key.(int64)
		if !ok || !seen[idx] {
			return nil, fmt.Errorf("state key %s is not an index of param_groups", checkpoint.KeyString(e.Key))
		}
		if _, ok := entriesOf(e.Value); !ok {
			return nil, fmt.Errorf("state[%d] is not a dict", idx)
		}
		if _, dup := opt.stateAt[idx]; !dup {
			opt.stateAt[idx] = e.Value
		}
	}
	return opt, nil
}

// stateTensors calls fn for each tensor of the state of parameter idx.
func (o *optimizer) stateTensors(fn func(idx int64, name string, t *checkpoint.Tensor)) {
	for _, e := range o.state {
		entries, _ := entriesOf(e.Value)
		for _, se := range entries {
			if t, ok := checkpoint.AsTensor(se.Value); ok {
				fn(e.Key.(int64), checkpoint.KeyString(se.Key), t)
			}
		}
	}
}

// tensorsOf calls fn for each tensor of the state of parameter idx, in order.
func (o *optimizer) tensorsOf(idx int64, fn func(name string, t *checkpoint.Tensor)) {
	entries, _ := entriesOf(o.stateAt[idx])
	for _, se := range entries {
		if t, ok := checkpoint.AsTensor(se.Value); ok {
			fn(checkpoint.KeyString(se.Key), t)
		}
	}
}

// mapParams pairs the optimizer's indices with the state_dict's parameters, checking that
// the counts agree and every state tensor that is not a scalar has its parameter's sizes.
func (o *optimizer) mapParams(d *stateDict) (map[int64]*param, error) {
	params := d.params()
	if len(params) != len(o.indices) {
		return nil, fmt.Errorf("param_groups list %d parameters, state_dict %q has %d (its tensors minus buffers and tied duplicates)",
			len(o.indices), d.path.String(), len(params))
	}
	m := make(map[int64]*param, len(params))
	for i, idx := range o.indices {
		m[idx] = params[i]
	}
	var err error
	o.stateTensors(func(idx int64, name string, t *checkpoint.Tensor) {
		p := m[idx]
		if err == nil && len(t.Size) > 0 && !slices.Equal(t.Size, p.tensor.Size) {
			err = fmt.Errorf("state %d/%s is %s but parameter %d of state_dict %q (%s) is %s",
				idx, name, shape(t.Size), idx, d.path.String(), p.keys[0], shape(p.tensor.Size))
		}
	})
	return m, err
}

// planOptimizer adds the optimizer state tensors of converted weights to the plan, or a
// warning when an optimizer holds such state and opts names none.
func planOptimizer(root checkpoint.Value, dicts []*stateDict, p *Plan, opts Options) error {
	if opts.OptimizerKey == "" {
		p.Warnings = append(p.Warnings, optimizerWarnings(root, p)...)
		return nil
	}
	optPath, v, ok := checkpoint.Lookup(root, opts.OptimizerKey)
	if !ok {
		return fmt.Errorf("%w: optimizer key %q is not in the checkpoint", ErrOptimizer, opts.OptimizerKey)
	}
	opt, err := parseOptimizer(optPath, v)
	if err != nil {
		return fmt.Errorf("%w: %q %v, so it is not an optimizer state_dict", ErrOptimizer, opts.OptimizerKey, err)
	}
	// candidate state_dicts, once per object
	type fit struct {
		dict   *stateDict
		params map[int64]*param
	}
	var fits []fit
	var misfits []string
	seen := map[any]bool{}
	for _, d := range dicts {
		if seen[d.obj] {
			continue
		}
		seen[d.obj] = true
		m, err := opt.mapParams(d)
		if err != nil {
			misfits = append(misfits, err.Error())
			continue
		}
		fits = append(fits, fit{d, m})
	}
	if len(fits) == 0 {
		return fmt.Errorf("%w: no state_dict fits optimizer %q: %s", ErrOptimizer, opts.OptimizerKey, strings.Join(misfits, "; "))
	}
	for _, f := range fits[1:] {
		if signature(f.dict) != signature(fits[0].dict) {
			return fmt.Errorf("%w: optimizer %q fits both state_dict %q and %q, which differ; cannot tell which it trains",
				ErrOptimizer, opts.OptimizerKey, fits[0].dict.path.String(), f.dict.path.String())
		}
	}
	if opt.groups > 1 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("optimizer %q has %d param_groups: their indices are taken in model.parameters() order (the sizes of all its state agree)",
			opts.OptimizerKey, opt.groups))
	}
	fitting := map[any]bool{}
	for _, f := range fits {
		fitting[f.dict.obj] = true
	}
	byKey := map[string]int64{}
	for idx, prm := range fits[0].params {
		for _, k := range prm.keys {
			byKey[k] = idx
		}
	}
	objByPath := make(map[string]any, len(dicts))
	for _, d := range dicts {
		if _, ok := objByPath[pathKey(d.path)]; !ok {
			objByPath[pathKey(d.path)] = d.obj
		}
	}
	converted := map[string]*Change{} // by key within the state_dict
	for i := range p.Changes {
		ch := &p.Changes[i]
		if fitting[objByPath[pathKey(ch.Dict)]] {
			converted[ch.Path[len(ch.Path)-1]] = ch
		}
	}
	added := map[string]int{} // by path, index into p.Changes
	for _, ch := range p.Changes[:len(p.Changes):len(p.Changes)] {
		if !fitting[objByPath[pathKey(ch.Dict)]] {
			continue
		}
		key := ch.Path[len(ch.Path)-1]
		idx := byKey[key]
		for _, alias := range fits[0].params[idx].keys {
			if a := converted[alias]; a == nil || !slices.Equal(a.NewSize, ch.NewSize) {
				return fmt.Errorf("%w: parameter %d is tied under %s and %s, which are not converted alike; its optimizer state can take one shape only",
					ErrOptimizer, idx, key, alias)
			}
		}
		var stateErr error
		opt.tensorsOf(idx, func(name string, t *checkpoint.Tensor) {
			if len(t.Size) == 0 || stateErr != nil {
				return
			}
			oc, err := optimizerChange(opt, idx, name, t, ch, opts.Direction)
			if err != nil {
				stateErr = err
				return
			}
			if j, dup := added[oc.Path.String()]; dup {
				if !slices.Equal(p.Changes[j].NewSize, oc.NewSize) {
					stateErr = fmt.Errorf("%w: state %s would take two shapes", ErrOptimizer, oc.Path)
				}
				return
			}
			added[oc.Path.String()] = len(p.Changes)
			p.Changes = append(p.Changes, oc)
		})
		if stateErr != nil {
			return stateErr
		}
	}
	return nil
}

// optimizerChange reshapes a state tensor like its parameter's change, using its own strides.
func optimizerChange(opt *optimizer, idx int64, name string, t *checkpoint.Tensor, ch Change, dir Direction) (Change, error) {
	oc := Change{
		Path:      append(append(checkpoint.Path(nil), opt.path...), "state", itoa(idx), name),
		Layer:     ch.Layer,
		Dict:      ch.Dict,
		DType:     dtypeOf(t),
		OldSize:   append([]int64(nil), t.Size...),
		OldStride: append([]int64(nil), t.Stride...),
		Rule:      fmt.Sprintf("optimizer state of %s (parameter %d)", ch.Path, idx),
		Optimizer: true,
		Spec:      ch.Spec,
	}
	if len(t.Stride) != len(t.Size) {
		return Change{}, fmt.Errorf("%w: state %s has %d sizes but %d strides", ErrOptimizer, oc.Path, len(t.Size), len(t.Stride))
	}
	if dir == ToLinear {
		size, stride, ok := linearView(t.Size, t.Stride)
		if !ok {
			return Change{}, &LayerError{Layer: ch.Layer, Dict: ch.Dict, Err: ErrNotViewable,
				Detail: fmt.Sprintf("optimizer state %s %s with strides %s cannot be seen as 2-D without moving bytes", oc.Path, shape(t.Size), shape(t.Stride))}
		}
		oc.NewSize, oc.NewStride = size, stride
		return oc, nil
	}
	oc.NewSize, oc.NewStride = convView(t.Size, t.Stride, ch.NewSize[1], ch.NewSize[2], ch.NewSize[3])
	return oc, nil
}

// signature describes a state_dict's parameters: keys and sizes in order.
func signature(d *stateDict) string {
	var b strings.Builder
	for _, p := range d.params() {
		fmt.Fprintf(&b, "%s%v;", strings.Join(p.keys, ","), p.tensor.Size)
	}
	return b.String()
}

// pathKey is a map key for a path; unlike Path.String it keeps keys holding "/" apart.
func pathKey(p checkpoint.Path) string { return strings.Join(p, "\x00") }

// leavesOnly is SkipChildren for a container that holds no container, such as a
// state_dict: an optimizer is a dict, so none is below it, and walking its 100,000 tensors
// one by one finds nothing.
func leavesOnly(v checkpoint.Value) error {
	entries, items, ok := checkpoint.Children(v)
	if !ok {
		return nil
	}
	for _, e := range entries {
		if _, _, ok := checkpoint.Children(e.Value); ok {
			return nil
		}
	}
	for _, it := range items {
		if _, _, ok := checkpoint.Children(it); ok {
			return nil
		}
	}
	return checkpoint.SkipChildren
}

// optimizerWarnings finds optimizer state_dicts holding tensors shaped like a converted
// weight, which a resumed training would load with the old shapes.
func optimizerWarnings(root checkpoint.Value, p *Plan) []string {
	if len(p.Changes) == 0 {
		return nil
	}
	oldSizes := make(map[string]bool, len(p.Changes))
	for _, ch := range p.Changes {
		oldSizes[shape(ch.OldSize)] = true
	}
	var out []string
	_ = checkpoint.Walk(root, func(path checkpoint.Path, v checkpoint.Value) error {
		if _, ok := entriesOf(v); !ok {
			return leavesOnly(v)
		}
		opt, err := parseOptimizer(path, v)
		if err != nil {
			return leavesOnly(v)
		}
		hit := false
		opt.stateTensors(func(_ int64, _ string, t *checkpoint.Tensor) {
			hit = hit || oldSizes[shape(t.Size)]
		})
		if hit {
			key := path.String()
			out = append(out, fmt.Sprintf("optimizer state at %q holds tensors shaped like converted weights and keeps the old shapes; pass --optimizer-key %s to reshape them too", key, key))
		}
		return checkpoint.SkipChildren
	})
	return out
}
