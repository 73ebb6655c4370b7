package pickle_test

import (
	"archive/zip"
	"bytes"
	"github.com/pt2conv/pt2conv/checkpoint"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/internal/osfile"
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

// TestSaveCopiesStorageRun saves every zip fixture under another name: the storage records
// come out byte for byte as in the input, at the same offsets modulo the clone block, under
// the input's top folder; a legacy input, which has no records to copy, takes the output's.
func TestSaveCopiesStorageRun(t *testing.T) {
	fixtures, err := filepath.Glob(filepath.Join(torchtest.RepoRoot(t), "fixtures", "*.pt"))
	if err != nil || len(fixtures) < 10 {
		t.Fatalf("fixtures: %v (%d found)", err, len(fixtures))
	}
	dir := t.TempDir()
	runs := 0
	for _, in := range fixtures {
		c, err := pickle.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "resaved.pt")
		if err := pickle.Save(out, c, &pickle.SaveOptions{Force: true}); err != nil {
			t.Fatalf("%s: save: %v", in, err)
		}
		if c.Format != pickle.FormatZip {
			checkArchive(t, out, "resaved")
			c.Close()
			continue
		}
		runs++
		checkArchive(t, out, pickle.ArchiveOf(c).Prefix)
		again, err := pickle.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		before, after := checkpoint.Storages(c.Root), checkpoint.Storages(again.Root)
		lo, hi := int64(-1), int64(0)
		for i, s := range before {
			if got := after[i].Offset; (got-s.Offset)%osfile.CloneBlock != 0 {
				t.Errorf("%s: storage %s moved from %d to %d, not by a multiple of %d", in, s.Key, s.Offset, got, osfile.CloneBlock)
			}
			if lo < 0 || s.Offset < lo {
				lo = s.Offset
			}
			hi = max(hi, s.Offset+s.ByteLen())
		}
		inBytes, _ := os.ReadFile(in)
		outBytes, _ := os.ReadFile(out)
		if len(before) > 0 {
			shift := after[0].Offset - before[0].Offset
			if !bytes.Equal(inBytes[lo:hi], outBytes[lo+shift:hi+shift]) {
				t.Errorf("%s: the storage records differ from the input's", in)
			}
		}
		// Against the same archive packed tight (in a buffer, under the top folder
		// "archive"), the output may only have grown by the padding before the run, under
		// 4 KiB, give or take the 64-byte alignment of headers torch wrote otherwise.
		var packed bytes.Buffer
		if _, err := pickle.Write(&packed, c, nil); err != nil {
			t.Fatal(err)
		}
		z, err := zip.NewReader(bytes.NewReader(outBytes), int64(len(outBytes)))
		if err != nil {
			t.Fatal(err)
		}
		tight := packed.Len() + 2*len(z.File)*(len(pickle.ArchiveOf(c).Prefix)-len("archive"))
		if pad := len(outBytes) - tight; pad >= osfile.CloneBlock+64 {
			t.Errorf("%s: the output is %d bytes larger than packed tight", in, pad)
		}
		again.Close()
		c.Close()
	}
	if runs == 0 {
		t.Fatal("no zip fixture")
	}
}
