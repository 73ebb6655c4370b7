package verify

import (
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"math/rand/v2"
	"strings"
	"testing"
)

var floatKinds = []checkpoint.StorageKind{checkpoint.Float32, checkpoint.Float16, checkpoint.BFloat16, checkpoint.Float64}

// A layout error must miss the tolerance by at least this factor.
const minFailRatio = 100

func TestCheckLayouts(t *testing.T) {
	layouts := map[layout]string{contiguous: "contiguous", transposed: "transposed", offsetView: "offset"}
	variants := map[variant]string{correct: "correct", channelsLast: "channels-last", swappedHW: "swapped-HW"}
	for _, kind := range floatKinds {
		for lay, layName := range layouts {
			for v, vName := range variants {
				for _, reverse := range []bool{false, true} {
					name := fmt.Sprintf("%s/%s/%s/reverse=%v", kind, layName, vName, reverse)
					t.Run(name, func(t *testing.T) {
						rng := rand.New(rand.NewPCG(11, uint64(kind)))
						orig, conv := newBuilder(t), newBuilder(t)
						buildFC(rng, orig, conv, kind, fcSpec{name: "fc", out: 7, c: 3, h: 4, w: 5,
							bias: true, layout: lay, conversion: v})
						a, b := orig.build(), conv.build()
						if reverse {
							a, b = b, a
						}
						rep, err := Check(a, b, Options{Seed: 1})
						if err != nil {
							t.Fatal(err)
						}
						if len(rep.Results) != 2 {
							t.Fatalf("%d results, want single and sliding", len(rep.Results))
						}
						for _, r := range rep.Results {
							t.Log(r)
							if r.Reverse != reverse || r.Layer != "fc" || r.DType != kind.String() {
								t.Errorf("result labelled %q %s reverse=%v", r.Layer, r.DType, r.Reverse)
							}
							switch {
							case v == correct && !r.Pass:
								t.Errorf("correct conversion failed: %v", r)
							case v != correct && r.Pass:
								t.Errorf("layout error passed: %v", r)
							case v != correct && r.Ratio < minFailRatio:
								t.Errorf("layout error fails by only %.3gx the tolerance", r.Ratio)
							}
						}
						if rep.Passed() != (v == correct) {
							t.Errorf("Passed() = %v", rep.Passed())
						}
					})
				}
			}
		}
	}
}

// With VGG16's fan-in of 25088 the tolerance grows as √k while layout errors shrink as
// 1/√k; they must still miss by a wide margin.
func TestCheckLargeFanIn(t *testing.T) {
	if testing.Short() {
		t.Skip("large fan-in")
	}
	for _, kind := range []checkpoint.StorageKind{checkpoint.Float32, checkpoint.BFloat16} {
		for _, v := range []variant{correct, channelsLast, swappedHW} {
			t.Run(fmt.Sprintf("%s/variant=%d", kind, v), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(31, 32))
				o, c := newBuilder(t), newBuilder(t)
				buildFC(rng, o, c, kind, fcSpec{name: "fc6", out: 8, c: 512, h: 7, w: 7, bias: true, conversion: v})
				rep, err := Check(o.build(), c.build(), Options{Seed: 5})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rep.Results {
					t.Log(r)
					if r.Pass != (v == correct) || v != correct && r.Ratio < minFailRatio {
						t.Errorf("variant %d: %v", v, r)
					}
				}
			})
		}
	}
}

// vggLike builds a head fc6 (C×3×3 → 16), fc7 (16 → 12), fc8 (12 → 5), after a conv
// weight that stays 4-D, with fc6 converted as given.
func vggLike(t *testing.T, kind checkpoint.StorageKind, fc6 variant) (orig, conv *checkpoint.Checkpoint) {
	rng := rand.New(rand.NewPCG(21, 22))
	o, c := newBuilder(t), newBuilder(t)
	convW := exactValues(rng, 4*2*3*3)
	for _, b := range []*ckBuilder{o, c} {
		b.add("features.0.weight", kind, convW, 0, []int64{4, 2, 3, 3}, []int64{18, 9, 3, 1})
	}
	buildFC(rng, o, c, kind, fcSpec{name: "classifier.0", out: 16, c: 4, h: 3, w: 3, bias: true, conversion: fc6})
	buildFC(rng, o, c, kind, fcSpec{name: "classifier.3", out: 12, c: 16, h: 1, w: 1, bias: true})
	buildFC(rng, o, c, kind, fcSpec{name: "classifier.6", out: 5, c: 12, h: 1, w: 1})
	return o.build(), c.build()
}

func TestCheckChain(t *testing.T) {
	for _, kind := range floatKinds {
		for _, v := range []variant{correct, swappedHW} {
			for _, reverse := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/variant=%d/reverse=%v", kind, v, reverse), func(t *testing.T) {
					orig, conv := vggLike(t, kind, v)
					if reverse {
						orig, conv = conv, orig
					}
					rep, err := Check(orig, conv, Options{Seed: 7, Samples: 3, Grow: 4})
					if err != nil {
						t.Fatal(err)
					}
					if len(rep.Layers) != 3 {
						t.Fatalf("%d layers, want 3", len(rep.Layers))
					}
					var chain *Result
					for i, r := range rep.Results {
						t.Log(r)
						if r.Check == CheckChain {
							chain = &rep.Results[i]
						}
					}
					if len(rep.Results) != 7 || chain == nil {
						t.Fatalf("%d results, want 3×(single, sliding) and a chain", len(rep.Results))
					}
					if want := "classifier.0 > classifier.3 > classifier.6"; chain.Layer != want {
						t.Errorf("chain %q, want %q", chain.Layer, want)
					}
					if want := 3 * 25 * 5; chain.Outputs != want {
						t.Errorf("chain compared %d values, want %d", chain.Outputs, want)
					}
					if chain.Pass != (v == correct) || rep.Passed() != (v == correct) {
						t.Errorf("chain pass %v, report passed %v, for variant %d", chain.Pass, rep.Passed(), v)
					}
				})
			}
		}
	}
}

func TestFindLayers(t *testing.T) {
	orig, conv := vggLike(t, checkpoint.Float32, correct)
	layers, err := FindLayers(orig, conv)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range layers {
		got = append(got, fmt.Sprintf("%s %dx%dx%d bias=%v", l.Name, l.C, l.H, l.W, l.Bias != nil && l.ConvertedBias != nil))
	}
	want := "classifier.0 4x3x3 bias=true; classifier.3 16x1x1 bias=true; classifier.6 12x1x1 bias=false"
	if strings.Join(got, "; ") != want {
		t.Errorf("layers %s, want %s", strings.Join(got, "; "), want)
	}
	if c := chains(layers); len(c) != 1 || len(c[0]) != 3 {
		t.Errorf("chains %v, want one of 3", c)
	}
}

func TestChainsBreak(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	o, c := newBuilder(t), newBuilder(t)
	buildFC(rng, o, c, checkpoint.Float32, fcSpec{name: "a", out: 4, c: 2, h: 2, w: 2})
	// a weight between them that is not converted interrupts the head
	for _, b := range []*ckBuilder{o, c} {
		b.add("norm.weight", checkpoint.Float32, []float64{1, 1, 1, 1}, 0, []int64{4}, []int64{1})
	}
	buildFC(rng, o, c, checkpoint.Float32, fcSpec{name: "b", out: 3, c: 4, h: 1, w: 1})
	// 3 outputs of b do not feed 5 channels
	buildFC(rng, o, c, checkpoint.Float32, fcSpec{name: "c", out: 2, c: 5, h: 1, w: 1})
	orig := o.build()
	layers, err := FindLayers(orig, c.build())
	if err != nil {
		t.Fatal(err)
	}
	if got := chains(layers); len(got) != 3 {
		t.Errorf("chains %v, want three of one", got)
	}
}

func TestFindLayersErrors(t *testing.T) {
	o, c := newBuilder(t), newBuilder(t)
	o.add("fc.weight", checkpoint.Float32, make([]float64, 12), 0, []int64{3, 4}, []int64{4, 1})
	c.add("fc.weight", checkpoint.Float32, make([]float64, 12), 0, []int64{3, 2, 1, 1}, []int64{2, 1, 1, 1})
	if _, err := FindLayers(o.build(), c.build()); !errors.Is(err, ErrShape) {
		t.Errorf("element count changed: error %v, want %v", err, ErrShape)
	}

	o, c = newBuilder(t), newBuilder(t)
	o.add("fc.weight", checkpoint.Float32, make([]float64, 12), 0, []int64{3, 4}, []int64{4, 1})
	o.add("fc.bias", checkpoint.Float32, make([]float64, 4), 0, []int64{4}, []int64{1})
	c.add("fc.weight", checkpoint.Float32, make([]float64, 12), 0, []int64{3, 4, 1, 1}, []int64{4, 1, 1, 1})
	if _, err := FindLayers(o.build(), c.build()); !errors.Is(err, ErrShape) {
		t.Errorf("bias of 4 for 3 outputs: error %v, want %v", err, ErrShape)
	}

	o, c = newBuilder(t), newBuilder(t)
	o.add("fc.weight", checkpoint.Float32, make([]float64, 12), 0, []int64{3, 4}, []int64{4, 1})
	c.add("fc.weight", checkpoint.Float32, make([]float64, 12), 0, []int64{3, 4}, []int64{4, 1})
	if _, err := Check(o.build(), c.build(), Options{}); !errors.Is(err, ErrNoLayers) {
		t.Errorf("nothing converted: error %v, want %v", err, ErrNoLayers)
	}
}

// A bias changed in the converted checkpoint is caught.
func TestCheckDamagedBias(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	o, c := newBuilder(t), newBuilder(t)
	buildFC(rng, o, c, checkpoint.Float32, fcSpec{name: "fc", out: 5, c: 2, h: 3, w: 3, bias: true})
	bias := c.dict.Entries[1].Value.(*checkpoint.Tensor)
	c.data[bias.Storage] = encode(t, checkpoint.Float32, []float64{1, 2, 3, 4, 5})
	rep, err := Check(o.build(), c.build(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed() {
		t.Error("a different bias passed")
	}
}

// The same seed gives the same report; another seed gives other inputs.
func TestCheckDeterministic(t *testing.T) {
	orig, conv := vggLike(t, checkpoint.Float32, correct)
	a, err := Check(orig, conv, Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Check(orig, conv, Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Results {
		if a.Results[i] != b.Results[i] {
			t.Errorf("run 1: %v\nrun 2: %v", a.Results[i], b.Results[i])
		}
	}
	c, err := Check(orig, conv, Options{Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	differ := 0
	for i := range a.Results {
		if a.Results[i].Tol != c.Results[i].Tol {
			differ++
		}
	}
	if differ == 0 {
		t.Error("seeds 3 and 4 gave the same tolerances everywhere: the seed does not reach the inputs")
	}
}

// A bias the conversion dropped is caught.
func TestCheckLostBias(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	o, c := newBuilder(t), newBuilder(t)
	buildFC(rng, o, c, checkpoint.Float32, fcSpec{name: "fc", out: 5, c: 2, h: 3, w: 3, bias: true})
	c.dict.Entries = c.dict.Entries[:1] // fc.weight only
	rep, err := Check(o.build(), c.build(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed() {
		t.Error("a converted layer without its bias passed")
	}
}
