package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/pickle"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const fixtures = "../../fixtures"

func fixture(name string) string { return filepath.Join(fixtures, name) }

// pt2conv runs the command line in-process and returns its exit code and output.
func pt2conv(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestInspectGolden(t *testing.T) {
	for _, name := range []string{"vgg_tiny.pt", "train_sgd.pt", "nobias.pt", "dtypes.pt", "lightning.pt"} {
		t.Run(name, func(t *testing.T) {
			code, out, errs := pt2conv(t, "inspect", fixture(name))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			golden(t, "inspect_"+strings.TrimSuffix(name, ".pt")+".txt", out)
		})
	}
}

func TestInspectJSON(t *testing.T) {
	code, out, errs := pt2conv(t, "inspect", "--json", fixture("vgg_tiny.pt"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep inspectReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(rep.Tensors) != 10 || rep.Format != "zip" || rep.Storages != 10 {
		t.Errorf("tensors %d, format %s, storages %d", len(rep.Tensors), rep.Format, rep.Storages)
	}
	want := []string{"classifier.0=8x3x3", "classifier.3", "classifier.6"}
	var got []string
	for _, c := range rep.Candidates {
		got = append(got, c.Spec)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("candidate specs %v, want %v", got, want)
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	notCkpt := filepath.Join(dir, "notes.pt")
	os.WriteFile(notCkpt, []byte("just some text\n"), 0o644)
	out := filepath.Join(dir, "out.pt")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no args", []string{"convert"}, 2, "convert needs an input"},
		{"unknown flag", []string{"convert", "--nope"}, 2, "unknown flag"},
		{"no output", []string{"convert", fixture("mlp.pt")}, 2, "no output"},
		{"missing file", []string{"inspect", filepath.Join(dir, "absent.pt")}, 2, "no such file"},
		{"not a checkpoint", []string{"inspect", notCkpt}, 2, "not a PyTorch checkpoint"},
		{"bad spec", []string{"convert", fixture("mlp.pt"), "-o", out, "--layer", "fc1=3x"}, 2, "--layer fc1=3x"},
		{"no match", []string{"convert", fixture("vgg_tiny.pt"), "-o", out, "--layer", "fc9"}, 2, "fc9"},
		{"wrong size", []string{"convert", fixture("vgg_tiny.pt"), "-o", out, "--layer", "classifier.0=8x3x2"}, 2, "72"},
		{"output is input", []string{"convert", fixture("mlp.pt"), "-o", fixture("mlp.pt"), "--force"}, 2, "mlp.pt"},
		{"planted bug", []string{"verify", fixture("planted_orig.pt"), fixture("planted_bug.pt")}, 1, "verification failed"},
		{"planted good", []string{"verify", fixture("planted_orig.pt"), fixture("planted_good.pt")}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := pt2conv(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, errs)
			}
			if !strings.Contains(errs, tt.stderr) {
				t.Errorf("stderr %q does not mention %q", errs, tt.stderr)
			}
			if code == 2 && strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Errorf("want one line on stderr, got:\n%s", errs)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a failed command left %s", out)
			}
		})
	}
}

func TestConvertRefusesExistingOutput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.pt")
	os.WriteFile(out, []byte("keep me"), 0o644)
	code, _, errs := pt2conv(t, "convert", fixture("mlp.pt"), "-o", out)
	if code != 2 || !strings.Contains(errs, "--force") {
		t.Fatalf("exit %d, stderr %q: want 2 and a hint about --force", code, errs)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep me" {
		t.Fatal("existing output was changed")
	}
	if code, _, errs = pt2conv(t, "convert", fixture("mlp.pt"), "-o", out, "--force"); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, errs)
	}
}

func TestConvertDryRunJSON(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.pt")
	code, stdout, errs := pt2conv(t, "convert", fixture("vgg_tiny.pt"), "-o", out, "--dry-run", "--json",
		"--layer", "classifier.0=auto", "--layer", "classifier.3", "--layer", "classifier.6")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var doc convertDocument
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || len(doc.Files) != 1 {
		t.Fatalf("not JSON with one file: %v\n%s", err, stdout)
	}
	res := doc.Files[0]
	if res.Status != statusPlanned || res.Output != nil {
		t.Errorf("status %q, output %v: want planned and no output", res.Status, res.Output)
	}
	if !res.DryRun || len(res.Changes) != 3 {
		t.Fatalf("dry run %v with %d changes, want 3", res.DryRun, len(res.Changes))
	}
	if got := fmt.Sprint(res.Changes[0].NewSize); got != "[16 8 3 3]" {
		t.Errorf("classifier.0 becomes %s, want [16 8 3 3]", got)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("--dry-run wrote the output")
	}
}

func TestConvertVerifySeed(t *testing.T) {
	out := filepath.Join(t.TempDir(), "seed.pt")
	code, stdout, errs := pt2conv(t, "convert", fixture("seed2x2.pt"), "-o", out, "--layer", "fc=1x2x2", "--verify")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, stdout)
	}
	for _, want := range []string{"fc.weight", "(2, 1, 2, 2)", "single", "sliding", "pass", "all"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	c, err := pickle.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, nt := range checkpoint.Tensors(c.Root) {
		if nt.Path.String() == "fc.weight" && fmt.Sprint(nt.Tensor.Size) != "[2 1 2 2]" {
			t.Errorf("fc.weight has size %v", nt.Tensor.Size)
		}
	}
}

// TestBatch converts 50 copies of a fixture with two workers; under -race it also checks
// that workers share nothing unsafely.
func TestBatch(t *testing.T) {
	in, outDir := t.TempDir(), t.TempDir()
	src, err := os.ReadFile(fixture("vgg_tiny.pt"))
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"convert", "--out-dir", outDir, "-j", "2", "--json", "--verify",
		"--layer", "classifier.0=auto", "--layer", "classifier.3", "--layer", "classifier.6"}
	for i := 0; i < 50; i++ {
		p := filepath.Join(in, fmt.Sprintf("m%02d.pt", i))
		if err := os.WriteFile(p, src, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	broken := filepath.Join(in, "broken.pt")
	os.WriteFile(broken, src[:len(src)/2], 0o644)
	args = append(args, broken)

	code, stdout, errs := pt2conv(t, args...)
	if code != 2 {
		t.Fatalf("exit %d, want 2 (one broken input); stderr: %s", code, errs)
	}
	var rep convertDocument
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if rep.Converted != 50 || rep.Failed != 1 {
		t.Fatalf("converted %d, failed %d; want 50 and 1", rep.Converted, rep.Failed)
	}
	if last := rep.Files[50]; last.Input != broken || last.Error == nil || last.Status != statusFailed || last.Output != nil {
		t.Errorf("the broken file's result: %+v", last)
	}
	entries, _ := os.ReadDir(outDir)
	if len(entries) != 50 {
		t.Errorf("%d files in the output dir, want 50", len(entries))
	}
}
