package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/internal/torchtest"
)

// TestReadmeMainCommand runs the conversion the README opens with, exactly as written there,
// and has every torch load the result: the converted weights must come back in conv form.
func TestReadmeMainCommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The first command of the first code block, joined across its continuation lines.
	block := regexp.MustCompile("(?s)```sh\n(.*?)```").FindSubmatch(readme)
	if block == nil {
		t.Fatal("README has no sh code block")
	}
	var cmdline string
	for _, line := range strings.Split(strings.ReplaceAll(string(block[1]), "\\\n", ""), "\n") {
		if strings.HasPrefix(line, "go run ./cmd/pt2conv ") {
			cmdline = strings.TrimPrefix(line, "go run ./cmd/pt2conv ")
			break
		}
	}
	args := strings.Fields(cmdline)
	if len(args) < 4 || args[0] != "convert" {
		t.Fatalf("README's main command is %q", cmdline)
	}
	out := filepath.Join(t.TempDir(), "readme_out.pt")
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "fixtures/"):
			args[i] = filepath.Join("../..", a)
		case i > 0 && args[i-1] == "-o":
			args[i] = out
		}
	}
	code, stdout, stderr := pt2conv(t, args...)
	if code != 0 {
		t.Fatalf("pt2conv %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	if strings.Contains(cmdline, "--verify") && !strings.Contains(stdout, "checks passed") {
		t.Errorf("--verify printed no passing table:\n%s", stdout)
	}
	for _, tr := range torchtest.All(t) {
		d := tr.Describe(t, out)
		shapes := map[string]string{}
		for _, ts := range d.Tensors {
			shapes[ts.Key] = fmt.Sprint(ts.Shape)
		}
		if !d.WeightsOnly {
			t.Errorf("%s: the converted file does not load with weights_only=True", tr)
		}
		for key, want := range map[string]string{
			"classifier.0.weight": "[16 8 3 3]", "classifier.3.weight": "[16 16 1 1]", "classifier.6.weight": "[5 16 1 1]",
		} {
			if shapes[key] != want {
				t.Errorf("%s: %s has shape %s, want %s", tr, key, shapes[key], want)
			}
		}
	}
}
