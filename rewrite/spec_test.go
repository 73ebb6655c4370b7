package rewrite

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in   string
		want Spec
		err  bool
	}{
		{in: "fc6", want: Spec{Layer: "fc6"}},
		{in: "classifier.0=512x7x7", want: Spec{Layer: "classifier.0", Mode: ShapeCHW, C: 512, H: 7, W: 7}},
		{in: "classifier.0=512X7X7", want: Spec{Layer: "classifier.0", Mode: ShapeCHW, C: 512, H: 7, W: 7}},
		{in: "module.fc6=7x7", want: Spec{Layer: "module.fc6", Mode: ShapeHW, H: 7, W: 7}},
		{in: "1=auto", want: Spec{Layer: "1", Mode: ShapeAuto}},
		{in: " classifier.* = AUTO ", want: Spec{Layer: "classifier.*", Mode: ShapeAuto}},
		{in: "", err: true},
		{in: "=512x7x7", err: true},
		{in: "fc6=", err: true},
		{in: "fc6=7", err: true},
		{in: "fc6=1x2x3x4", err: true},
		{in: "fc6=0x7x7", err: true},
		{in: "fc6=-1x7x7", err: true},
		{in: "fc6=ax7", err: true},
		{in: "fc\t6", err: true}, // spaces are part of names (keys may hold them); tabs must be escaped
	}
	for _, tt := range tests {
		got, err := ParseSpec(tt.in)
		if tt.err {
			if !errors.Is(err, ErrSpec) {
				t.Errorf("ParseSpec(%q) = %+v, %v; want ErrSpec", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if again, err := ParseSpec(got.String()); err != nil || again != got {
			t.Errorf("ParseSpec(%q.String() = %q) = %+v, %v", tt.in, got.String(), again, err)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"fc6", "fc6", true},
		{"fc6", "fc61", false},
		{"fc*", "fc6", true},
		{"fc*", "fc", true},
		{"*", "", true},
		{"*", "module.classifier.0", true},
		{"classifier.*", "classifier.0", true},
		{"classifier.*", "features.0", false},
		{"*.fc*", "module.fc6", true},
		{"*.fc*", "fc6", false},
		{"module.*.0", "module.classifier.0", true},
		{"module.*.0", "module.classifier.10", false},
		{"module.*.0", "module.classifier.01", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "ac", false},
		{"a*a", "a", false},
		{"a*a", "aa", true},
	}
	for _, tt := range tests {
		if got := (Spec{Layer: tt.pattern}).Match(tt.name); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestParsePlan(t *testing.T) {
	want := []Spec{
		{Layer: "classifier.0", Mode: ShapeCHW, C: 512, H: 7, W: 7},
		{Layer: "classifier.3"},
		{Layer: "fc*", Mode: ShapeAuto},
		{Layer: "head", Mode: ShapeHW, H: 2, W: 2},
	}
	tests := []struct {
		name, in string
		want     []Spec
		err      string
	}{
		{name: "yaml strings", in: "- classifier.0=512x7x7\n- classifier.3\n- fc*=auto\n- head=2x2\n", want: want},
		{name: "json strings", in: `["classifier.0=512x7x7", "classifier.3", "fc*=auto", "head=2x2"]`, want: want},
		{name: "yaml objects", in: "- {layer: classifier.0, shape: 512x7x7}\n- layer: classifier.3\n- {layer: 'fc*', shape: auto}\n- {layer: head, shape: [2, 2]}\n", want: want},
		{name: "json objects", in: `[{"layer": "classifier.0", "shape": [512, 7, 7]}, {"layer": "classifier.3", "shape": null}, {"layer": "fc*", "shape": "auto"}, "head=2x2"]`, want: want},
		{name: "layers key", in: "layers:\n  - classifier.0=512x7x7\n  - classifier.3\n  - fc*=auto\n  - head=2x2\n", want: want},
		{name: "empty", in: " \n", err: "empty"},
		{name: "not a list", in: "fc6: 512x7x7\n", err: "a list of specs"},
		{name: "bad spec", in: "- fc6=7\n", err: "line 1"},
		{name: "unknown field", in: "- {layer: fc6, size: 7x7}\n", err: `unknown field "size"`},
		{name: "no layer", in: "- {shape: 7x7}\n", err: "no layer"},
		{name: "bad yaml", in: "- [\n", err: "neither YAML nor JSON"},
		{name: "flow sequence left open", in: "- a\n- [b\n", err: "line 2: invalid layer spec: plan is neither YAML nor JSON: did not find expected ',' or ']'"},
		{name: "json without a comma", in: "[\"a\",\n \"b\"\n \"c\"]\n", err: "line 3: "},
		{name: "mapping in a scalar", in: "- a\n- b\n  c: d\n", err: "line 3: "},
		{name: "tab", in: "- a\n-\tb\n", err: "line 2: "},
		{name: "quote left open", in: "- a\n- b\n- 'c\n", err: "line 3: "},
		{name: "first line", in: "\t- a\n", err: "line 1: "},
		{name: "bad spec on line 3", in: "- a\n- b\n- c=7\n", err: "line 3: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePlan(strings.NewReader(tt.in))
			if tt.err != "" {
				if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, %v; want an ErrSpec saying %q", got, err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"fc6", "classifier.0=512x7x7", "m.fc=7x7", "*=auto", "a=1x2x3x4", "=", "x=0x1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("ParseSpec(%q): %v does not wrap ErrSpec", s, err)
			}
			return
		}
		again, err := ParseSpec(sp.String())
		if err != nil || again != sp {
			t.Fatalf("ParseSpec(%q) = %+v, but its String %q parses as %+v, %v", s, sp, sp.String(), again, err)
		}
	})
}
