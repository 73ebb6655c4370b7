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
