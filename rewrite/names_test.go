package rewrite

import (
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

func TestLayerNames(t *testing.T) {
	type place struct {
		dict   checkpoint.Path
		module string
	}
	places := []place{
		{nil, ""},
		{nil, "fc"},
		{checkpoint.Path{"model"}, "fc"},
		{checkpoint.Path{"ema"}, "fc"},
		{checkpoint.Path{"head"}, ""},
		{checkpoint.Path{"tail", "fc"}, ""},
		{checkpoint.Path{"odd keys"}, "a*b"},
		{checkpoint.Path{"odd keys"}, "p=q"},
		{checkpoint.Path{"odd keys"}, "café.fc"},
		{checkpoint.Path{"x/y"}, "back\\slash"},
		{checkpoint.Path{" lead"}, "trail "},
		{checkpoint.Path{"bel\a"}, "esc\x1b[31m"},
		{checkpoint.Path{"nul\x00"}, "."},
		{checkpoint.Path{"bad\xff"}, "fc"},
		{checkpoint.Path{"."}, ""},
	}
	tests := []struct {
		spec string
		want []int // indices into places
	}{
		{"fc", []int{1, 2, 3, 13}},
		{"/fc", []int{1}},
		{"model/fc", []int{2}},
		{"*/fc", []int{2, 3, 13}},
		{".", []int{0, 4, 5, 14}},
		{"/.", []int{0}},
		{"head/.", []int{4}},
		{"tail/fc/.", []int{5}},
		{`odd keys/a\*b`, []int{6}},
		{`odd keys/a*b`, []int{6}},
		{`odd keys/p\=q=2x2`, []int{7}},
		{"odd keys/café.fc", []int{8}},
		{`x\/y/back\\slash`, []int{9}},
		{`\ lead/trail\ `, []int{10}},
		{`bel\x07/esc\x1b[31m`, []int{11}},
		{`nul\x00/\.`, []int{12}},
		{`bad\xff/fc`, []int{13}},
		{`\./.`, []int{14}},
	}
	for _, tt := range tests {
		sp, err := ParseSpec(tt.spec)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", tt.spec, err)
			continue
		}
		want := map[int]bool{}
		for _, i := range tt.want {
			want[i] = true
		}
		for i, p := range places {
			if got := sp.MatchIn(p.dict, p.module); got != want[i] {
				t.Errorf("%q selects %q in %q: %v, want %v", tt.spec, p.module, p.dict, got, want[i])
			}
		}
	}
	// The name LayerSpecName writes for a place selects it and nothing else.
	for i, p := range places {
		name := LayerSpecName(p.dict, p.module)
		for _, spec := range []string{name, name + "=auto", "  " + name + " = 1x1 "} {
			sp, err := ParseSpec(spec)
			if err != nil {
				t.Errorf("ParseSpec(%q): %v", spec, err)
				continue
			}
			for j, q := range places {
				if got := sp.MatchIn(q.dict, q.module); got != (i == j) {
					t.Errorf("%q (for %q in %q) selects %q in %q: %v", spec, p.module, p.dict, q.module, q.dict, got)
				}
			}
		}
	}
}

func TestBadLayerNames(t *testing.T) {
	for _, s := range []string{"", "=2x2", `fc\`, `fc\x4`, `fc\xzz`, "a\tb", "/"} {
		if _, err := ParseSpec(s); err == nil {
			t.Errorf("ParseSpec(%q) succeeded", s)
		}
	}
}

func TestPlanWithEscapedNames(t *testing.T) {
	specs, err := ParsePlan(strings.NewReader("- layer: 'odd keys/p\\=q'\n  shape: 1x1x2\n- 'head/.=2x2x2'\n- layer: /.\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`odd keys/p\=q=1x1x2`, "head/.=2x2x2", "/."}
	for i, sp := range specs {
		if sp.String() != want[i] {
			t.Errorf("spec %d = %q, want %q", i, sp, want[i])
		}
	}
	if !specs[0].MatchIn(checkpoint.Path{"odd keys"}, "p=q") {
		t.Errorf("%q does not select p=q", specs[0])
	}
}
