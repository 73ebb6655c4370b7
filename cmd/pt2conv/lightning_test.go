package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/internal/torchtest"
)

var lightningHead = []string{"--layer", "model.classifier.0=auto", "--layer", "model.classifier.3", "--layer", "model.classifier.6"}

// TestSuggestedOptimizerKeyWorks follows the hint pt2conv gives for a Lightning checkpoint,
// whose optimizers sit in a list ("optimizer_states": [...]): the key it suggests walks that
// list, so passing it reshapes the optimizer state, and training resumes in conv form under
// every torch.
func TestSuggestedOptimizerKeyWorks(t *testing.T) {
	dir := t.TempDir()
	in := fixture("lightning.pt")
	plain := filepath.Join(dir, "plain.pt")
	code, _, stderr := pt2conv(t, append([]string{"convert", in, "-o", plain}, lightningHead...)...)
	if code != 0 {
		t.Fatalf("convert without --optimizer-key: exit %d\n%s", code, stderr)
	}
	hint := regexp.MustCompile(`pass (--optimizer-key) (\S+) `).FindStringSubmatch(stderr)
	if hint == nil {
		t.Fatalf("no --optimizer-key hint for the optimizer in optimizer_states:\n%s", stderr)
	}
	if hint[2] != "optimizer_states/0" {
		t.Errorf("hint names %q, want optimizer_states/0", hint[2])
	}
	resumable := filepath.Join(dir, "resumable.pt")
	args := append([]string{"convert", in, "-o", resumable, hint[1], hint[2], "--verify"}, lightningHead...)
	code, stdout, stderr := pt2conv(t, args...)
	if code != 0 {
		t.Fatalf("following the hint (%s %s): exit %d\n%s%s", hint[1], hint[2], code, stdout, stderr)
	}
	if strings.Contains(stderr, "--optimizer-key") {
		t.Errorf("the hint is repeated after it was followed:\n%s", stderr)
	}
	for _, moment := range []string{"exp_avg", "exp_avg_sq"} {
		if n := strings.Count(stdout, "optimizer_states/0/state/"); n != 6 || !strings.Contains(stdout, "/"+moment+" ") {
			t.Errorf("want Adam's %s of the 3 converted weights reshaped (6 state tensors, %d seen):\n%s", moment, n, stdout)
		}
	}
	for _, tr := range torchtest.All(t) {
		orig := tr.Share(t, in)
		if out, err := tr.Output(tr.Share(t, filepath.Join(torchtest.RepoRoot(t), "cmd/pt2conv/testdata/lightning_resume.py")), orig, tr.Share(t, resumable)); err != nil {
			t.Errorf("%s: resuming from the converted checkpoint: %v", tr, err)
		} else if strings.TrimSpace(string(out)) != "ok" {
			t.Errorf("%s: %s", tr, out)
		}
		// Without the optimizer's state reshaped, torch cannot take a step: the judge sees it.
		if _, err := tr.Output(tr.Share(t, filepath.Join(torchtest.RepoRoot(t), "cmd/pt2conv/testdata/lightning_resume.py")), orig, tr.Share(t, plain)); err == nil {
			t.Errorf("%s: the judge accepts a checkpoint whose optimizer state keeps the Linear shapes", tr)
		}
	}
}

// TestKeyPathsThroughLists: every flag that takes a key path walks lists as well as dicts.
func TestKeyPathsThroughLists(t *testing.T) {
	dir := t.TempDir()
	in := fixture("lightning_t26.pt")
	tests := []struct {
		name string
		args []string
		want string // in stdout
	}{
		{"optimizer in a list", []string{"--optimizer-key", "optimizer_states/0", "--dry-run"}, "optimizer_states/0/state/"},
		{"scheduler in a list is not an optimizer", []string{"--optimizer-key", "lr_schedulers/0", "--dry-run"}, ""},
		{"index past the end", []string{"--optimizer-key", "optimizer_states/1", "--dry-run"}, ""},
		{"state_dict for safetensors", []string{"-o", filepath.Join(dir, "m.safetensors"), "--state-dict", "state_dict"}, "model.classifier.0.weight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"convert", in}, tt.args...)
			args = append(args, lightningHead...)
			code, stdout, stderr := pt2conv(t, args...)
			if tt.want == "" {
				if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
					t.Fatalf("exit %d, want 2 and one line on stderr:\n%s", code, stderr)
				}
				return
			}
			if code != 0 || !strings.Contains(stdout, tt.want) {
				t.Fatalf("exit %d, want 0 and %q in stdout\n%s%s", code, tt.want, stdout, stderr)
			}
		})
	}
}
