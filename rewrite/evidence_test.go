package rewrite

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// denseNetHead is the tail of a small DenseNet (growth 32, four blocks of two layers):
// the last conv has 32 outputs, features.norm5 has 128 channels, and the classifier takes
// the pooled 128 channels.
func (b *builder) denseNetHead() checkpoint.Value {
	var kv []any
	kv = append(kv, "features.conv0.weight", b.tensor(64, 3, 7, 7))
	kv = b.batchNorm(kv, "features.norm0", 64)
	kv = b.batchNorm(kv, "features.denseblock4.denselayer2.norm1", 224)
	kv = append(kv, "features.denseblock4.denselayer2.conv1.weight", b.tensor(128, 224, 1, 1))
	kv = b.batchNorm(kv, "features.denseblock4.denselayer2.norm2", 128)
	kv = append(kv, "features.denseblock4.denselayer2.conv2.weight", b.tensor(32, 128, 3, 3))
	kv = b.batchNorm(kv, "features.norm5", 128)
	kv = b.linear(kv, "classifier", 10, 128)
	return newStateDict(kv...)
}

// googLeNetHead is the tail of a GoogLeNet with its auxiliary heads: inception5b's branches
// concatenate to 1024 channels, aux1 and aux2 end in Linear(1024, 1000), and fc takes the
// pooled 1024 channels.
func (b *builder) googLeNetHead() checkpoint.Value {
	var kv []any
	for _, br := range []struct {
		name string
		c    int64
	}{{"branch1", 384}, {"branch2.1", 384}, {"branch3.1", 128}, {"branch4.1", 128}} {
		kv = append(kv, "inception5b."+br.name+".conv.weight", b.tensor(br.c, 832, 1, 1))
		kv = b.batchNorm(kv, "inception5b."+br.name+".bn", br.c)
	}
	for _, aux := range []string{"aux1", "aux2"} {
		kv = append(kv, aux+".conv.conv.weight", b.tensor(128, 512, 1, 1))
		kv = b.batchNorm(kv, aux+".conv.bn", 128)
		kv = b.linear(kv, aux+".fc1", 1024, 2048)
		kv = b.linear(kv, aux+".fc2", 1000, 1024)
	}
	kv = b.linear(kv, "fc", 1000, 1024)
	return newStateDict(kv...)
}

func TestEvidence(t *testing.T) {
	tests := []struct {
		name  string
		root  func(b *builder) checkpoint.Value
		layer string
		shape string // "" when the evidence fixes none
		rule  string
	}{
		{"densenet: norm5 after the last conv", (*builder).denseNetHead, "classifier", "128x1x1",
			"C=128 from norm layer features.norm5.running_mean"},
		{"googlenet: aux heads do not feed fc", (*builder).googLeNetHead, "fc", "",
			"1024 inputs / 128 channels of norm layer inception5b.branch4.1.bn.running_mean = 8, not a square; passed over Linear aux2.fc2 (1000 outputs, not 1024), Linear aux1.fc2 (1000 outputs, not 1024)"},
		{"googlenet: aux2.fc2 after aux2.fc1", (*builder).googLeNetHead, "aux2.fc2", "1024x1x1", "after Linear aux2.fc1"},
		{"vgg: conv before the first Linear", func(b *builder) checkpoint.Value { return b.vgg("") }, "classifier.0", "8x3x3", "C=8 from features.5.weight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder()
			root := tt.root(b)
			ix := NewEvidenceIndex(root)
			ev, ok := ix.For(checkpoint.Path{tt.layer + ".weight"})
			if !ok {
				t.Fatalf("no evidence for %s", tt.layer)
			}
			if ev.Shape() != tt.shape || ev.Rule != tt.rule {
				t.Errorf("got %q, %q\nwant %q, %q", ev.Shape(), ev.Rule, tt.shape, tt.rule)
			}
		})
	}
}

func TestAutoUsesNormLayer(t *testing.T) {
	b := newBuilder()
	c := b.checkpoint(t, b.denseNetHead())
	sp, _ := ParseSpec("classifier=auto")
	p, err := NewPlan(c, []Spec{sp}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(p.Changes[0].NewSize, " ", p.Changes[0].Rule)
	if want := "[10 128 1 1] auto: C=128 from norm layer features.norm5.running_mean"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings: %q", p.Warnings)
	}
	for _, cand := range Candidates(c) {
		if cand.Layer == "classifier" && cand.Spec != "classifier" {
			t.Errorf("suggested %s, want classifier (128x1x1)", cand.Spec)
		}
	}
}

func TestSplitDisagreeingWithEvidenceWarns(t *testing.T) {
	tests := []struct {
		name  string
		root  func(b *builder) checkpoint.Value
		specs []string
		warn  string // "" for none
	}{
		{"densenet 32x2x2", (*builder).denseNetHead, []string{"classifier=32x2x2"},
			"classifier: classifier=32x2x2 assumes its input is 32x2x2, but the checkpoint suggests 128x1x1"},
		{"densenet agrees", (*builder).denseNetHead, []string{"classifier"}, ""},
		{"vgg glob gives a 1x1 kernel after a conv", func(b *builder) checkpoint.Value { return b.vgg("") },
			[]string{"classifier.*"}, "classifier.0: classifier.* assumes its input is 72x1x1, but the checkpoint suggests 8x3x3"},
		{"googlenet fc has no evidence", (*builder).googLeNetHead, []string{"fc"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder()
			c := b.checkpoint(t, tt.root(b))
			var specs []Spec
			for _, s := range tt.specs {
				sp, err := ParseSpec(s)
				if err != nil {
					t.Fatal(err)
				}
				specs = append(specs, sp)
			}
			p, err := NewPlan(c, specs, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(p.Warnings, "\n")
			if tt.warn == "" && got != "" || !strings.Contains(got, tt.warn) {
				t.Errorf("warnings %q, want %q", got, tt.warn)
			}
			for _, ch := range p.Changes {
				if ch.Evidence == nil {
					t.Errorf("%s: no evidence recorded", ch.Path)
				}
			}
		})
	}
}

// randomDict is a state_dict of n entries under modules nested up to three deep, with
// Linear, Conv2d and norm layers of a few widths in random order, so that runs of carriers
// inside one module, and branches to pass over, come in every arrangement.
func (b *builder) randomDict(seed int64, n int) *checkpoint.OrderedDict {
	r := rand.New(rand.NewSource(seed))
	widths := []int64{4, 8, 16}
	var kv []any
	for len(kv) < 2*n {
		module := []string{"a", "b", "c"}[r.Intn(3)]
		for depth := r.Intn(3); depth > 0; depth-- {
			module += "." + []string{"x", "y", "0", "1"}[r.Intn(4)]
		}
		w := widths[r.Intn(len(widths))]
		switch r.Intn(6) {
		case 0, 1, 2:
			kv = b.linear(kv, module, w, widths[r.Intn(len(widths))])
		case 3:
			kv = b.conv(kv, module, w, 2, 3)
		case 4:
			kv = b.batchNorm(kv, module, w)
		default:
			kv = append(kv, module+".scale", b.tensor(w))
		}
	}
	return newStateDict(kv...)
}

// TestEvidenceScanAgreesWithIndex: looking back through the entries and looking through the
// index of the dict's carriers find the same evidence for every Linear.
func TestEvidenceScanAgreesWithIndex(t *testing.T) {
	roots := map[string]func(b *builder) checkpoint.Value{
		"densenet":  (*builder).denseNetHead,
		"googlenet": (*builder).googLeNetHead,
		"vgg":       func(b *builder) checkpoint.Value { return b.vgg("") },
		"bn mlp":    func(b *builder) checkpoint.Value { return b.bnMLP() },
	}
	for seed := range int64(20) {
		roots[fmt.Sprint("random ", seed)] = func(b *builder) checkpoint.Value { return b.randomDict(seed, 300) }
	}
	skips := 0 // lookups that passed over a branch: the runs inside modules matter
	for name, root := range roots {
		t.Run(name, func(t *testing.T) {
			dicts := findStateDicts(root(newBuilder()))
			if len(dicts) != 1 {
				t.Fatalf("%d state_dicts", len(dicts))
			}
			d := dicts[0]
			linears := 0
			for _, w := range d.weights() {
				if w.rank() != 2 {
					continue
				}
				linears++
				scanned, ok := findEvidence(&entryScan{entries: d.entries, budget: len(d.entries) * len(d.entries)}, &w, "")
				if !ok {
					t.Fatalf("%s: the scan gave up", w.key)
				}
				indexed, _ := findEvidence(d.evidenceIndex(), &w, "")
				skips += len(scanned.Skipped)
				if !reflect.DeepEqual(scanned, indexed) {
					t.Errorf("%s: looking back finds\n%+v\nthe index\n%+v", w.key, scanned, indexed)
				}
			}
			if linears == 0 {
				t.Fatal("no Linear to look up")
			}
		})
	}
	if skips < 100 {
		t.Errorf("%d branches passed over in all: the dicts do not test skipping", skips)
	}
}

// TestEvidenceScanGivesUp: a lookup that would read far back indexes the dict instead, and
// finds what the index finds.
func TestEvidenceScanGivesUp(t *testing.T) {
	b := newBuilder()
	kv := b.batchNorm(nil, "features.norm", 16)
	for i := range scanLimit {
		kv = append(kv, fmt.Sprintf("pos.%d.scale", i), b.tensor(4)) // carries no channel count
	}
	kv = b.linear(kv, "fc", 10, 16)
	d := findStateDicts(newStateDict(kv...))[0]
	ws := d.weights()
	fc := &ws[len(ws)-1]
	if _, ok := findEvidence(&entryScan{entries: d.entries, budget: scanLimit}, fc, ""); ok {
		t.Fatal("the scan read past its limit")
	}
	if d.evidence != nil {
		t.Fatal("indexed before any lookup")
	}
	ev := evidenceFor(fc)
	if d.evidence == nil {
		t.Error("a lookup past the limit did not index the dict")
	}
	if want := "C=16 from norm layer features.norm.running_mean"; !ev.Fixed || ev.Rule != want {
		t.Errorf("evidence %+v, want %s", ev, want)
	}
}
