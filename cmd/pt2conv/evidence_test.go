package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The C×H×W split is an assumption: inspect suggests what the checkpoint's evidence gives,
// convert warns (exit 0) about a split that contradicts it, verify fails on one (exit 1)
// unless --assume, and a split the checkpoint cannot decide is shown as assumed.
func TestSplitEvidence(t *testing.T) {
	dir := t.TempDir()
	type step struct {
		args   []string
		code   int
		stdout []string // substrings
		stderr []string
	}
	out := func(name string) string { return filepath.Join(dir, name) }
	steps := []step{
		{[]string{"inspect", fixture("densenet_tiny.pt")}, 0,
			[]string{"classifier  128  10   yes   128×1×1  auto: C=128 from norm layer features.norm5.running_mean", "--layer classifier"}, nil},
		{[]string{"convert", fixture("densenet_tiny.pt"), "-o", out("dense.pt"), "--layer", "classifier=32x2x2"}, 0, nil,
			[]string{"warning", "classifier: classifier=32x2x2 assumes its input is 32x2x2, but the checkpoint suggests 128x1x1"}},
		{[]string{"verify", fixture("densenet_tiny.pt"), out("dense.pt")}, 1,
			[]string{"classifier  32×2×2         DISAGREES: the checkpoint suggests 128x1x1: C=128 from norm layer features.norm5.running_mean"},
			[]string{"verification failed"}},
		{[]string{"verify", "--assume", fixture("densenet_tiny.pt"), out("dense.pt")}, 0,
			[]string{"assumed: the checkpoint suggests 128x1x1", "checks passed"}, nil},
		{[]string{"convert", fixture("densenet_tiny.pt"), "-o", out("dense_auto.pt"), "--layer", "classifier=auto", "--verify"}, 0,
			[]string{"(10, 128, 1, 1)", "agrees: C=128 from norm layer features.norm5.running_mean", "checks passed"}, nil},
		{[]string{"inspect", fixture("googlenet_tiny.pt")}, 0,
			[]string{"fc        24   10   yes   24×1×1  in x 1 x 1 (auto: 24 inputs / 4 channels of norm layer inception5b.branch4.1.bn.running_mean = 6, not a square; passed over Linear aux2.fc2 (10 outputs, not 24), Linear aux1.fc2 (10 outputs, not 24))"}, nil},
		{[]string{"convert", fixture("split435.pt"), "-o", out("split.pt"), "--layer", "fc1=4x5x3", "--verify"}, 0,
			[]string{"fc1    4×5×3          none (60 inputs / 4 channels of conv.weight = 15, not a square): the split is assumed"}, nil},
		{[]string{"convert", fixture("vgg_tiny.pt"), "-o", out("vgg.pt"), "--layer", "classifier.*"}, 0, nil,
			[]string{"classifier.0: classifier.* assumes its input is 72x1x1, but the checkpoint suggests 8x3x3 (C=8 from features.3.weight)"}},
		{[]string{"verify", fixture("vgg_tiny.pt"), out("vgg.pt")}, 1, []string{"DISAGREES"}, nil},
	}
	for _, s := range steps {
		code, stdout, stderr := pt2conv(t, s.args...)
		bad := code != s.code
		for _, want := range s.stdout {
			bad = bad || !strings.Contains(stdout, want)
		}
		for _, want := range s.stderr {
			bad = bad || !strings.Contains(stderr, want)
		}
		if bad {
			t.Errorf("pt2conv %s: exit %d, want %d with %q on stdout and %q on stderr; got\n%s%s",
				strings.Join(s.args, " "), code, s.code, s.stdout, s.stderr, stdout, stderr)
		}
	}
}
