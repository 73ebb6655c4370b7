package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/internal/torchtest"
)

// distilLinears selects every nn.Linear of the DistilBERT-shaped fixture, as an ANE-style
// conversion to 1x1 convolutions does; the embeddings stay as they are.
var distilLinears = []string{
	"distilbert.transformer.layer.*.attention.*_lin",
	"distilbert.transformer.layer.*.ffn.lin*",
	"vocab_transform", "vocab_projector",
}

// distilShapes are the 1x1 shapes of distilLinears' weights.
func distilShapes() map[string][]int64 {
	shapes := map[string][]int64{
		"vocab_transform.weight": {16, 16, 1, 1},
		"vocab_projector.weight": {40, 16, 1, 1},
	}
	for _, l := range []string{"0", "1"} {
		p := "distilbert.transformer.layer." + l + "."
		for _, n := range []string{"q_lin", "k_lin", "v_lin", "out_lin"} {
			shapes[p+"attention."+n+".weight"] = []int64{16, 16, 1, 1}
		}
		shapes[p+"ffn.lin1.weight"] = []int64{32, 16, 1, 1}
		shapes[p+"ffn.lin2.weight"] = []int64{16, 32, 1, 1}
	}
	return shapes
}

func layers(specs ...string) []string {
	var args []string
	for _, s := range specs {
		args = append(args, "--layer", s)
	}
	return args
}

// formatCase is one conversion and what its output must hold.
type formatCase struct {
	in, out   string   // names in the shared directory
	args      []string // beyond convert IN
	shapes    map[string][]int64
	stateDict string
}

func formatCases() []formatCase {
	vggSpecs := layers("classifier.0=8x3x3", "classifier.3", "classifier.6")
	vggShapes := map[string][]int64{"classifier.0.weight": {16, 8, 3, 3}, "classifier.3.weight": {16, 16, 1, 1}, "classifier.6.weight": {5, 16, 1, 1}}
	distil := append(layers(distilLinears...), "--verify")
	return []formatCase{
		// safetensors -> safetensors: identity, then Linear -> Conv2d (header-only changes)
		{in: "dtypes.safetensors", out: "dtypes_id.safetensors"},
		{in: "unsigned.safetensors", out: "unsigned_id.safetensors"},
		{in: "vgg_tiny.safetensors", out: "vgg_conv.safetensors", args: append(vggSpecs, "--verify"), shapes: vggShapes},
		{in: "distilbert.safetensors", out: "distil_ane.safetensors", args: distil, shapes: distilShapes()},
		// safetensors -> .pt, from the headers other writers produce too
		{in: "distilbert.safetensors", out: "distil.pt"},
		{in: "distilbert.safetensors", out: "distil_ane.pt", args: distil, shapes: distilShapes()},
		{in: "vgg_tiny_unpadded.safetensors", out: "vgg_unpadded.pt", args: vggSpecs, shapes: vggShapes},
		{in: "vgg_tiny_reordered.safetensors", out: "vgg_reordered.pth", args: vggSpecs, shapes: vggShapes},
		{in: "vgg_tiny_nullmeta.safetensors", out: "vgg_nullmeta.bin", args: vggSpecs, shapes: vggShapes},
		// .pt -> safetensors: views are gathered, aliases written once per name
		{in: "vgg_tiny.pt", out: "vgg_tiny_pt.safetensors", args: append(layers("classifier.0=auto", "classifier.3", "classifier.6"), "--verify"), shapes: vggShapes},
		{in: "dtypes.pt", out: "dtypes_pt.safetensors"},
		{in: "strided.pt", out: "strided.safetensors", args: append(layers("fc1=3x2x2", "fc2"), "--verify"), shapes: map[string][]int64{"fc1.weight": {6, 3, 2, 2}, "fc2.weight": {4, 6, 1, 1}}},
		{in: "shared.pt", out: "shared.safetensors"},
		{in: "train_sgd.pt", out: "train.safetensors", args: []string{"--state-dict", "model"}, stateDict: "model"},
		{in: "strided.pt", out: "strided_fmt.bin", args: []string{"--format", "safetensors"}},
		// sharded sets: Linear -> Conv2d across shards, .bin shards to safetensors shards and back
		{in: "model.safetensors.index.json", out: "ane/model.safetensors.index.json", args: append(distil, "-j", "2"), shapes: distilShapes()},
		{in: "pytorch_model.bin.index.json", out: "st/model.safetensors.index.json", args: []string{"--format", "safetensors"}},
		{in: "model.safetensors.index.json", out: "bin/pytorch_model.bin.index.json", args: layers("vocab_projector"), shapes: map[string][]int64{"vocab_projector.weight": {40, 16, 1, 1}}},
	}
}

// TestSafetensorsInterop converts every safetensors file and sharded set of the fixtures
// (identity, format change, Linear -> Conv2d 1x1 and CxHxW) and .pt fixtures to
// safetensors, then has the safetensors library (load_file and safe_open, under torch 2.x)
// and both torches (for .pt outputs) compare every tensor with its source, bit for bit.
func TestSafetensorsInterop(t *testing.T) {
	for _, tr := range torchtest.All(t) {
		t.Run(tr.Name, func(t *testing.T) {
			host, inside := tr.TempDir(t)
			torchtest.CopyDir(t, host, fixture("safetensors"))
			for _, f := range []string{"vgg_tiny.pt", "dtypes.pt", "strided.pt", "shared.pt", "train_sgd.pt"} {
				b := mustRead(t, fixture(f))
				if err := os.WriteFile(filepath.Join(host, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			type pyCase struct {
				Orig      string             `json:"orig"`
				Conv      string             `json:"conv"`
				Shapes    map[string][]int64 `json:"shapes"`
				StateDict string             `json:"state_dict,omitempty"`
			}
			var py []pyCase
			for _, c := range formatCases() {
				out := filepath.Join(host, c.out)
				args := append([]string{"convert", filepath.Join(host, c.in)}, c.args...)
				if dir, name := filepath.Split(c.out); dir != "" && !strings.HasPrefix(name, "pytorch") {
					args = append(args, "--out-dir", filepath.Join(host, dir))
					if err := os.MkdirAll(filepath.Join(host, dir), 0o755); err != nil {
						t.Fatal(err)
					}
				} else {
					args = append(args, "-o", out)
				}
				code, stdout, stderr := pt2conv(t, args...)
				if code != 0 {
					t.Fatalf("pt2conv %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
				}
				if c.in == "shared.pt" && !strings.Contains(stderr, "share one storage") {
					t.Errorf("shared.pt: no warning about the aliases: %q", stderr)
				}
				py = append(py, pyCase{Orig: inside + "/" + c.in, Conv: inside + "/" + c.out, Shapes: c.shapes, StateDict: c.stateDict})
			}
			spec := filepath.Join(host, "cases.json")
			b, _ := json.Marshal(py)
			if err := os.WriteFile(spec, b, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := tr.Output(tr.Share(t, filepath.Join(torchtest.RepoRoot(t), "cmd/pt2conv/testdata/safetensors_check.py")), inside+"/cases.json")
			if err != nil {
				t.Fatalf("%s: %v", tr, err)
			}
			t.Logf("%s: %s", tr, strings.TrimSpace(string(out)))
		})
	}
}

// TestSafetensorsCLI covers what needs no torch: verify across formats, the state_dict
// choice, and refusals.
func TestSafetensorsCLI(t *testing.T) {
	dir := t.TempDir()
	conv := filepath.Join(dir, "vgg_conv.pt")
	code, _, stderr := pt2conv(t, append([]string{"convert", fixture("safetensors/vgg_tiny.safetensors"), "-o", conv}, layers("classifier.0=8x3x3", "classifier.3")...)...)
	if code != 0 {
		t.Fatal(stderr)
	}
	if code, stdout, stderr := pt2conv(t, "verify", fixture("safetensors/vgg_tiny.safetensors"), conv); code != 0 || !strings.Contains(stdout, "proven exactly across formats") || !strings.Contains(stdout, "all 8 checks passed") {
		t.Errorf("verify across formats: exit %d\n%s%s", code, stdout, stderr)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"training checkpoint without --state-dict", []string{"convert", fixture("train_sgd.pt"), "-o", filepath.Join(dir, "t.safetensors")}, "--state-dict KEY: model"},
		{"unknown --state-dict", []string{"convert", fixture("train_sgd.pt"), "-o", filepath.Join(dir, "t.safetensors"), "--state-dict", "nope"}, `no key "nope"`},
		{"bad --format", []string{"convert", fixture("vgg_tiny.pt"), "-o", filepath.Join(dir, "t.x"), "--format", "onnx"}, "use pt or safetensors"},
		{"index to a file", []string{"convert", fixture("safetensors/model.safetensors.index.json"), "-o", filepath.Join(dir, "one.safetensors")}, "sharded checkpoint"},
		{"shards over their input", []string{"convert", fixture("safetensors/model.safetensors.index.json"), "--out-dir", fixture("safetensors"), "--force"}, "the output is the input file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := pt2conv(t, tt.args...)
			if code != exitBadInput || !strings.Contains(stdout+stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and one line with %q", code, stdout, stderr, tt.want)
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries in the output directory, want only the one converted file", len(entries))
	}
}
