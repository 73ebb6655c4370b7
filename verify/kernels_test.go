package verify

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func randomDense(rng *rand.Rand, shape ...int) *Dense {
	d := NewDense(shape...)
	for i := range d.Data {
		d.Data[i] = float32(rng.NormFloat64())
	}
	return d
}

func randomVector(rng *rand.Rand, n int) []float32 {
	return randomDense(rng, n).Data
}

// assertClose compares with the float64-accumulated reference, allowing float32 rounding
// of sums of length k.
func assertClose(t *testing.T, got, want *Dense, k int) {
	t.Helper()
	if !slices.Equal(got.Shape, want.Shape) {
		t.Fatalf("shape %v, want %v", got.Shape, want.Shape)
	}
	tol := 8 * math.Sqrt(float64(k+1)) * unitRoundoff
	for i := range got.Data {
		g, w := float64(got.Data[i]), float64(want.Data[i])
		if math.Abs(g-w) > tol*(1+math.Abs(w)) {
			t.Fatalf("element %d = %v, want %v (tolerance %.3g)", i, g, w, tol*(1+math.Abs(w)))
		}
	}
}

func TestLinear(t *testing.T) {
	tests := []struct {
		name        string
		n, in, out  int
		withoutBias bool
	}{
		{"one", 1, 1, 1, false},
		{"small", 3, 4, 2, false},
		{"no bias", 5, 7, 3, true},
		{"wide", 2, 300, 17, false},
		{"tall", 64, 9, 33, false},
		{"no samples", 0, 4, 2, false},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := randomDense(rng, tt.n, tt.in)
			w := randomDense(rng, tt.out, tt.in)
			var b []float32
			if !tt.withoutBias {
				b = randomVector(rng, tt.out)
			}
			got, err := Linear(x, w, b)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, got, linearRef(x, w, b), tt.in)
		})
	}
}

func TestConv2d(t *testing.T) {
	tests := []struct {
		name        string
		n, c, h, w  int
		out, kh, kw int
		p           ConvParams
	}{
		{"full window", 2, 3, 4, 5, 6, 4, 5, ConvParams{}},
		{"sliding", 2, 3, 6, 7, 4, 4, 5, ConvParams{}},
		{"1x1", 3, 8, 3, 3, 5, 1, 1, ConvParams{}},
		{"stride", 1, 2, 9, 8, 3, 3, 2, ConvParams{Stride: [2]int{2, 3}}},
		{"padding", 2, 2, 5, 5, 3, 3, 3, ConvParams{Padding: [2]int{1, 2}}},
		{"dilation", 1, 2, 9, 9, 2, 3, 3, ConvParams{Dilation: [2]int{2, 3}}},
		{"all", 2, 3, 10, 11, 4, 3, 2, ConvParams{Stride: [2]int{2, 1}, Padding: [2]int{2, 1}, Dilation: [2]int{1, 2}}},
		{"padding only window", 1, 1, 1, 1, 1, 3, 3, ConvParams{Padding: [2]int{1, 1}}},
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := randomDense(rng, tt.n, tt.c, tt.h, tt.w)
			w := randomDense(rng, tt.out, tt.c, tt.kh, tt.kw)
			b := randomVector(rng, tt.out)
			got, err := Conv2d(x, w, b, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, got, conv2dRef(x, w, b, tt.p), tt.c*tt.kh*tt.kw)
		})
	}
}

// Batches larger than the im2col buffer are processed in groups.
func TestConv2dGroups(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randomDense(rng, 5, 3, 8, 8)
	w := randomDense(rng, 4, 3, 3, 3)
	want, err := Conv2d(x, w, nil, ConvParams{})
	if err != nil {
		t.Fatal(err)
	}
	saved := maxColumns
	t.Cleanup(func() { maxColumns = saved })
	maxColumns = 27 * 36 * 2 // two samples per group
	got, err := Conv2d(x, w, nil, ConvParams{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Data, want.Data) {
		t.Error("grouped Conv2d differs from one batch")
	}
}

func TestKernelShapeErrors(t *testing.T) {
	x2, w2 := NewDense(2, 3), NewDense(4, 5)
	if _, err := Linear(x2, w2, nil); !errors.Is(err, ErrShape) {
		t.Errorf("Linear 3 vs 5 inputs: %v", err)
	}
	if _, err := Linear(NewDense(2, 5), w2, make([]float32, 3)); !errors.Is(err, ErrShape) {
		t.Errorf("Linear with 3 biases: %v", err)
	}
	if _, err := Linear(&Dense{Shape: []int{2, 5}, Data: make([]float32, 9)}, NewDense(4, 5), nil); !errors.Is(err, ErrShape) {
		t.Errorf("Linear with 9 elements for [2 5]: %v", err)
	}
	if _, err := Conv2d(NewDense(1, 2, 3, 3), NewDense(1, 3, 1, 1), nil, ConvParams{}); !errors.Is(err, ErrShape) {
		t.Errorf("Conv2d channel mismatch: %v", err)
	}
	if _, err := Conv2d(NewDense(1, 2, 3, 3), NewDense(1, 2, 4, 4), nil, ConvParams{}); !errors.Is(err, ErrShape) {
		t.Errorf("Conv2d kernel larger than input: %v", err)
	}
}

// The worked example of the design notes: relu(linear) = relu(conv 2×2) = [14.9, 19.0].
func TestSeedExample(t *testing.T) {
	w := &Dense{Shape: []int{2, 4}, Data: []float32{1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8}}
	b := []float32{1.9, 2.0}
	x := &Dense{Shape: []int{1, 4}, Data: []float32{1, 2, 3, 4}}
	lin, err := Linear(x, w, b)
	if err != nil {
		t.Fatal(err)
	}
	ReLU(lin)
	kernel := &Dense{Shape: []int{2, 1, 2, 2}, Data: w.Data}
	img := &Dense{Shape: []int{1, 1, 2, 2}, Data: x.Data}
	conv, err := Conv2d(img, kernel, b, ConvParams{})
	if err != nil {
		t.Fatal(err)
	}
	ReLU(conv)
	want := []float64{14.9, 19.0}
	for i, w := range want {
		if math.Abs(float64(lin.Data[i])-w) > 1e-5 || math.Abs(float64(conv.Data[i])-w) > 1e-5 {
			t.Errorf("output %d: linear %v, conv %v, want %v", i, lin.Data[i], conv.Data[i], w)
		}
	}
	if !slices.Equal(conv.Shape, []int{1, 2, 1, 1}) {
		t.Errorf("conv shape %v", conv.Shape)
	}
}

func TestReLU(t *testing.T) {
	d := &Dense{Shape: []int{4}, Data: []float32{-1, 0, 2, float32(math.Inf(-1))}}
	ReLU(d)
	if !slices.Equal(d.Data, []float32{0, 0, 2, 0}) {
		t.Errorf("ReLU = %v", d.Data)
	}
}
