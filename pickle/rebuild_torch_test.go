package pickle_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pt2conv/pt2conv/internal/torchtest"
	"github.com/pt2conv/pt2conv/pickle"
)

// TestRebuildsWrittenAsTorchWrites re-saves the fixtures that hold tensors with Python
// attributes, meta and nested tensors and tensors in torch 0.3's form, and lists the globals
// of both pickles with Python's pickletools: the copy must name the same rebuild functions,
// classes and dtypes, in the same order, as the file torch wrote. (TestFixturesRoundTrip has
// torch load both and compare what they hold.)
func TestRebuildsWrittenAsTorchWrites(t *testing.T) {
	const script = `
import io, json, pickle, pickletools, sys, zipfile
def globals_of(path):
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == b"PK":
        z = zipfile.ZipFile(io.BytesIO(data))
        data = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
        f = io.BytesIO(data)
    else:
        f = io.BytesIO(data)
        for _ in range(3):  # magic number, protocol version, sys_info
            pickle.load(f)
    return [arg.replace(" ", ".") for op, arg, _ in pickletools.genops(f) if op.name == "GLOBAL"]
print(json.dumps({p: globals_of(p) for p in sys.argv[1:]}))
`
	torches := torchtest.All(t)
	if len(torches) == 0 {
		t.Skip("no torch installed")
	}
	tr := torches[0]
	var names []string
	for _, base := range []string{"tensor_attrs_t26", "meta", "meta_t26", "nested_t26", "old_form", "old_form_t26", "old_form_legacy", "old_form_legacy_t26"} {
		names = append(names, filepath.Join(torchtest.RepoRoot(t), "fixtures", base+".pt"))
	}
	dir := t.TempDir()
	var args []string
	copies := map[string]string{}
	for _, in := range names {
		c, err := pickle.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, filepath.Base(in))
		if err := pickle.Save(out, c, nil); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		c.Close()
		copies[tr.Share(t, in)] = tr.Share(t, out)
		args = append(args, tr.Share(t, in), tr.Share(t, out))
	}
	var got map[string][]string
	if err := json.Unmarshal(tr.Run(t, script, args...), &got); err != nil {
		t.Fatal(err)
	}
	for orig, cp := range copies {
		if len(got[orig]) == 0 || !slices.Equal(got[orig], got[cp]) {
			t.Errorf("%s: globals\n%q\nwritten back as\n%q", filepath.Base(orig), got[orig], got[cp])
		} else {
			t.Logf("%s: %d globals, as torch wrote them", filepath.Base(orig), len(got[orig]))
		}
	}
}
