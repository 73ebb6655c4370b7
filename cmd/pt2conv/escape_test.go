package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/pickle"
	"github.com/pt2conv/pt2conv/rewrite"
)

// planted are the bytes a hostile (or bit-flipped) file may put in a key or a global name.
const planted = "\x1b]0;pwned\a\x1b[31m\x00"

// saveWithKey writes a state_dict whose Linear and bias keys hold planted bytes, plus extra
// entries.
func saveWithKey(t *testing.T, extra ...checkpoint.Entry) string {
	t.Helper()
	w := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Location: "cpu", Len: 8}
	b := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "1", Location: "cpu", Len: 2}
	d := &checkpoint.OrderedDict{Entries: append([]checkpoint.Entry{
		{Key: "fc" + planted + ".weight", Value: &checkpoint.Tensor{Storage: w, Size: []int64{2, 4}, Stride: []int64{4, 1}}},
		{Key: "fc" + planted + ".bias", Value: &checkpoint.Tensor{Storage: b, Size: []int64{2}, Stride: []int64{1}}},
	}, extra...)}
	c, err := checkpoint.FromBytes(d, map[*checkpoint.Storage][]byte{w: make([]byte, 32), b: make([]byte, 8)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "planted.pt")
	if err := pickle.Save(path, c, nil); err != nil {
		t.Fatal(err)
	}
	return path
}

func assertNoControl(t *testing.T, what, s string) {
	t.Helper()
	for _, c := range []byte(s) {
		if c < 0x20 && c != '\n' || c == 0x7f {
			t.Errorf("%s holds the control byte %#02x: %q", what, c, s)
			return
		}
	}
}

// TestFileTextIsEscaped plants ESC, BEL and NUL in a key and in a global and runs every
// command that prints them: no control byte reaches the terminal, and JSON keeps them exact.
func TestFileTextIsEscaped(t *testing.T) {
	withKey := saveWithKey(t)
	withGlobal := saveWithKey(t, checkpoint.Entry{Key: "cfg", Value: &checkpoint.Global{Module: "os" + planted, Name: "sys" + planted}})
	out := filepath.Join(t.TempDir(), "out.pt")
	spec := rewrite.LayerSpecName(nil, "fc"+planted)
	runs := [][]string{
		{"inspect", withKey},
		{"convert", withKey, "-o", out, "--layer", spec, "--dry-run"},
		{"convert", withKey, "-o", out, "--layer", spec, "--verify"},
		{"convert", withKey, "-o", out, "--layer", "nomatch"},
		{"convert", withKey, "-o", out, "--layer", "fc" + planted + "=3x3"},
		{"verify", withKey, out},
		{"inspect", withGlobal},
		{"convert", withGlobal, "-o", out},
	}
	for _, args := range runs {
		code, stdout, stderr := pt2conv(t, args...)
		what := strings.Join(args[:1], " ") + " " + strings.Join(args[2:], " ")
		assertNoControl(t, what+": stdout", stdout)
		assertNoControl(t, what+": stderr", stderr)
		if args[1] == withGlobal && (code != 2 || !strings.Contains(stderr, `\x1b`)) {
			t.Errorf("%s: exit %d, stderr %q: want the global refused, escaped", what, code, stderr)
		}
	}
	_, stdout, _ := pt2conv(t, "inspect", withKey)
	if !strings.Contains(stdout, `fc\x1b]0;pwned\a\x1b[31m\x00.weight`) {
		t.Errorf("inspect does not show the escaped key:\n%s", stdout)
	}
	_, stdout, _ = pt2conv(t, "inspect", withKey, "--json")
	var rep inspectReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Tensors) == 0 || rep.Tensors[0].Path != "fc"+planted+".weight" {
		t.Errorf("JSON changed the key: %+v", rep.Tensors)
	}
	assertNoControl(t, "inspect --json", stdout)
}
