package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/rewrite"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strings"
)

// ErrNoLayers: the two checkpoints have no weight that is 2-D in one and 4-D in the other.
var ErrNoLayers = errors.New("no converted layers found")

// Names of the checks in Result.Check.
const (
	// CheckSingle runs both forms on random C×H×W inputs: one output position.
	CheckSingle = "single"
	// CheckSliding runs the 4-D form on a larger input and the 2-D form on each window.
	CheckSliding = "sliding"
	// CheckChain runs a head of consecutive layers, ReLU between them, in both forms.
	CheckChain = "chain"
)

// Options tune Check. The zero value is usable.
type Options struct {
	// Seed seeds the random inputs; a report is reproducible from it.
	Seed uint64
	// Samples is the number of random inputs per check; 0 means 2.
	Samples int
	// Grow is how much larger than a layer's H×W the input of the sliding and chain checks
	// is: C×(H+Grow)×(W+Grow), giving (Grow+1)² windows; 0 means 2 (3×3 windows). VGG16's
	// head on a 512×14×14 feature map is Grow 7.
	Grow int
	// Assume accepts C×H×W splits that disagree with the checkpoint's evidence (the user
	// knows the model better than its key order tells).
	Assume bool
}

func (o Options) withDefaults() Options {
	if o.Samples <= 0 {
		o.Samples = 2
	}
	if o.Grow <= 0 {
		o.Grow = 2
	}
	return o
}

// Result is the outcome of one check on one layer (or one chain of layers).
//
// Both forms are computed in float32 from identical element values (float16 and bfloat16
// weights widen to float32 exactly; float64 weights round to float32 identically on both
// sides), so a correct conversion differs only by the order in which the same products are
// summed. The tolerance bounds that: for an output y = b + Σ w_i·x_i of a dot product of
// length k, rounding errors of a float32 sum are the partial sums times errors of at most
// u = 2⁻²⁴ of random sign, which add up like a random walk (√k, not the worst case k).
// With the inputs random and centred, the partial sums stay within about
// S = √(b² + Σ w_i²·x_i²) of the straight line from 0 to y, so
//
//	tol = 4·√(k+1)·u·(S + |y|)
//
// (S is computed exactly, with a second product of the squared weights and inputs). In a
// chain, the differences the previous layer left propagate through the weights, again of
// random sign: √(Σ w_i²·tol_i²) is added. ReLU does not enlarge differences.
// For a random weight of fan-in k this is about 4u·‖w‖·√k·2, hundreds of times tighter
// than bounding Σ|w_i·x_i| by ‖w‖·‖x‖: a weight rounded to float16, a relative change of
// 1e-3 or a bias shifted by 1e-4 fail at k = 25088, while a correct conversion shows an
// error of at most about 1% of its tolerance (none where both forms sum the same products
// in the same order). A layout error fails by orders of magnitude more.
// The exact proof (Structure) is what proves the elements; this check shows that the two
// forms compute the same function.
type Result struct {
	Layer   string `json:"layer"`   // module name; a chain names its layers joined by " > "
	Check   string `json:"check"`   // CheckSingle, CheckSliding or CheckChain
	DType   string `json:"dtype"`   // the weights' storage dtype
	Reverse bool   `json:"reverse"` // the original is the 4-D form
	Outputs int    `json:"outputs"` // values compared
	// MaxAbs is the largest |linear − conv| difference. MaxRel is the largest difference
	// relative to the larger magnitude of its two values (at most 2).
	MaxAbs float64 `json:"max_abs_err"`
	MaxRel float64 `json:"max_rel_err"`
	// Tol is the tolerance at the value that came closest to (or furthest past) its own
	// tolerance; Ratio is that value's |difference|/tolerance. Pass is Ratio <= 1.
	Tol   float64 `json:"tolerance"`
	Ratio float64 `json:"err_over_tol"`
	Pass  bool    `json:"pass"`
}

func (r Result) String() string {
	verdict := "ok"
	if !r.Pass {
		verdict = "FAIL"
	}
	return fmt.Sprintf("%-4s %s %s (%s, %d values): max abs %.3g, max rel %.3g, tol %.3g, err/tol %.3g",
		verdict, r.Check, r.Layer, r.DType, r.Outputs, r.MaxAbs, r.MaxRel, r.Tol, r.Ratio)
}

// Report collects the results of Check: the exact structural proof, the converted layers
// with the input each assumes, and the numeric checks.
type Report struct {
	Structure *Structure `json:"structure"`
	Layers    []Layer    `json:"layers"`
	Results   []Result   `json:"checks"`
}

// MarshalJSON adds the overall verdict, for scripts.
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		Passed bool `json:"passed"`
		*plain
	}{r.Passed(), (*plain)(r)})
}

// Passed reports whether the structure is proven, no layer's split disagrees with the
// evidence (unless assumed), and there was at least one numeric result and every one passed.
func (r *Report) Passed() bool {
	if r.Structure != nil && !r.Structure.Passed() {
		return false
	}
	for _, l := range r.Layers {
		if l.Status == EvidenceDisagrees {
			return false
		}
	}
	for _, res := range r.Results {
		if !res.Pass {
			return false
		}
	}
	return len(r.Results) > 0
}

// Check verifies conv against orig in three parts. First, exactly (Prove): everything but
// the converted layers' sizes and strides is bit-identical, and each converted weight holds
// the original's elements in the original's order. Second, the assumption: each converted
// layer's C×H×W split is compared with what the original checkpoint says about the layer's
// input (rewrite.Evidence); a disagreement fails unless opts.Assume. Third, numerically: the
// "single" and "sliding" checks for each layer (see FindLayers) and a "chain" check for each
// run of consecutive layers. Layers are decoded one at a time; only the bytes of the weights
// and biases involved are read. It returns ErrNoLayers if there is nothing to check; failed
// comparisons are reported in the Report, not as an error.
//
// Storage bytes and large float32 weights are read from the files a block at a time, and
// small tensors through a block of each file, so memory stays a few blocks whatever the
// size of the checkpoints, and a checkpoint of many small layers costs a few reads rather
// than one per tensor. Other large tensors of checkpoints mapped with
// checkpoint.Checkpoint.Map are copied from the mapping. A mapped file truncated meanwhile
// makes reading it fault; Check turns the fault into an error wrapping
// checkpoint.ErrChanged instead of crashing, and so does a file whose size or modification
// time changed by the end.
func Check(orig, conv *checkpoint.Checkpoint, opts Options) (rep *Report, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		// A mapped file that changed explains any fault reading it, whatever the signal
		// says (under user-mode emulation a SIGBUS arrives without its address).
		if changed := errors.Join(orig.Unchanged(), conv.Unchanged()); changed != nil {
			rep, err = nil, changed
			return
		}
		if _, fault := r.(interface{ Addr() uintptr }); !fault {
			panic(r)
		}
		rep, err = nil, fmt.Errorf("%w: reading %s or %s faulted; was it truncated?", checkpoint.ErrChanged, orig.Name, conv.Name)
	}()
	rep, err = check(orig, conv, opts)
	// A file that changed while it was read explains whatever went wrong reading it (a
	// short read, odd bytes), so that is the error to report.
	if changed := errors.Join(orig.Unchanged(), conv.Unchanged()); changed != nil {
		return nil, changed
	}
	return rep, err
}

func check(orig, conv *checkpoint.Checkpoint, opts Options) (*Report, error) {
	opts = opts.withDefaults()
	layers, tensors, err := findLayers(orig, conv)
	if err != nil {
		return nil, err
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("%s and %s: %w", orig.Name, conv.Name, ErrNoLayers)
	}
	rep := &Report{Layers: layers}
	var same identical
	if rep.Structure, same, err = prove(orig, conv, layers, tensors); err != nil {
		return nil, err
	}
	evidence := rewrite.NewEvidenceIndex(orig.Root)
	for i := range layers {
		l := &layers[i]
		l.Status = EvidenceNone
		if l.Reverse {
			continue
		}
		ev, ok := evidence.For(l.Path)
		if !ok || ev.Rule == "" {
			continue
		}
		l.Evidence = ev.Rule
		switch {
		case !ev.Fixed:
		case ev.Agrees(int64(l.C), int64(l.H), int64(l.W)):
			l.Status = EvidenceAgrees
		case opts.Assume:
			l.Status, l.Evidence = EvidenceAssumed, "the checkpoint suggests "+ev.Shape()+": "+ev.Rule
		default:
			l.Status, l.Evidence = EvidenceDisagrees, "the checkpoint suggests "+ev.Shape()+": "+ev.Rule
		}
	}
	groups := chains(layers)
	rep.Results = make([]Result, 0, 2*len(layers)+len(layers)-len(groups))
	// A layer's buffers come from one of two scratches in turn: a chain's next layer reads
	// the previous one's outputs while it fills the other.
	var scratches [2]scratch
	files := &blocks{orig: orig, conv: conv}
	pcg := rand.NewPCG(0, 0)
	rng := rand.New(pcg)
	large := false // the last layer checked had large weights
	var names []string
	for _, chain := range groups {
		var state *outputs
		names = names[:0]
		for step, i := range chain {
			l := &layers[i]
			if large {
				// The previous layer's buffers (tens of MiB) are garbage now: collecting
				// them lets this layer's reuse their memory, so that peak memory is one
				// layer's buffers rather than the collector's default of twice that.
				runtime.GC()
			}
			sc := &scratches[step%2]
			sc.reset()
			d, err := loadLayer(orig, conv, l, same, files, sc)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", l.Name, err)
			}
			large = 4*int64(d.lin.out)*int64(d.lin.k) >= 2*int64(blockBytes)
			pcg.Seed(opts.Seed, uint64(i))
			g := opts.Grow
			// Both inputs, and the chain's when there is one, go through each form in one
			// product: the weights are read once for all of them.
			var room [3]batch
			batches := append(room[:0],
				d.windows(randomInput(rng, sc, opts.Samples, l.C, l.H, l.W)),
				d.windows(randomInput(rng, sc, opts.Samples, l.C, l.H+g, l.W+g)))
			if step > 0 {
				batches = append(batches, d.following(state))
			}
			outs, err := d.runAll(batches)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", l.Name, err)
			}
			rep.Results = append(rep.Results, d.result(CheckSingle, l.Name, outs[0]), d.result(CheckSliding, l.Name, outs[1]))
			names = append(names, l.Name)
			if step == 0 {
				state = outs[1]
			} else {
				state = outs[2]
			}
		}
		if len(chain) > 1 {
			last := layers[chain[len(chain)-1]]
			res := compare(state)
			res.Check, res.Layer = CheckChain, strings.Join(names, " > ")
			res.DType, res.Reverse = last.linear().Kind().String(), last.Reverse
			rep.Results = append(rep.Results, res)
		}
	}
	return rep, nil
}

// layerData is one layer's weights decoded for both forms.
type layerData struct {
	sc                *scratch // where its buffers come from; nil allocates them
	layer             *Layer
	lin               *weight   // [out, C·H·W]
	conv              *weight   // [out, C, H, W]
	linBias, convBias []float32 // nil without bias
	gamma             float64   // 4·√(k+1)·u
	dtype             string
}

// files, if not nil, reads the small tensors of orig and conv through a block of each.
func loadLayer(orig, conv *checkpoint.Checkpoint, l *Layer, same identical, files *blocks, sc *scratch) (*layerData, error) {
	linCk, convCk := orig, conv
	linBiasT, convBiasT := l.Bias, l.ConvertedBias
	if l.Reverse {
		linCk, convCk = conv, orig
		linBiasT, convBiasT = l.ConvertedBias, l.Bias
	}
	// The converted file's weight is read from the original's storage when the proof found
	// the two storages' bytes identical: the same elements, so that one read of the
	// original's bytes serves both forms.
	linW, linWCk := l.linear(), linCk
	convW, convWCk := l.conv(), convCk
	if l.Reverse {
		if linW = same.inOriginal(linW); linW != l.linear() {
			linWCk = orig
		}
	} else if convW = same.inOriginal(convW); convW != l.conv() {
		convWCk = orig
	}
	d := &layerData{sc: sc, layer: l, dtype: l.linear().Kind().String()}
	var err error
	if d.lin, err = loadWeight(linWCk, linW, files.of(linWCk), sc, nil); err != nil {
		return nil, err
	}
	if d.conv, err = loadWeight(convWCk, convW, files.of(convWCk), sc, d.lin); err != nil {
		return nil, err
	}
	// Each form uses its own checkpoint's bias, so a bias lost or changed is caught.
	if linBiasT != nil {
		if d.linBias, err = decodeVectorInto(source{linCk, files.of(linCk)}, linBiasT, sc); err != nil {
			return nil, err
		}
	}
	if convBiasT != nil {
		if d.convBias, err = decodeVectorInto(source{convCk, files.of(convCk)}, convBiasT, sc); err != nil {
			return nil, err
		}
	}
	d.prepare()
	return d, nil
}

// blocks are a block for each of the two checkpoints of a check.
type blocks struct {
	orig, conv     *checkpoint.Checkpoint
	ofOrig, ofConv block
}

// of returns the block of c, or nil.
func (b *blocks) of(c *checkpoint.Checkpoint) *block {
	switch {
	case b == nil:
		return nil
	case c == b.orig:
		return &b.ofOrig
	case c == b.conv:
		return &b.ofConv
	}
	return nil
}

// prepare computes what the tolerances need from the decoded weights.
func (d *layerData) prepare() {
	k := d.lin.k
	d.gamma = tolFactor * math.Sqrt(float64(k+1)) * unitRoundoff
}

// sumSquares is Σ x², in float64 with four running sums: a single chain of dependent
// additions would leave the row norms of a large layer bound by addition latency.
func sumSquares(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a, b, c, d := float64(x[i]), float64(x[i+1]), float64(x[i+2]), float64(x[i+3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i]) * float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}

const (
	tolFactor    = 4
	unitRoundoff = 1.0 / (1 << 24)
)

// decodeVectorInto decodes the tensor t of c, a bias, into a buffer of sc (a new one when
// sc is nil).
func decodeVectorInto(c source, t *checkpoint.Tensor, sc *scratch) ([]float32, error) {
	data, _, err := decodeWith(c, t, sc.floats)
	return data, err
}

// outputs holds both forms' results on the same inputs.
type outputs struct {
	conv *Dense // [N, out, Ho, Wo]
	// lin is [N·Ho·Wo, out]: row (n·Ho + i)·Wo + j is the 2-D form applied to window (i, j)
	// of sample n.
	lin *Dense
	tol []float64 // per element of lin
}

func randomInput(rng *rand.Rand, sc *scratch, n, c, h, w int) *Dense {
	x := sc.dense(n, c, h, w)
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	return x
}

func (d *layerData) result(check, name string, o *outputs) Result {
	res := compare(o)
	res.Check, res.Layer, res.DType, res.Reverse = check, name, d.dtype, d.layer.Reverse
	return res
}

// compare matches the conv outputs with the linear ones, window by window.
func compare(o *outputs) Result {
	n, out, ho, wo := o.conv.Shape[0], o.conv.Shape[1], o.conv.Shape[2], o.conv.Shape[3]
	plane := ho * wo
	res := Result{Outputs: len(o.lin.Data)}
	first := true
	for s := range n {
		for c := range out {
			for p := range plane {
				got := float64(o.conv.Data[(s*out+c)*plane+p])
				idx := (s*plane+p)*out + c
				want := float64(o.lin.Data[idx])
				tol := o.tol[idx]
				diff := math.Abs(got - want)
				if got == want || math.IsNaN(got) && math.IsNaN(want) {
					diff = 0
				}
				ratio := diff / tol
				if diff == 0 {
					ratio = 0
				} else if math.IsNaN(ratio) {
					ratio = math.Inf(1)
				}
				res.MaxAbs = max(res.MaxAbs, diff)
				if diff > 0 {
					res.MaxRel = max(res.MaxRel, diff/max(math.Abs(got), math.Abs(want)))
				}
				if first || ratio > res.Ratio {
					res.Ratio, res.Tol, first = ratio, tol, false
				}
			}
		}
	}
	res.Pass = res.Ratio <= 1
	return res
}
