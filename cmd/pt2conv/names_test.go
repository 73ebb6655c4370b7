package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// For every fixture and every Linear candidate inspect lists, the spec in the command it
// suggests, pasted into a shell, converts that layer and no other weight; so does the spec in
// --json, for the weights set apart as probably not Linears too.
func TestSuggestedSpecsSelectExactlyTheirLayer(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "fixtures", "*.pt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
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
		var linears []string
		for _, c := range rep.Candidates {
			if c.NotLinear == "" {
				linears = append(linears, c.Spec)
			}
		}
		_, table, _ := pt2conv(t, "inspect", f)
		var pasted []string
		if _, cmd, ok := strings.Cut(table, "To convert them:\n"); ok {
			words := shellWords(t, cmd)
			for i := 1; i < len(words); i++ {
				if words[i-1] == "--layer" {
					pasted = append(pasted, words[i])
				}
			}
		}
		if fmt.Sprint(pasted) != fmt.Sprint(linears) {
			t.Errorf("%s: the suggested command pastes as --layer %q, JSON's Linear candidates are %q", f, pasted, linears)
		}
		for _, cand := range rep.Candidates {
			candidates++
			out := filepath.Join(t.TempDir(), "out.pt")
			code, stdout, stderr := pt2conv(t, "convert", f, "-o", out, "--dry-run", "--json", "--layer", cand.Spec)
			if code != 0 {
				t.Errorf("%s: --layer %s: exit %d: %s", f, cand.Spec, code, stderr)
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
				t.Errorf("%s: --layer %s converts %q, want only %q", f, cand.Spec, weights, cand.Weight)
			}
		}
	}
	t.Logf("%d candidates in %d fixtures, each converted alone by its suggested spec", candidates, len(files))
}

// shellWords is what a POSIX shell makes of a pasted command line (continuation lines
// included): its words, one per argument.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	out, err := exec.Command("sh", "-c", "set -- "+line+"\nprintf '%s\\0' \"$@\"").Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}
