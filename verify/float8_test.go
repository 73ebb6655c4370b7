package verify

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/internal/torchtest"
)

// Values the OCP 8-bit float specification gives for its formats.
func TestFloat8SpecValues(t *testing.T) {
	tests := []struct {
		name  string
		table *[256]float32
		b     byte
		want  float64
	}{
		{"e4m3 max normal", &float8E4M3FN, 0x7e, 448},
		{"e4m3 min normal", &float8E4M3FN, 0x08, math.Ldexp(1, -6)},
		{"e4m3 max subnormal", &float8E4M3FN, 0x07, 0.875 * math.Ldexp(1, -6)},
		{"e4m3 min subnormal", &float8E4M3FN, 0x01, math.Ldexp(1, -9)},
		{"e4m3 one", &float8E4M3FN, 0x38, 1},
		{"e4m3 -2", &float8E4M3FN, 0xc0, -2},
		{"e4m3 -0", &float8E4M3FN, 0x80, math.Copysign(0, -1)},
		{"e4m3 0x78 is a number", &float8E4M3FN, 0x78, 256},
		{"e4m3 NaN", &float8E4M3FN, 0x7f, math.NaN()},
		{"e4m3 -NaN", &float8E4M3FN, 0xff, math.NaN()},
		{"e5m2 max normal", &float8E5M2, 0x7b, 57344},
		{"e5m2 min normal", &float8E5M2, 0x04, math.Ldexp(1, -14)},
		{"e5m2 min subnormal", &float8E5M2, 0x01, math.Ldexp(1, -16)},
		{"e5m2 one", &float8E5M2, 0x3c, 1},
		{"e5m2 inf", &float8E5M2, 0x7c, math.Inf(1)},
		{"e5m2 -inf", &float8E5M2, 0xfc, math.Inf(-1)},
		{"e5m2 NaN", &float8E5M2, 0x7d, math.NaN()},
		{"e4m3fnuz max", &float8E4M3FNUZ, 0x7f, 240},
		{"e4m3fnuz NaN", &float8E4M3FNUZ, 0x80, math.NaN()},
		{"e4m3fnuz min subnormal", &float8E4M3FNUZ, 0x01, math.Ldexp(1, -10)},
		{"e5m2fnuz max", &float8E5M2FNUZ, 0x7f, 57344},
		{"e5m2fnuz -max", &float8E5M2FNUZ, 0xff, -57344},
	}
	for _, tt := range tests {
		got := float64(tt.table[tt.b])
		if math.IsNaN(tt.want) {
			if !math.IsNaN(got) {
				t.Errorf("%s: %#02x = %v, want NaN", tt.name, tt.b, got)
			}
			continue
		}
		if got != tt.want || math.Signbit(got) != math.Signbit(tt.want) {
			t.Errorf("%s: %#02x = %v, want %v", tt.name, tt.b, got, tt.want)
		}
	}
}

// torch 2's float8 dtypes decode every byte to the same value as the tables.
func TestFloat8MatchesTorch(t *testing.T) {
	const script = `
import json, math, torch
out = {}
for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"):
    vals = torch.arange(256, dtype=torch.uint8).view(getattr(torch, name)).float().tolist()
    out[name] = [repr(v) for v in vals]
print(json.dumps(out))
`
	checked := 0
	for _, tr := range torchtest.All(t) {
		if strings.HasPrefix(tr.Version, "1.") {
			continue // no float8 before torch 2.1
		}
		var got map[string][]string
		if err := json.Unmarshal(tr.Run(t, script), &got); err != nil {
			t.Fatalf("%s: %v", tr, err)
		}
		for name, table := range map[string]*[256]float32{"float8_e4m3fn": &float8E4M3FN, "float8_e5m2": &float8E5M2,
			"float8_e4m3fnuz": &float8E4M3FNUZ, "float8_e5m2fnuz": &float8E5M2FNUZ} {
			if len(got[name]) != 256 {
				t.Fatalf("%s: %d values of %s", tr, len(got[name]), name)
			}
			for b, s := range got[name] {
				want := pyFloat(t, s)
				v := float64(table[b])
				same := v == want && math.Signbit(v) == math.Signbit(want) || math.IsNaN(v) && math.IsNaN(want)
				if !same {
					t.Errorf("%s: %s byte %#02x: table %v, torch %s", tr, name, b, v, s)
				}
			}
			checked++
		}
	}
	if checked == 0 {
		t.Skip("no torch 2 to compare with")
	}
}

func pyFloat(t *testing.T, s string) float64 {
	switch s {
	case "nan":
		return math.NaN()
	case "inf":
		return math.Inf(1)
	case "-inf":
		return math.Inf(-1)
	}
	var v float64
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("torch printed %q", s)
	}
	if s == "-0.0" {
		v = math.Copysign(0, -1)
	}
	return v
}
