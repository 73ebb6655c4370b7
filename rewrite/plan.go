package rewrite

import (
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"sort"
)

// Direction says which way layers are converted.
type Direction uint8

const (
	// ToConv turns nn.Linear weights (out, in) into nn.Conv2d weights (out, C, H, W).
	ToConv Direction = iota
	// ToLinear turns nn.Conv2d weights (out, C, kH, kW) into nn.Linear weights
	// (out, C·kH·kW).
	ToLinear
)

func (d Direction) String() string {
	if d == ToLinear {
		return "to-linear"
	}
	return "to-conv"
}

// fromRank is the rank of the weights the direction converts.
func (d Direction) fromRank() int {
	if d == ToLinear {
		return 4
	}
	return 2
}

func (d Direction) fromKind() string {
	if d == ToLinear {
		return "Conv2d"
	}
	return "Linear"
}

// Options tune NewPlan.
type Options struct {
	Direction Direction
	// OptimizerKey names the optimizer state_dict inside the checkpoint ("optimizer"; a
	// path such as "train/optimizer" reaches a nested one). Its state tensors for converted
	// weights are reshaped too. Empty: the optimizer is left alone (with a warning when it
	// holds state for a converted weight).
	OptimizerKey string
}

// Plan is the list of tensors a conversion changes.
type Plan struct {
	Changes  []Change `json:"changes"`
	Warnings []string `json:"warnings,omitempty"`
}

// Change is one tensor that gets new sizes and strides. Storage, offset and dtype stay.
type Change struct {
	Path  checkpoint.Path `json:"path"`  // where the tensor is in the checkpoint
	Layer string          `json:"layer"` // the module name, e.g. "classifier.0"
	// Dict is the state_dict holding the layer ([] for a checkpoint that is one).
	Dict      checkpoint.Path `json:"dict"`
	DType     string          `json:"dtype"`
	OldSize   []int64         `json:"old_size"`
	OldStride []int64         `json:"old_stride"`
	NewSize   []int64         `json:"new_size"`
	NewStride []int64         `json:"new_stride"`
	// Rule says how the shape was chosen: "CxHxW from spec", "auto: C=512 from
	// features.28.weight", ...
	Rule string `json:"rule"`
	// Optimizer marks an optimizer state tensor reshaped with its parameter.
	Optimizer bool   `json:"optimizer"`
	Spec      string `json:"spec"` // the spec that selected the layer
	// Evidence is what the checkpoint says about the layer's input (Linear → Conv2d only).
	// The C×H×W split is an assumption about the model: a split the evidence contradicts
	// gets a warning.
	Evidence *Evidence `json:"evidence"`
}

// NewPlan finds the weights the specs select, in every state_dict of the checkpoint, and
// works out their new sizes and strides. It reads no tensor data and does not change c.
func NewPlan(c *checkpoint.Checkpoint, specs []Spec, opts Options) (*Plan, error) {
	dicts := findStateDicts(c.Root)
	if len(dicts) == 0 {
		return nil, fmt.Errorf("%s: %w (no dict of tensors with keys like \"fc.weight\")", c.Name, ErrNoStateDict)
	}
	// Changes are sized for what the globs select, rather than grown a quarter at a time.
	literals, globbed := 0, 0
	names := make([]layerName, len(specs))
	nameErrs := make([]error, len(specs)) // returned when the spec's turn comes
	for si, sp := range specs {
		name, err := parseLayerName(sp.Layer)
		names[si], nameErrs[si] = name, err
		switch {
		case err != nil:
		case !name.isGlob():
			literals++
		default:
			for _, d := range dicts {
				for _, w := range d.weights() {
					if w.rank() == opts.Direction.fromRank() && name.matches(d.path, w.module) {
						globbed++
					}
				}
			}
		}
	}
	// A weight is claimed by one spec at most; claims finds its claim in claimed, which
	// made the change of the same index.
	claims := make(map[claimKey]int, globbed+literals)
	claimed := make([]claim, 0, globbed+literals)
	changes := make([]Change, 0, globbed+literals)
	// A few names are looked up by a pass over each dict's entries; a plan naming thousands
	// of layers looks each up in an index by module, built once.
	var byModule []moduleIndex
	if literals > maxScans {
		byModule = make([]moduleIndex, len(dicts))
		for i := range dicts {
			byModule[i] = indexModules(dicts[i].weights())
		}
	}
	var warnings []string
	var selected []*weight
	var found []weight // the weights a pass over a dict's entries finds
	for si, sp := range specs {
		matched := false
		name, err := names[si], nameErrs[si]
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrSpec, sp.Layer, err)
		}
		glob := name.isGlob()
		spec := sp.String()
		for i, d := range dicts {
			selected = selected[:0]
			switch {
			case glob:
				ws := d.weights()
				for j := range ws {
					selected = append(selected, &ws[j])
				}
			case byModule != nil:
				selected = byModule[i].lookup(d.weights(), name.module.literal(), selected)
			default: // one of a few names: no list of every weight
				found = found[:0]
				for j := range d.entries {
					if k := d.entries[j].Key.(string); len(k) == len(name.module.literal())+len(".weight") || k == "weight" {
						if w, ok := d.weightAt(j); ok && w.module == name.module.literal() {
							found = append(found, w)
						}
					}
				}
				for j := range found {
					selected = append(selected, &found[j])
				}
			}
			for _, w := range selected {
				if !name.matches(d.path, w.module) {
					continue
				}
				if w.rank() != opts.Direction.fromRank() {
					if glob {
						continue
					}
					return nil, atSpec(rankError(w, sp, opts.Direction), si)
				}
				matched = true
				ch, err := planWeight(w, sp, spec, opts.Direction)
				if err != nil {
					return nil, atSpec(err, si)
				}
				if warn := checkEvidence(w, &ch, opts.Direction); warn != "" {
					warnings = append(warnings, warn)
				}
				key := claimKey{d.order, w.key}
				if prev, ok := claims[key]; ok {
					return nil, &LayerError{Layer: w.module, Dict: d.path, Err: ErrConflict, SpecIndex: si,
						Detail: fmt.Sprintf("selected by two specs, %q and %q; keep one of them", changes[prev].Spec, spec)}
				}
				claims[key] = len(claimed)
				claimed = append(claimed, claim{storage: w.tensor.Storage, order: [2]int{d.order, w.index}})
				changes = append(changes, ch)
			}
		}
		if !matched {
			return nil, atSpec(noMatchError(sp, dicts, opts.Direction), si)
		}
	}
	if b := (byOrder{claimed, changes}); !sort.IsSorted(b) { // specs in another order than the file's
		sort.Stable(b)
		for i, cl := range claimed {
			claims[claimKey{cl.order[0], changes[i].Path[len(changes[i].Path)-1]}] = i
		}
	}
	p := &Plan{Warnings: warnings, Changes: changes}
	if len(changes) == 0 {
		p.Changes = nil
	}
	p.Warnings = append(p.Warnings, tiedWarnings(dicts, claims, claimed, changes)...)
	if err := planOptimizer(c.Root, dicts, p, opts); err != nil {
		return nil, err
	}
	return p, nil
}

// atSpec records in a *LayerError which spec it is about.
func atSpec(err error, index int) error {
	var le *LayerError
	if errors.As(err, &le) {
		le.SpecIndex = index
	}
	return err
}

// claim records where a weight a spec selected is; its Change is kept beside it.
type claim struct {
	storage *checkpoint.Storage
	order   [2]int // dict, entry: file order
}

// byOrder puts claims, and their changes with them, in file order.
type byOrder struct {
	claims  []claim
	changes []Change
}

func (b byOrder) Len() int { return len(b.claims) }
func (b byOrder) Less(i, j int) bool {
	x, y := b.claims[i].order, b.claims[j].order
	return x[0] < y[0] || x[0] == y[0] && x[1] < y[1]
}
func (b byOrder) Swap(i, j int) {
	b.claims[i], b.claims[j] = b.claims[j], b.claims[i]
	b.changes[i], b.changes[j] = b.changes[j], b.changes[i]
}

// claimKey names a weight: the dict's place in the walk, and its key.
type claimKey struct {
	dict int
	key  string
}

// maxScans is how many layer names NewPlan looks up by a pass over the weights before it
// indexes them by module.
const maxScans = 8

// moduleIndex finds a dict's weights by module: the first one's index, and any more (a dict
// with a key twice) apart.
type moduleIndex struct {
	first map[string]int
	more  map[string][]int
}

func indexModules(ws []weight) moduleIndex {
	ix := moduleIndex{first: make(map[string]int, len(ws))}
	for i := range ws {
		if _, dup := ix.first[ws[i].module]; !dup {
			ix.first[ws[i].module] = i
			continue
		}
		if ix.more == nil {
			ix.more = map[string][]int{}
		}
		ix.more[ws[i].module] = append(ix.more[ws[i].module], i)
	}
	return ix
}

// lookup appends the weights of module to out, in key order.
func (ix moduleIndex) lookup(ws []weight, module string, out []*weight) []*weight {
	i, ok := ix.first[module]
	if !ok {
		return out
	}
	out = append(out, &ws[i])
	for _, j := range ix.more[module] {
		out = append(out, &ws[j])
	}
	return out
}

// planWeight works out one weight's change.
func planWeight(w *weight, sp Spec, spec string, dir Direction) (Change, error) {
	t := w.tensor
	ch := Change{
		Path:      w.path(),
		Layer:     w.module,
		Dict:      append(checkpoint.Path{}, w.dict.path...),
		DType:     dtypeOf(t),
		OldSize:   append([]int64(nil), t.Size...),
		OldStride: append([]int64(nil), t.Stride...),
		Spec:      spec,
	}
	fail := func(kind error, format string, args ...any) (Change, error) {
		return Change{}, &LayerError{Layer: w.module, Dict: w.dict.path, Err: kind, Detail: fmt.Sprintf(format, args...)}
	}
	if dir == ToLinear {
		switch {
		case sp.Mode == ShapeAuto:
			return fail(ErrShape, "auto applies to Linear → Conv2d only")
		case sp.Mode == ShapeCHW && (sp.C != t.Size[1] || sp.H != t.Size[2] || sp.W != t.Size[3]),
			sp.Mode == ShapeHW && (sp.H != t.Size[2] || sp.W != t.Size[3]):
			return fail(ErrShape, "spec says %s but the Conv2d weight is %s", sp, shape(t.Size))
		}
		size, stride, ok := linearView(t.Size, t.Stride)
		if !ok {
			return fail(ErrNotViewable, "Conv2d weight %s with strides %s cannot be seen as %dx%d without moving bytes (its C, kH, kW dimensions are not laid out one after another)",
				shape(t.Size), shape(t.Stride), t.Size[0], t.Size[1]*t.Size[2]*t.Size[3])
		}
		ch.NewSize, ch.NewStride = size, stride
		ch.Rule = fmt.Sprintf("C*kH*kW = %s = %d", dims(t.Size[1:]), size[1])
		return ch, nil
	}
	in := t.Size[1]
	var c, h, wd int64
	switch sp.Mode {
	case ShapeNone:
		c, h, wd = in, 1, 1
		ch.Rule = "in x 1 x 1 (no shape given)"
	case ShapeCHW:
		c, h, wd = sp.C, sp.H, sp.W
		if !productIs(in, c, h, wd) {
			return fail(ErrShape, "%dx%dx%d = %s inputs, the weight has %d", c, h, wd, product(c, h, wd), in)
		}
		ch.Rule = "CxHxW from spec"
	case ShapeHW:
		h, wd = sp.H, sp.W
		if h > in || wd > in/h || in%(h*wd) != 0 {
			return fail(ErrShape, "%dx%d = %s does not divide the weight's %d inputs", h, wd, product(h, wd), in)
		}
		c = in / (h * wd)
		ch.Rule = "HxW from spec, C = in/(H*W)"
	case ShapeAuto:
		var err error
		if c, h, wd, ch.Rule, err = autoShape(w); err != nil {
			return Change{}, err
		}
	}
	ch.NewSize, ch.NewStride = convView(t.Size, t.Stride, c, h, wd)
	return ch, nil
}

// autoShape takes C×H×W from the evidence before w in its dict (see Evidence): the nearest
// Conv2d weight or norm layer gives C and H = W = √(in/C); a Linear whose outputs equal
// in gives in×1×1.
func autoShape(w *weight) (c, h, wd int64, rule string, err error) {
	ev := evidenceFor(w)
	if !ev.Fixed {
		return 0, 0, 0, "", &LayerError{Layer: w.module, Dict: w.dict.path, Err: ErrAuto,
			Detail: "auto: " + ev.Rule + "; give CxHxW or HxW"}
	}
	return ev.C, ev.H, ev.W, "auto: " + ev.Rule, nil
}

// checkEvidence records the evidence for a Linear → Conv2d change and returns a warning when
// the chosen split disagrees with it.
func checkEvidence(w *weight, ch *Change, dir Direction) string {
	if dir != ToConv || len(ch.NewSize) != 4 {
		return ""
	}
	ev := evidenceFor(w)
	ch.Evidence = &ev
	c, h, wd := ch.NewSize[1], ch.NewSize[2], ch.NewSize[3]
	if ev.Agrees(c, h, wd) {
		return ""
	}
	name := w.path()
	name[len(name)-1] = w.module
	return fmt.Sprintf("%s: %s assumes its input is %dx%dx%d, but the checkpoint suggests %s (%s); the split is an assumption about the model: check it (verify fails on it unless --assume)",
		name, ch.Spec, c, h, wd, ev.Shape(), ev.Rule)
}

func dtypeOf(t *checkpoint.Tensor) string {
	if t.Storage == nil {
		return "unknown"
	}
	return t.Kind().DType()
}

func rankError(w *weight, sp Spec, dir Direction) error {
	hint := ""
	switch {
	case dir == ToConv && w.rank() == 4:
		hint = "; already converted? --to linear turns it back into a Linear weight"
	case dir == ToLinear && w.rank() == 2:
		hint = "; it is a Linear weight already: leave out --to linear to make it a Conv2d"
	}
	return &LayerError{Layer: w.module, Dict: w.dict.path, Err: ErrRank,
		Detail: fmt.Sprintf("weight %s is %d-D %s; a %s weight is %d-D%s", w.key, w.rank(), shape(w.tensor.Size), dir.fromKind(), dir.fromRank(), hint)}
}

func noMatchError(sp Spec, dicts []*stateDict, dir Direction) error {
	var names []string
	seen := map[string]bool{}
	for _, d := range dicts {
		for _, w := range d.weights() {
			if w.rank() == dir.fromRank() && !seen[w.module] {
				seen[w.module] = true
				names = append(names, w.module)
			}
		}
	}
	why := ""
	for _, d := range dicts {
		for _, e := range d.entries {
			k, _ := e.Key.(string)
			if _, dense := checkpoint.AsTensor(e.Value); !dense && checkpoint.IsTensor(e.Value) && k == sp.Layer+".weight" {
				// A weight is there, but with no dense data to view (meta, nested, sparse).
				why = fmt.Sprintf(" (%s is a %s, which has no dense data to convert)", k, checkpoint.TypeName(e.Value))
			}
		}
	}
	return &LayerError{Layer: sp.Layer, Err: ErrNoMatch,
		Detail: fmt.Sprintf("no %d-D weight matches%s; %s layers here: %s", dir.fromRank(), why, dir.fromKind(), nameList(names))}
}

// tiedWarnings names weights converted under one key while the same tensor also appears,
// unconverted or converted differently, under another key of its state_dict. Only a storage
// of a converted weight can tie it, so only the dict entries over those are looked at.
func tiedWarnings(dicts []*stateDict, claims map[claimKey]int, claimed []claim, changes []Change) []string {
	// How many entries of each dict sit over each converted weight's storage.
	storages := make([]map[*checkpoint.Storage]int, len(dicts)) // by dict order
	for _, cl := range claimed {
		if cl.storage == nil {
			continue
		}
		d := cl.order[0]
		if storages[d] == nil {
			storages[d] = map[*checkpoint.Storage]int{}
		}
		storages[d][cl.storage] = 0
	}
	var out []string
	for _, d := range dicts {
		shared := storages[d.order]
		if shared == nil {
			continue
		}
		parameter := func(e checkpoint.Entry) (*checkpoint.Tensor, bool) {
			t, ok := checkpoint.AsTensor(e.Value)
			if !ok || isBuffer(e.Key.(string)) {
				return nil, false
			}
			_, ok = shared[t.Storage]
			return t, ok
		}
		for _, e := range d.entries {
			if t, ok := parameter(e); ok {
				shared[t.Storage]++
			}
		}
		// The dict's parameters over storages that more than one entry uses, in
		// model.parameters() order, each with every key it appears under (see params).
		var tied [][]string
		var at map[tensorIdentity]int
		for _, e := range d.entries {
			t, ok := parameter(e)
			if !ok || shared[t.Storage] < 2 {
				continue
			}
			if at == nil {
				at = map[tensorIdentity]int{}
			}
			id := identityOf(t)
			if i, ok := at[id]; ok {
				tied[i] = append(tied[i], e.Key.(string))
				continue
			}
			at[id] = len(tied)
			tied = append(tied, []string{e.Key.(string)})
		}
		for _, keys := range tied {
			if len(keys) < 2 {
				continue
			}
			var conv, kept []string
			shapes := map[string]bool{}
			for _, k := range keys {
				path := append(append(checkpoint.Path(nil), d.path...), k)
				if i, ok := claims[claimKey{d.order, k}]; ok {
					conv = append(conv, path.String())
					shapes[dims(changes[i].NewSize)] = true
				} else {
					kept = append(kept, path.String())
				}
			}
			switch {
			case len(conv) > 0 && len(kept) > 0:
				out = append(out, fmt.Sprintf("%s is tied to %s: only %s changes shape; both keep sharing the storage",
					nameList(conv), nameList(kept), nameList(conv)))
			case len(shapes) > 1:
				out = append(out, fmt.Sprintf("tied weights %s get different shapes", nameList(conv)))
			}
		}
	}
	return out
}
