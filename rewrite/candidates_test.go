package rewrite

import (
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"strings"
	"testing"
)

func TestCandidates(t *testing.T) {
	tests := []struct {
		name string
		root func(b *builder) checkpoint.Value
		want string
	}{
		{"vgg", func(b *builder) checkpoint.Value { return dict("model", b.vgg("")) },
			"model classifier.0 72 16 true classifier.0=8x3x3 auto: C=8 from features.5.weight|" +
				"model classifier.3 16 16 true classifier.3 auto: after Linear classifier.0|" +
				"model classifier.6 16 10 true classifier.6 auto: after Linear classifier.3|"},
		{"bias-less first layer", func(b *builder) checkpoint.Value {
			return newStateDict("proj.weight", b.tensor(5, 9), "head.weight", b.tensor(2, 5), "head.bias", b.tensor(2))
		}, " proj 9 5 false proj in x 1 x 1| head 5 2 true head auto: after Linear proj|"},
		{"convs only", func(b *builder) checkpoint.Value { return b.convHead() }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder()
			var got strings.Builder
			for _, c := range Candidates(b.checkpoint(t, tt.root(b))) {
				fmt.Fprintf(&got, "%s %s %d %d %v %s %s|", c.Dict, c.Layer, c.In, c.Out, c.HasBias, c.Spec, c.Rule)
			}
			if got.String() != tt.want {
				t.Errorf("got  %s\nwant %s", got.String(), tt.want)
			}
		})
	}
}

// Embedding tables and layers tied to them are marked, Linears are not.
func TestCandidatesNotLinear(t *testing.T) {
	b := newBuilder()
	wte := b.tensor(50, 8)
	shared := b.tensor(6, 4)
	sd := newStateDict(
		"transformer.wte.weight", wte, // GPT-2's token embedding
		"embeddings.word_embeddings.weight", b.tensor(30, 8),
		"proj.weight", b.tensor(8, 8), // a bias-less Linear
		"fc.weight", b.tensor(3, 8), "fc.bias", b.tensor(3),
		"decoder.weight", shared, "out.weight", shared, // tied, neither named like an embedding
		"big.weight", b.tensor(8192, 16), // vocabulary-sized, bias-less
		"lm_head.weight", wte,
	)
	// The same dict under two paths does not make its weights look tied.
	c := b.checkpoint(t, dict("model", sd, "ema", sd))
	got := map[string]string{}
	for _, cand := range Candidates(c) {
		if cand.Dict.String() == "model" {
			got[cand.Layer] = cand.NotLinear
		}
	}
	want := map[string]string{
		"transformer.wte":            "named like an embedding",
		"embeddings.word_embeddings": "named like an embedding",
		"proj":                       "",
		"fc":                         "",
		"decoder":                    "shares its storage",
		"out":                        "shares its storage",
		"big":                        "vocabulary-sized",
		"lm_head":                    "named like an embedding",
	}
	for layer, w := range want {
		if g, ok := got[layer]; !ok || (w == "") != (g == "") || !strings.Contains(g, w) {
			t.Errorf("%s: NotLinear %q, want %q", layer, g, w)
		}
	}
}

func TestOptimizersAndStateDicts(t *testing.T) {
	b := newBuilder()
	sd := b.vgg("")
	c := b.checkpoint(t, dict("state_dict", sd, "optimizer_states", list(b.adam(sd)), "epoch", int64(1)))
	opts := Optimizers(c)
	if len(opts) != 1 {
		t.Fatalf("found %d optimizers, want 1", len(opts))
	}
	o := opts[0]
	if o.Path.String() != "optimizer_states/0" || o.Params != 12 || strings.Join(o.State, ",") != "step,exp_avg,exp_avg_sq" || o.Tensors != 36 {
		t.Errorf("got %+v", o)
	}
	if got := fmt.Sprint(StateDicts(c)); got != "[state_dict]" {
		t.Errorf("StateDicts = %s", got)
	}
}
