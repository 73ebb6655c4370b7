package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/internal/torchtest"
)

// plantedChanges are changes torch makes to a converted training checkpoint
// (testdata/mutate.py), with the text verify's report must name them by. "" is the control:
// torch re-saving the file unchanged.
var plantedChanges = []struct{ kind, want string }{
	{"resave", ""},
	{"f16", "model/classifier.0.weight: element"},
	{"bf16", "model/classifier.0.weight: element"},
	{"noise", "model/classifier.0.weight: element"},
	{"bias", "model/classifier.0.bias: element [0] differs"},
	{"tensor", "model/features.0.weight: element [0 0 0 0] differs"},
	{"buffer", "model/features.1.running_var: missing from the converted file"},
	{"plain", "epoch: 7 in the original, 999 in the converted file"},
	{"lr", "optimizer/param_groups/0/lr: 0.01"},
	{"momentum", "optimizer/state/0/momentum_buffer: element"},
	{"metadata", "model/_metadata: missing from the converted file"},
}

// Every planted change makes verify exit 1 with a line that names its path, and torch's own
// judge of converted files (testdata/converted.py) rejects each one too; torch re-saving the
// conversion unchanged passes both.
func TestVerifyCatchesPlantedChanges(t *testing.T) {
	torches := torchtest.All(t)
	dir := t.TempDir()
	conv := filepath.Join(dir, "conv.pt")
	if code, stdout, stderr := pt2conv(t, "convert", fixture("train_sgd.pt"), "-o", conv, "--layer", "classifier.0=auto",
		"--layer", "classifier.3", "--layer", "classifier.6", "--optimizer-key", "optimizer"); code != 0 {
		t.Fatalf("convert: exit %d\n%s%s", code, stdout, stderr)
	}
	tr := torches[0]
	host, inside := tr.TempDir(t)
	args := []string{tr.Share(t, conv), inside}
	for _, p := range plantedChanges {
		args = append(args, p.kind)
	}
	tr.Run(t, "cmd/pt2conv/testdata/mutate.py", args...)

	orig, _ := filepath.Abs(fixture("train_sgd.pt"))
	shapes := map[string][]int64{
		"model/classifier.0.weight": {16, 8, 3, 3}, "model/classifier.3.weight": {16, 16, 1, 1}, "model/classifier.6.weight": {5, 16, 1, 1},
		"optimizer/state/8/momentum_buffer": {16, 8, 3, 3}, "optimizer/state/10/momentum_buffer": {16, 16, 1, 1},
		"optimizer/state/12/momentum_buffer": {5, 16, 1, 1},
	}
	var cases []judgeCase
	for _, p := range plantedChanges {
		mutated := filepath.Join(host, p.kind+".pt")
		code, stdout, stderr := pt2conv(t, "verify", orig, mutated)
		wantCode := 1
		if p.want == "" {
			wantCode = 0
		}
		if code != wantCode || !strings.Contains(stdout, p.want) {
			t.Errorf("%s: verify exit %d, want %d and %q in\n%s%s", p.kind, code, wantCode, p.want, stdout, stderr)
		}
		if p.want != "" && !strings.Contains(stderr, "verification failed") {
			t.Errorf("%s: stderr %q", p.kind, stderr)
		}
		cases = append(cases, judgeCase{Orig: orig, Conv: mutated, Shapes: shapes})
	}
	for _, tr := range torches {
		out, err := judge(t, tr, "cmd/pt2conv/testdata/converted.py", cases, "check-each")
		if err != nil {
			t.Fatalf("%s: %v", tr, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != len(plantedChanges) {
			t.Fatalf("%s: %d lines for %d cases:\n%s", tr, len(lines), len(plantedChanges), out)
		}
		for i, p := range plantedChanges {
			var verdict *string
			if err := json.Unmarshal([]byte(lines[i]), &verdict); err != nil {
				t.Fatalf("%s: line %q: %v", tr, lines[i], err)
			}
			if (verdict == nil) != (p.want == "") {
				t.Errorf("%s: converted.py on %s: %v", tr, p.kind, verdict)
			} else if verdict != nil {
				t.Logf("%s: %s: %s", tr, p.kind, *verdict)
			}
		}
	}
}
