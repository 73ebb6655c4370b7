package rewrite

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

func TestParseRename(t *testing.T) {
	tests := []struct {
		in   string
		want Rename
		err  string
	}{
		{"classifier.0=fc6", Rename{"classifier.0", "fc6"}, ""},
		{"module.=", Rename{"module", ""}, ""},
		{"=backbone", Rename{"", "backbone"}, ""},
		{"a=b=c", Rename{"a", "b=c"}, ""},
		{"classifier.0", Rename{}, "want OLD=NEW"},
		{"fc=fc.", Rename{}, "the same"},
	}
	for _, tt := range tests {
		got, err := ParseRename(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseRename(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRename(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func keysOf(v checkpoint.Value) []string {
	entries, _ := entriesOf(v)
	var out []string
	for _, e := range entries {
		out = append(out, checkpoint.KeyString(e.Key))
	}
	return out
}

func TestRenameKeys(t *testing.T) {
	vggKeys := []string{"features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias", "features.5.weight", "features.5.bias",
		"classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias", "classifier.6.weight", "classifier.6.bias"}
	tests := []struct {
		name    string
		renames []string
		want    []string // keys of the state_dict after renaming
		counts  []int
		err     string
	}{
		{"fcn head", []string{"classifier.0=fc6", "classifier.3=fc7", "classifier.6=score"},
			[]string{"features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias", "features.5.weight", "features.5.bias",
				"fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias", "score.weight", "score.bias"}, []int{2, 2, 2}, ""},
		{"longest prefix wins", []string{"classifier=head", "classifier.6=score"},
			[]string{"features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias", "features.5.weight", "features.5.bias",
				"head.0.weight", "head.0.bias", "head.3.weight", "head.3.bias", "score.weight", "score.bias"}, []int{4, 2}, ""},
		{"add a prefix", []string{"=backbone"}, prefixed("backbone.", vggKeys), []int{12}, ""},
		{"whole module names only", []string{"classifier.0=x", "features.5=y"},
			[]string{"features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias", "y.weight", "y.bias",
				"x.weight", "x.bias", "classifier.3.weight", "classifier.3.bias", "classifier.6.weight", "classifier.6.bias"}, []int{2, 2}, ""},
		{"matches nothing", []string{"classifier.1=fc"}, nil, nil, "--rename classifier.1=fc: no state_dict key is classifier.1 or starts with classifier.1.; modules at the top: features, classifier"},
		{"partial name", []string{"classifi=fc"}, nil, nil, "no state_dict key is classifi"},
		{"collision", []string{"classifier.0=classifier.3"}, nil, nil, `in state_dict "model", classifier.0.weight and classifier.3.weight would both be named classifier.3.weight`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder()
			sd := b.vgg("")
			root := dict("epoch", int64(3), "model", sd, "ema", sd, "history", list(sd, checkpoint.Bytes("x")))
			c := b.checkpoint(t, root)
			var rs []Rename
			for _, s := range tt.renames {
				r, err := ParseRename(s)
				if err != nil {
					t.Fatal(err)
				}
				rs = append(rs, r)
			}
			got, counts, err := RenameKeys(c, rs)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrRename) {
					t.Fatalf("error %v, want ErrRename with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(keysOf(sd), vggKeys) {
				t.Errorf("the input was modified: %v", keysOf(sd))
			}
			_, nsd, _ := checkpoint.Lookup(got.Root, "model")
			if k := keysOf(nsd); !slices.Equal(k, tt.want) {
				t.Errorf("keys %v\nwant %v", k, tt.want)
			}
			_, ema, _ := checkpoint.Lookup(got.Root, "ema")
			_, hist, _ := checkpoint.Lookup(got.Root, "history/0")
			if ema != nsd || hist != nsd {
				t.Errorf("a state_dict shared by three paths is no longer one object")
			}
			for i, e := range nsd.(*checkpoint.OrderedDict).Entries {
				if e.Value != sd.Entries[i].Value {
					t.Errorf("%v: not the same tensor object", e.Key)
				}
			}
			if _, epoch, _ := checkpoint.Lookup(got.Root, "epoch"); epoch != int64(3) {
				t.Errorf("epoch = %v", epoch)
			}
			var n []int
			for _, r := range counts {
				n = append(n, r.Keys)
			}
			if !slices.Equal(n, tt.counts) {
				t.Errorf("counts %v, want %v", n, tt.counts)
			}
		})
	}
}

func prefixed(p string, keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = p + k
	}
	return out
}

// The _metadata torch's load_state_dict reads is renamed with the keys; a prefix that would
// collide keeps its name.
func TestRenameMetadata(t *testing.T) {
	b := newBuilder()
	sd := newStateDict("module.fc.weight", b.tensor(2, 3), "module.fc.bias", b.tensor(2))
	meta := sd.State.(*checkpoint.Dict).Entries[0].Value.(*checkpoint.OrderedDict)
	version := func(n int64) *checkpoint.Dict { return dict("version", n) }
	meta.Entries = append(meta.Entries,
		checkpoint.Entry{Key: "module", Value: version(2)}, checkpoint.Entry{Key: "module.fc", Value: version(3)})
	c := b.checkpoint(t, sd)
	got, _, err := RenameKeys(c, []Rename{{"module", ""}})
	if err != nil {
		t.Fatal(err)
	}
	nsd := got.Root.(*checkpoint.OrderedDict)
	if k := keysOf(nsd); !slices.Equal(k, []string{"fc.weight", "fc.bias"}) {
		t.Errorf("keys %v", k)
	}
	nmeta := nsd.State.(*checkpoint.Dict).Entries[0].Value
	if k := keysOf(nmeta); !slices.Equal(k, []string{"", "module", "fc"}) {
		t.Errorf("_metadata keys %q, want \"\", module (kept: \"\" is taken), fc", k)
	}
	if k := keysOf(meta); !slices.Equal(k, []string{"", "module", "module.fc"}) {
		t.Errorf("the input's _metadata was modified: %q", k)
	}
}
