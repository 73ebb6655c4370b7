package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/torchtest"
	"github.com/pt2conv/pt2conv/pickle"
)

// TestHintsWork: every message that says what to do is followed, and what it says works.
func TestHintsWork(t *testing.T) {
	vgg, train := fixture("vgg_tiny.pt"), fixture("train_sgd.pt")
	tests := []struct {
		name string
		// setup makes what the case needs in dir and returns the failing command, the hint it
		// must give, and the command that follows the hint.
		setup func(t *testing.T, dir string) (args []string, hint string, follow []string)
		// code is the exit code before the hint is followed; 0 for a warning.
		code int
	}{
		{"existing output: --force", func(t *testing.T, dir string) ([]string, string, []string) {
			out := filepath.Join(dir, "x.pt")
			os.WriteFile(out, []byte("old"), 0o644)
			args := []string{"convert", vgg, "-o", out, "--layer", "classifier.3"}
			return args, "pass --force to replace it", append(args, "--force")
		}, 2},
		{"existing output: --skip-existing", func(t *testing.T, dir string) ([]string, string, []string) {
			out := filepath.Join(dir, "x.pt")
			os.WriteFile(out, []byte("old"), 0o644)
			args := []string{"convert", vgg, "--out-dir", dir, "--layer", "classifier.3"}
			os.WriteFile(filepath.Join(dir, "vgg_tiny.pt"), []byte("old"), 0o644)
			return args, "or --skip-existing to keep it", append(args, "--skip-existing")
		}, 2},
		{"already converted: --to linear", func(t *testing.T, dir string) ([]string, string, []string) {
			conv := filepath.Join(dir, "conv.pt")
			if code, _, stderr := pt2conv(t, "convert", vgg, "-o", conv, "--layer", "classifier.3"); code != 0 {
				t.Fatal(stderr)
			}
			args := []string{"convert", conv, "-o", filepath.Join(dir, "back.pt"), "--layer", "classifier.3"}
			return args, "is 4-D (16, 16, 1, 1); a Linear weight is 2-D; already converted? --to linear turns it back", append(args, "--to", "linear")
		}, 2},
		{"Linear with --to linear: leave it out", func(t *testing.T, dir string) ([]string, string, []string) {
			args := []string{"convert", vgg, "-o", filepath.Join(dir, "x.pt"), "--layer", "classifier.3"}
			return append(args, "--to", "linear"), "leave out --to linear", args
		}, 2},
		{"optimizer state: --optimizer-key", func(t *testing.T, dir string) ([]string, string, []string) {
			args := []string{"convert", train, "--layer", "classifier.6", "-o"}
			return append(args, filepath.Join(dir, "x.pt")), "pass --optimizer-key optimizer to reshape them too",
				append(args, filepath.Join(dir, "y.pt"), "--optimizer-key", "optimizer")
		}, 0},
		{"auto without evidence: give CxHxW", func(t *testing.T, dir string) ([]string, string, []string) {
			args := []string{"convert", fixture("seed2x2.pt"), "-o", filepath.Join(dir, "x.pt")}
			return append(args, "--layer", "fc=auto"), "give CxHxW or HxW", append(args, "--layer", "fc=1x2x2")
		}, 2},
		{"disagreeing split: verify --assume", func(t *testing.T, dir string) ([]string, string, []string) {
			conv := filepath.Join(dir, "conv.pt")
			if code, _, stderr := pt2conv(t, "convert", vgg, "-o", conv, "--layer", "classifier.0=72x1x1"); code != 0 || !strings.Contains(stderr, "unless --assume") {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			args := []string{"verify", vgg, conv}
			return args, "pass --assume to accept the split", append(args, "--assume")
		}, 1},
		{"safetensors of a training checkpoint: --state-dict", func(t *testing.T, dir string) ([]string, string, []string) {
			args := []string{"convert", train, "-o", filepath.Join(dir, "x.safetensors")}
			return args, "--state-dict KEY: model", append(args, "--state-dict", "model")
		}, 2},
		{"missing directory: mkdir", func(t *testing.T, dir string) ([]string, string, []string) {
			out := filepath.Join(dir, "sub", "x.pt")
			args := []string{"convert", vgg, "-o", out}
			return args, "create it first (mkdir -p " + filepath.Join(dir, "sub") + ")", nil
		}, 2},
		{"-j with -o: --out-dir", func(t *testing.T, dir string) ([]string, string, []string) {
			return []string{"convert", vgg, "-o", filepath.Join(dir, "x.pt"), "-j", "2"}, "use --out-dir DIR",
				[]string{"convert", vgg, "--out-dir", dir, "-j", "2"}
		}, 2},
		{"several inputs with -o: --out-dir", func(t *testing.T, dir string) ([]string, string, []string) {
			ins := copies(t, "vgg_tiny.pt", 2)
			return append([]string{"convert", "-o", filepath.Join(dir, "x.pt")}, ins...), "use --out-dir DIR for several",
				append([]string{"convert", "--out-dir", dir}, ins...)
		}, 2},
		{"--seed without --verify", func(t *testing.T, dir string) ([]string, string, []string) {
			args := []string{"convert", vgg, "-o", filepath.Join(dir, "x.pt"), "--layer", "classifier.3", "--seed", "7"}
			return args, "add --verify or drop --seed", append(args, "--verify")
		}, 2},
		{"a spec given twice", func(t *testing.T, dir string) ([]string, string, []string) {
			args := []string{"convert", vgg, "-o", filepath.Join(dir, "x.pt"), "--layer", "classifier.3"}
			return append(args, "--layer", "classifier.3"), "--layer classifier.3 and --layer classifier.3 give the same spec classifier.3: give it once", args
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args, hint, follow := tt.setup(t, dir)
			code, stdout, stderr := pt2conv(t, args...)
			if code != tt.code || !strings.Contains(stdout+stderr, hint) {
				t.Fatalf("%v: exit %d, stderr %q; want %d and %q", args, code, stderr, tt.code, hint)
			}
			if follow == nil { // the hint is a shell command
				os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
				follow = args
			}
			code, stdout, stderr = pt2conv(t, follow...)
			if code != 0 || strings.Contains(stderr, hint) {
				t.Errorf("following the hint, %v: exit %d\n%s%s", follow, code, stdout, stderr)
			}
		})
	}
}

// TestErrorsSayWhatToDo: the mistakes a new user makes get a message with the way out.
func TestErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	plan := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	badSpec := plan("bad.yaml", "- classifier.0=auto\n- classifier.3\n- classifier.6=7\n")
	badYAML := plan("syntax.yaml", "- classifier.0=auto\n- [classifier.3\n")
	noMatch := plan("nomatch.yaml", "- classifier.3\n- classifier.9\n")
	dup := plan("dup.yaml", "- classifier.6\n- classifier.3\n")
	out := filepath.Join(dir, "out.pt")
	vgg := fixture("vgg_tiny.pt")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"convert", dir, "-o", out}, dir + ": not a PyTorch checkpoint: is a directory"},
		{[]string{"inspect", filepath.Join(dir, "nomatch", "*.pt")}, filepath.Join(dir, "nomatch", "*.pt") + ": no file matches this pattern"},
		{[]string{"convert", filepath.Join(dir, "run[12].pt"), "-o", out}, "no file matches this pattern"},
		{[]string{"inspect", filepath.Join(dir, "absent.pt")}, filepath.Join(dir, "absent.pt") + ": no such file"},
		{[]string{"convert", vgg, "-o", out, "--plan", badSpec}, badSpec + ":3: invalid layer spec \"classifier.6=7\""},
		{[]string{"convert", vgg, "-o", out, "--plan", badYAML}, badYAML + ":2: plan is neither YAML nor JSON"},
		{[]string{"convert", vgg, "-o", out, "--plan", noMatch}, vgg + ": " + noMatch + ":2: classifier.9: no 2-D weight matches"},
		{[]string{"convert", vgg, "-o", out, "--plan", dup, "--layer", "classifier.3"}, "--layer classifier.3 and " + dup + ":2 give the same spec classifier.3: give it once"},
		{[]string{"convert", vgg, "-o", out, "--plan", filepath.Join(dir, "absent.yaml")}, "--plan " + filepath.Join(dir, "absent.yaml") + ": no such file"},
	}
	for _, tt := range tests {
		code, stdout, stderr := pt2conv(t, tt.args...)
		if code != exitBadInput || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line with %q", tt.args, code, stderr, tt.want)
		}
		if stdout != "" {
			t.Errorf("%v: stdout %q", tt.args, stdout)
		}
	}
}

// TestWholeModelSaved: torch.save(model) is refused with the way to save what pt2conv reads,
// and doing that works, in every torch.
func TestWholeModelSaved(t *testing.T) {
	for _, tr := range torchtest.All(t) {
		t.Run(tr.Name, func(t *testing.T) {
			dir, seen := tr.TempDir(t)
			model, weights := filepath.Join(dir, "model.pt"), filepath.Join(dir, "weights.pt")
			tr.Run(t, `import sys, torch
m = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
torch.save(m, sys.argv[1])
torch.save(m.state_dict(), sys.argv[2])`, filepath.Join(seen, "model.pt"), filepath.Join(seen, "weights.pt"))
			code, _, stderr := pt2conv(t, "convert", model, "-o", filepath.Join(dir, "x.pt"), "--layer", "2")
			if code != 2 || !strings.Contains(stderr, "refusing global torch.nn.modules.container.Sequential") ||
				!strings.Contains(stderr, "torch.save(model.state_dict(), PATH)") {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if code, stdout, stderr := pt2conv(t, "convert", weights, "-o", filepath.Join(dir, "x.pt"), "--layer", "2", "--verify"); code != 0 {
				t.Fatalf("the state_dict: exit %d\n%s%s", code, stdout, stderr)
			}
			c, err := pickle.Open(filepath.Join(dir, "x.pt"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, nt := range checkpoint.Tensors(c.Root) {
				if nt.Path.String() == "2.weight" && fmt.Sprint(nt.Tensor.Size) != "[2 4 1 1]" {
					t.Errorf("2.weight is %v", nt.Tensor.Size)
				}
			}
		})
	}
	// globals that are not classes of a model get no such hint
	err := (&pickle.GlobalError{Module: "os", Name: "system", Record: "data.pkl"}).Error()
	if strings.Contains(err, "state_dict") {
		t.Errorf("os.system: %s", err)
	}
}
