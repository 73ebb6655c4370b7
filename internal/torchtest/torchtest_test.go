package torchtest

import (
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestCleanStderr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"Error in cpuinfo: failed to parse processor information from /proc/cpuinfo\n", ""},
		{"[1795732213.788320] [vm:16790:0] sys.c:306  UCX  ERROR failed to get boot id\nTraceback:\n  boom\n",
			"Traceback:\n  boom"},
		{"ValueError: bad\n", "ValueError: bad"},
	}
	for _, tt := range tests {
		if got := CleanStderr(tt.in); got != tt.want {
			t.Errorf("CleanStderr(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIsScriptFile(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"scripts/torchcheck.py", true},
		{"/tmp/x/gen.py", true},
		{"import torch; print(torch.__version__)", false},
		{"import torch\nprint('a.py')", false},
		{"print(1)", false},
	}
	for _, tt := range tests {
		if got := isScriptFile(tt.in); got != tt.want {
			t.Errorf("isScriptFile(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// seedCheck computes the seed example both ways, from literal weights and from the fixture.
const seedCheck = `
import json, sys, torch
import torch.nn.functional as F
W = torch.tensor([[1.1, 1.2, 1.3, 1.4], [1.5, 1.6, 1.7, 1.8]])
b = torch.tensor([1.9, 2.0])
x = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
sd = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
print(json.dumps({
    "linear": F.relu(F.linear(x.reshape(-1), W, b)).tolist(),
    "conv": F.relu(F.conv2d(x[None], W.view(2, 1, 2, 2), b)).reshape(-1).tolist(),
    "fixture": F.relu(F.conv2d(x[None], sd["fc.weight"].view(2, 1, 2, 2), sd["fc.bias"])).reshape(-1).tolist(),
}))
`

func TestSeedExample(t *testing.T) {
	for _, tr := range All(t) {
		t.Run(tr.Name, func(t *testing.T) {
			t.Parallel()
			out := tr.Run(t, seedCheck, tr.Share(t, Fixture(t, "seed2x2.pt")))
			var got map[string][]float64
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			want := []float64{14.9, 19.0}
			for _, name := range []string{"linear", "conv", "fixture"} {
				if len(got[name]) != 2 || math.Abs(got[name][0]-want[0]) > 1e-5 ||
					math.Abs(got[name][1]-want[1]) > 1e-5 {
					t.Errorf("%s: %s = %v, want %v", tr, name, got[name], want)
				}
			}
		})
	}
}

func TestRunReportsFailure(t *testing.T) {
	for _, tr := range All(t) {
		_, err := tr.Output("import sys; sys.exit('no such layer: fc9')")
		var run *RunError
		if !errors.As(err, &run) {
			t.Fatalf("%s: err = %v, want *RunError", tr, err)
		}
		if run.Stderr != "no such layer: fc9" {
			t.Errorf("%s: stderr = %q, want only the script's message", tr, run.Stderr)
		}
	}
}

func TestSameFixture(t *testing.T) {
	for _, tr := range All(t) {
		t.Run(tr.Name, func(t *testing.T) {
			t.Parallel()
			res, err := tr.Same(t, Fixture(t, "train_sgd.pt"), Fixture(t, "train_sgd.pt"))
			if err != nil {
				t.Fatal(err)
			}
			if res.Tensors != 34 || res.WeightsOnly == (tr.Name == "torch113") {
				t.Errorf("%s: %+v, want 34 tensors, weights_only only on torch 2", tr, res)
			}
		})
	}
}

// mutations re-saves modified copies of a checkpoint and runs torchcheck on each, in one
// interpreter so that the test stays fast.
const mutations = `
import collections, io, json, sys, contextlib
sys.path.insert(0, sys.argv[1])
import torch, torchcheck
src, out = sys.argv[2], sys.argv[3]

def tied(d):
    d["decoder.weight"] = d["decoder.weight"].clone()
def value(d):
    d["decoder.bias"] = d["decoder.bias"] + 1
def order(d):
    d.move_to_end("embed.weight")
def metadata(d):
    d._metadata = collections.OrderedDict([("", {"version": 1})])
def stride(d):
    d["proj_cols"] = d["proj_cols"].contiguous()
def dtype(d):
    d["decoder.bias"] = d["decoder.bias"].double()
def offset(d):
    d["proj_row.weight"] = d["proj_row.weight"].clone()

def same(a, b):
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            torchcheck.cmd_same(a, b)
        except SystemExit as e:
            code = e.code
    return [code, err.getvalue()]

# The legacy file holds what the zip file holds, sharing included.
result = {"legacy": same(src, sys.argv[4]), "conv": same(sys.argv[5], sys.argv[6])}
for f in (tied, value, order, metadata, stride, dtype, offset):
    d = torch.load(src, weights_only=False)
    f(d)
    path = "%s/%s.pt" % (out, f.__name__)
    torch.save(d, path)
    result[f.__name__] = same(src, path)
# Sharing the copy has and the original lacks counts as well.
result["retie"] = same(out + "/tied.pt", src)

# Pairs that only a bit-for-bit judge tells apart.
def variant(name, f):
    d = torch.load(src, weights_only=False)
    with torch.no_grad():
        f(d)
    path = "%s/%s.pt" % (out, name)
    torch.save(d, path)
    return path
def set_bits(bits):
    return lambda d: d["decoder.bias"].view(torch.int32).__setitem__(0, bits)
def extra(n, hidden):
    def f(d):
        x = torch.arange(float(n))
        x[7] = hidden
        d["extra"] = x[:5]
    return f
def plain(v):
    return lambda d: d.__setitem__("scale", v)
pairs = {
    "negzero": (set_bits(0), set_bits(-2**31)),
    "nanpayload": (set_bits(0x7fc00000), set_bits(0x7fc00001)),
    "outside": (extra(10, 7.0), extra(10, 99.0)),
    "storagesize": (extra(10, 7.0), extra(12, 7.0)),
    "floatzero": (plain(0.0), plain(-0.0)),
}
for name, (fa, fb) in pairs.items():
    result[name] = same(variant(name + "_a", fa), variant(name + "_b", fb))
result["samebits"] = same(variant("same_a", set_bits(0x7fc00001)), variant("same_b", set_bits(0x7fc00001)))
print(json.dumps(result))
`

func TestSameMutations(t *testing.T) {
	want := map[string]string{
		"tied":     "decoder.weight: shares its storage with embed.weight in the original but with no other tensor",
		"retie":    "decoder.weight: shares its storage with no other tensor in the original but with embed.weight in the copy",
		"value":    "decoder.bias: tensor values differ",
		"order":    "<root>: keys",
		"metadata": "_metadata: type NoneType vs OrderedDict",
		"legacy":   "",
		"conv":     "head.weight: tensor float32[5, 36] stride=[36, 1] offset=0 vs float32[5, 4, 3, 3]",
		"stride":   "proj_cols: tensor float32[4, 3] stride=[6, 1] offset=2 vs float32[4, 3] stride=[3, 1] offset=0",
		"dtype":    "decoder.bias: tensor float32[6]",
		"offset":   "proj_row.weight: tensor float32[2, 6] stride=[6, 1] offset=6 vs float32[2, 6] stride=[6, 1] offset=0",
		// Only bits tell these apart.
		"negzero":     "decoder.bias: tensor values differ",
		"nanpayload":  "decoder.bias: tensor values differ",
		"outside":     "extra: storage bytes outside the tensor's view differ",
		"storagesize": "extra: storage of 40 bytes vs 48",
		"floatzero":   "scale: value 0.0 vs -0.0 (bits differ)",
		"samebits":    "",
	}
	for _, tr := range All(t) {
		t.Run(tr.Name, func(t *testing.T) {
			t.Parallel()
			host, inside := tr.TempDir(t)
			checker := tr.Share(t, filepath.Join(RepoRoot(t), CheckScript))
			out := tr.Run(t, mutations, filepath.Dir(checker), tr.Share(t, Fixture(t, "shared.pt")), inside,
				tr.Share(t, Fixture(t, "shared_legacy.pt")),
				tr.Share(t, Fixture(t, "planted_orig.pt")), tr.Share(t, Fixture(t, "planted_good.pt")))
			var got map[string][2]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			for name, msg := range want {
				code, stderr := got[name][0], got[name][1].(string)
				wantCode := 1.0
				if msg == "" {
					wantCode = 0
				}
				if code != wantCode || !strings.Contains(stderr, msg) {
					t.Errorf("%s: %s: exit %v, stderr %q; want exit %v and %q", tr, name, code, stderr, wantCode, msg)
				}
			}
			// The CLI path: a re-saved modified copy fails with exit status 1.
			_, err := tr.Same(t, Fixture(t, "shared.pt"), filepath.Join(host, "value.pt"))
			if !errors.Is(err, ErrDiffer) || !strings.Contains(err.Error(), "decoder.bias") {
				t.Errorf("%s: same on a modified copy: err = %v, want a difference at decoder.bias", tr, err)
			}
		})
	}
}
