package main

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/internal/torchtest"
)

// TestConvertNextToOtherTensors converts Linears of torch 2's dtypes (float8, uint16), Linears
// at the root of dicts, frozen parameters, a Linear full of NaN payloads, a Linear with Python
// attributes and Linears in torch 0.3's form, and Linears that sit next to quantized, sparse,
// meta and nested tensors, and has every torch that can load the original
// check the result (testdata/converted_formats.py): the converted weights keep their bits,
// everything else is exactly the original.
func TestConvertNextToOtherTensors(t *testing.T) {
	torches := torchtest.All(t)
	cases := []struct {
		in     string
		specs  []string
		shapes map[string][]int64
	}{
		{"new_dtypes_t26.pt", []string{"fc8=2x2x2", "fc5", "fcu16=2x4"}, map[string][]int64{"fc8.weight": {2, 2, 2, 2}, "fc5.weight": {2, 8, 1, 1}, "fcu16.weight": {2, 1, 2, 4}}},
		{"quantized.pt", []string{"fc=6x1x1"}, map[string][]int64{"fc.weight": {4, 6, 1, 1}}},
		{"quantized_t26.pt", []string{"fc=3x2x1"}, map[string][]int64{"fc.weight": {4, 3, 2, 1}}},
		{"sparse.pt", []string{"fc"}, map[string][]int64{"fc.weight": {4, 6, 1, 1}}},
		{"sparse_t26.pt", []string{"fc=2x3"}, map[string][]int64{"fc.weight": {4, 1, 2, 3}}},
		{"special_floats.pt", []string{"fc=1x2x2"}, map[string][]int64{"fc.weight": {2, 1, 2, 2}}},
		{"special_floats_t26.pt", []string{"fc"}, map[string][]int64{"fc.weight": {2, 4, 1, 1}}},
		{"params_t26.pt", []string{"fc=1x2x2"}, map[string][]int64{"fc.weight": {3, 1, 2, 2}}},
		{"root_linear.pt", []string{"."}, map[string][]int64{"weight": {3, 12, 1, 1}}},
		{"root_linear_t26.pt", []string{"/.=3x2x2"}, map[string][]int64{"weight": {3, 3, 2, 2}}},
		{"nested_modules_t26.pt", []string{"head/.=2x2x2", "tail/fc/.", `odd keys/a\*b`, "ema/0=5x2"},
			map[string][]int64{"head/weight": {2, 2, 2, 2}, "tail/fc/weight": {4, 6, 1, 1}, "odd keys/a*b.weight": {2, 3, 1, 1}, "ema/0.weight": {8, 1, 5, 2}}},
		{"mlp_proto1_legacy.pt", []string{"0=5x2"}, map[string][]int64{"0.weight": {8, 1, 5, 2}}},
		// A Linear whose weight and bias carry Python attributes, next to a quantized, a
		// float8, a sparse and a meta tensor with attributes of their own.
		{"tensor_attrs_t26.pt", []string{"fc=2x2x2"}, map[string][]int64{"fc.weight": {3, 2, 2, 2}}},
		{"meta.pt", []string{"fc"}, map[string][]int64{"fc.weight": {4, 6, 1, 1}}},
		{"meta_t26.pt", []string{"fc=3x2x1"}, map[string][]int64{"fc.weight": {4, 3, 2, 1}}},
		{"nested_t26.pt", []string{"fc=3x2x1"}, map[string][]int64{"fc.weight": {4, 3, 2, 1}}},
		{"old_form.pt", []string{"fc"}, map[string][]int64{"fc.weight": {4, 6, 1, 1}}},
		{"old_form_legacy_t26.pt", []string{"fc=2x3"}, map[string][]int64{"fc.weight": {4, 1, 2, 3}}},
	}
	dir := t.TempDir()
	var py []judgeCase
	for i, c := range cases {
		out := filepath.Join(dir, fmt.Sprintf("conv%d.pt", i))
		args := []string{"convert", fixture(c.in), "-o", out}
		for _, s := range c.specs {
			args = append(args, "--layer", s)
		}
		if code, stdout, stderr := pt2conv(t, args...); code != 0 {
			t.Fatalf("pt2conv %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
		}
		in, _ := filepath.Abs(fixture(c.in))
		py = append(py, judgeCase{Orig: in, Conv: out, Shapes: c.shapes})
	}
	checker := filepath.Join(torchtest.RepoRoot(t), torchtest.CheckScript)
	for _, tr := range torches {
		out, err := judge(t, tr, "cmd/pt2conv/testdata/converted_formats.py", py, path.Dir(tr.Share(t, checker)))
		if err != nil {
			t.Errorf("%s: %v", tr, err)
			continue
		}
		t.Logf("%s: %s", tr, strings.TrimSpace(string(out)))
		if !strings.HasPrefix(tr.Version, "1.") && !strings.HasPrefix(string(out), fmt.Sprintf("ok %d skipped 0", len(cases))) {
			t.Errorf("%s judged only part of the cases: %s", tr, out)
		}
	}
}
