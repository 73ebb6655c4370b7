package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// For every fixture and every Linear candidate inspect lists, the spec in its table, pasted
// into a shell, converts that layer and no other weight; so does the spec in --json.
func TestSuggestedSpecsSelectExactlyTheirLayer(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "fixtures", "*.pt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	layerArg := regexp.MustCompile(`--layer (.*?)  +`)
	candidates := 0
	for _, f := range files {
		code, stdout, stderr := pt2conv(t, "inspect", f, "--json")
		if code != 0 {
			t.Fatalf("inspect %s: exit %d: %s", f, code, stderr)
		}
		var rep inspectReport
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatal(err)
		}
		_, table, _ := pt2conv(t, "inspect", f)
		var pasted []string
		for _, m := range layerArg.FindAllStringSubmatch(table, -1) {
			pasted = append(pasted, shellWord(t, m[1]))
		}
		if len(pasted) != len(rep.Candidates) {
			t.Fatalf("%s: %d specs in the table, %d candidates in JSON", f, len(pasted), len(rep.Candidates))
		}
		for i, cand := range rep.Candidates {
			candidates++
			if pasted[i] != cand.Spec {
				t.Errorf("%s: the table's spec %q pastes as %q, JSON says %q", f, table, pasted[i], cand.Spec)
			}
			out := filepath.Join(t.TempDir(), "out.pt")
			code, stdout, stderr := pt2conv(t, "convert", f, "-o", out, "--dry-run", "--json", "--layer", pasted[i])
			if code != 0 {
				t.Errorf("%s: --layer %s: exit %d: %s", f, pasted[i], code, stderr)
				continue
			}
			var doc struct {
				Files []struct {
					Changes []struct {
						Path      string `json:"path"`
						Optimizer bool   `json:"optimizer"`
					} `json:"changes"`
				} `json:"files"`
			}
			if err := json.Unmarshal([]byte(stdout), &doc); err != nil || len(doc.Files) != 1 {
				t.Fatal(err, stdout)
			}
			res := doc.Files[0]
			var weights []string
			for _, ch := range res.Changes {
				if !ch.Optimizer {
					weights = append(weights, ch.Path)
				}
			}
			if len(weights) != 1 || weights[0] != cand.Weight {
				t.Errorf("%s: --layer %s converts %q, want only %q", f, pasted[i], weights, cand.Weight)
			}
		}
	}
	t.Logf("%d candidates in %d fixtures, each converted alone by its suggested spec", candidates, len(files))
}

// shellWord is what a POSIX shell makes of one pasted word.
func shellWord(t *testing.T, word string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", "printf '%s' "+word).Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	return string(out)
}
