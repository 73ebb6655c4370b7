package pickle_test

import (
	"archive/zip"
	"github.com/pt2conv/pt2conv/checkpoint"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/internal/torchtest"
	"github.com/pt2conv/pt2conv/pickle"
)

// TestFixturesRoundTrip re-saves every fixture and has each torch installation confirm that
// the copy holds exactly what the fixture holds: values, dtypes, shapes, strides, offsets,
// key order, _metadata and storage sharing, loading with weights_only=True wherever the
// fixture allows it. Legacy fixtures come out in the zip format.
func TestFixturesRoundTrip(t *testing.T) {
	fixtures, err := filepath.Glob(filepath.Join(torchtest.RepoRoot(t), "fixtures", "*.pt"))
	if err != nil || len(fixtures) < 10 {
		t.Fatalf("fixtures: %v (%d found)", err, len(fixtures))
	}
	dir := t.TempDir()
	var pairs [][2]string
	for _, in := range fixtures {
		c, err := pickle.Open(in)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		out := filepath.Join(dir, filepath.Base(in))
		if err := pickle.Save(out, c, nil); err != nil {
			t.Fatalf("%s: save: %v", in, err)
		}
		c.Close()
		checkArchive(t, out, strings.TrimSuffix(filepath.Base(in), ".pt"))
		again, err := pickle.Open(out)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if got, want := len(checkpoint.Storages(again.Root)), len(checkpoint.Storages(c.Root)); got != want {
			t.Errorf("%s: %d storages after the round trip, %d before", in, got, want)
		}
		again.Close()
		pairs = append(pairs, [2]string{in, out})
	}
	for _, tr := range torchtest.All(t) {
		// torch 1.x cannot read some of torch 2's files (float8, uint16, sparse with
		// is_coalesced, ...): those are judged by torch 2 only.
		unreadable := unreadableIn(t, tr, pairs)
		var judged [][2]string
		for _, p := range pairs {
			if unreadable[p[0]] {
				if !strings.HasSuffix(p[0], "_t26.pt") {
					t.Errorf("%s cannot load %s, which it wrote", tr, p[0])
				}
				continue
			}
			judged = append(judged, p)
		}
		if len(unreadable) > 0 {
			t.Logf("%s cannot load %d torch 2 fixtures; they are judged by torch 2 alone", tr, len(unreadable))
		}
		res, err := tr.SameAll(t, judged)
		if err != nil {
			t.Fatal(err)
		}
		wo := 0
		for _, r := range res {
			if r.WeightsOnly {
				wo++
			}
		}
		t.Logf("%s: %d files identical after the round trip, %d of them loaded with weights_only=True", tr, len(res), wo)
	}
}

// unreadableIn lists the originals among pairs that tr's torch.load cannot read at all.
func unreadableIn(t *testing.T, tr *torchtest.Torch, pairs [][2]string) map[string]bool {
	const script = `
import sys, warnings, torch
warnings.filterwarnings("ignore")
for i, path in enumerate(sys.argv[1:]):
    try:
        torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        print(i)
`
	var args []string
	for _, p := range pairs {
		args = append(args, tr.Share(t, p[0]))
	}
	out := map[string]bool{}
	for _, line := range strings.Fields(string(tr.Run(t, script, args...))) {
		i, err := strconv.Atoi(line)
		if err != nil || i >= len(pairs) {
			t.Fatalf("%s: unexpected output %q", tr, line)
		}
		out[pairs[i][0]] = true
	}
	return out
}

// checkArchive checks the container as torch writes it: one top folder named after the
// file, every record stored, flag 0x808, data aligned to 64 bytes.
func checkArchive(t *testing.T, path, top string) {
	t.Helper()
	z, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	for _, f := range z.File {
		off, err := f.DataOffset()
		if err != nil || !strings.HasPrefix(f.Name, top+"/") || f.Flags != 0x808 || f.Method != zip.Store || off%64 != 0 {
			t.Errorf("%s: record %s: flags %#x, method %d, data at %d (%v)", path, f.Name, f.Flags, f.Method, off, err)
		}
	}
}
