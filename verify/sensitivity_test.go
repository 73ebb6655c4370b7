package verify

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// roundTo rounds v to a binary float with the given significand bits (11 for float16, 8
// for bfloat16), to nearest even, with subnormals below 2^minExp: the value a weight has
// after .half().float() or .bfloat16().float().
func roundTo(v float64, bits, minExp int) float64 {
	if v == 0 {
		return v
	}
	e := max(math.Ilogb(v), minExp)
	q := math.Ldexp(1, e-bits+1)
	return math.RoundToEven(v/q) * q
}

// mutation changes the converted checkpoint's weight and bias values.
type mutation struct {
	name string
	fn   func(rng *rand.Rand, w, b []float64)
}

var mutations = []mutation{
	{"none", func(*rand.Rand, []float64, []float64) {}},
	{"float16-rounded weight", func(_ *rand.Rand, w, _ []float64) {
		for i := range w {
			w[i] = float64(float32(roundTo(w[i], 11, -14)))
		}
	}},
	{"bfloat16-rounded weight", func(_ *rand.Rand, w, _ []float64) {
		for i := range w {
			w[i] = float64(float32(roundTo(w[i], 8, -126)))
		}
	}},
	{"weight x (1 + 1e-3 noise)", func(rng *rand.Rand, w, _ []float64) {
		for i := range w {
			w[i] = float64(float32(w[i] * (1 + 1e-3*rng.NormFloat64())))
		}
	}},
	{"bias + 1e-4", func(_ *rand.Rand, _, b []float64) {
		for i := range b {
			b[i] = float64(float32(b[i] + 1e-4))
		}
	}},
}

// sensitivityCase builds Linear(C·H·W, out) as torch initialises it (uniform in ±1/√k) and
// its conversion to C×H×W with the mutation applied to the converted file's values.
func sensitivityCase(t testing.TB, out, c, h, w int, m mutation) (orig, conv *checkpoint.Checkpoint) {
	rng := rand.New(rand.NewPCG(uint64(c*h*w), 7))
	k := c * h * w
	bound := 1 / math.Sqrt(float64(k))
	weight, bias := make([]float64, out*k), make([]float64, out)
	for i := range weight {
		weight[i] = float64(float32((2*rng.Float64() - 1) * bound))
	}
	for i := range bias {
		bias[i] = float64(float32((2*rng.Float64() - 1) * bound))
	}
	o, cv := newBuilder(t), newBuilder(t)
	o.add("fc.weight", checkpoint.Float32, weight, 0, []int64{int64(out), int64(k)}, []int64{int64(k), 1})
	o.add("fc.bias", checkpoint.Float32, bias, 0, []int64{int64(out)}, []int64{1})
	w2, b2 := append([]float64(nil), weight...), append([]float64(nil), bias...)
	m.fn(rng, w2, b2)
	cv.add("fc.weight", checkpoint.Float32, w2, 0, []int64{int64(out), int64(c), int64(h), int64(w)},
		[]int64{int64(k), int64(h * w), int64(w), 1})
	cv.add("fc.bias", checkpoint.Float32, b2, 0, []int64{int64(out)}, []int64{1})
	return o.build(), cv.build()
}

// The numeric checks on their own catch the value changes that used to pass: weights
// rounded to float16 or bfloat16, a 1e-3 relative perturbation, a 1e-4 bias shift, at
// VGG16's fan-in 25088 and at 4096. The exact proof catches them too, naming the tensor.
func TestNumericToleranceCatchesValueChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("large fan-in")
	}
	for _, geo := range []struct{ c, h, w int }{{512, 7, 7}, {256, 4, 4}} {
		for _, m := range mutations {
			t.Run(fmt.Sprintf("k=%d/%s", geo.c*geo.h*geo.w, m.name), func(t *testing.T) {
				orig, conv := sensitivityCase(t, 256, geo.c, geo.h, geo.w, m)
				rep, err := Check(orig, conv, Options{Seed: 1})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rep.Results {
					t.Logf("%s: error/tolerance %.3g (max abs %.3g, tol %.3g)", r.Check, r.Ratio, r.MaxAbs, r.Tol)
					if m.name == "none" && !r.Pass {
						t.Errorf("a correct conversion failed: %v", r)
					}
					if m.name != "none" && r.Pass {
						t.Errorf("%s passed the numeric check: %v", m.name, r)
					}
				}
				s := rep.Structure
				if m.name == "none" {
					if !s.Passed() || !rep.Passed() {
						t.Errorf("structure: %v", s.Differences)
					}
					return
				}
				want := "fc.weight"
				if m.name == "bias + 1e-4" {
					want = "fc.bias"
				}
				if s.Passed() || s.Differences[0].Path != want {
					t.Errorf("structure: %v, want a difference at %s", s.Differences, want)
				} else {
					t.Log(s.Differences[0])
				}
			})
		}
	}
}
