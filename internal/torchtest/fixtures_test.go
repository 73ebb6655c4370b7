package torchtest

import (
	"math"
	"strings"
	"testing"
)

func TestManifest(t *testing.T) {
	m := LoadManifest(t)
	tests := []struct {
		file        string
		format      string
		protocol    int
		weightsOnly bool
		tensors     int
	}{
		{"seed2x2.pt", "zip", 2, true, 2},
		{"seed2x2_t26.pt", "zip", 2, true, 2},
		{"vgg_tiny_legacy.pt", "legacy", 2, true, 10},
		{"mlp_proto4.pt", "zip", 4, false, 6},
		{"train_sgd.pt", "zip", 2, false, 34}, // torch 1.13's weights_only refuses floats
		{"train_sgd_t26.pt", "zip", 2, true, 34},
	}
	for _, tt := range tests {
		f := m.File(t, tt.file)
		if f.Format != tt.format || f.Protocol != tt.protocol || f.WeightsOnly != tt.weightsOnly ||
			len(f.Tensors) != tt.tensors {
			t.Errorf("%s: format %s protocol %d weights_only %v tensors %d; want %s %d %v %d", tt.file,
				f.Format, f.Protocol, f.WeightsOnly, len(f.Tensors), tt.format, tt.protocol, tt.weightsOnly, tt.tensors)
		}
	}
	// Files from torch 2 carry records torch 1.13 does not write.
	if r := strings.Join(m.File(t, "mlp_t26.pt").Records, " "); !strings.Contains(r, "byteorder") ||
		!strings.Contains(r, ".data/serialization_id") {
		t.Errorf("mlp_t26.pt records = %s", r)
	}
	// The offset view and the transposed weight of strided.pt.
	facts := map[string]TensorFacts{}
	for _, tf := range m.File(t, "strided.pt").Tensors {
		facts[tf.Key] = tf
	}
	if w := facts["fc2.weight"]; w.StorageOffset != 8 || w.StorageNumel != 32 ||
		w.StorageKey != facts["fc2.bias"].StorageKey {
		t.Errorf("strided.pt fc2.weight = %+v", w)
	}
	if w := facts["fc1.weight"]; w.Stride[0] != 1 || w.Stride[1] != 6 {
		t.Errorf("strided.pt fc1.weight = %+v", w)
	}
}

func TestExpected(t *testing.T) {
	e := LoadExpected(t, "seed2x2")
	want := []float32{14.9, 19.0}
	for i, v := range e.Linear {
		if math.Abs(float64(v-want[i])) > 1e-5 || e.ConvWindow[i] != v {
			t.Errorf("seed2x2 linear = %v, conv window = %v; want %v", e.Linear, e.ConvWindow, want)
		}
	}
	head := LoadExpected(t, "vgg_tiny_head")
	if len(head.Layers) != 3 || len(head.ConvMap) != 5*3*3 || len(head.LargeInput) != 8*5*5 {
		t.Errorf("vgg_tiny_head: %d layers, conv map %d values, large input %d values",
			len(head.Layers), len(head.ConvMap), len(head.LargeInput))
	}
	p := LoadPlanted(t)
	if p.Original != "planted_orig.pt" || len(p.Pairs) != 2 || p.Pairs[1].Equivalent {
		t.Errorf("planted = %+v", p)
	}
}
