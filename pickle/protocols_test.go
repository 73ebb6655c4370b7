package pickle_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/internal/torchtest"
	"github.com/pt2conv/pt2conv/pickle"
)

// TestEveryProtocolRoundTrips has each torch write one checkpoint per pickle protocol it can
// save with (1 to 5) in both containers, holding the plain values torch's safe loader allows
// (set, bytearray, complex, Counter, NaN and -0.0 included), then re-saves each with pt2conv and has the same
// torch confirm the copy holds exactly what the original holds.
func TestEveryProtocolRoundTrips(t *testing.T) {
	const script = `
import collections, sys, torch
out = sys.argv[1]
torch.manual_seed(0)
obj = {"model": torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).state_dict(),
       "epoch": 3, "tag": b"\x00pt", "shape": (3, 2), "big": 2 ** 70, "ids": [1, 2, 3], "name": "caf\u00e9",
       "set": {1, 2, 3}, "bytearray": bytearray(b"ab\xff"), "empty": bytearray(), "complex": complex(1.5, -2),
       "counter": collections.Counter("abracadabra"), "nan": float("nan"), "negzero": -0.0}
for proto in range(1, 6):
    for zipped in (True, False):
        torch.save(obj, "%s/p%d_%s.pt" % (out, proto, "zip" if zipped else "legacy"),
                   pickle_protocol=proto, _use_new_zipfile_serialization=zipped)
try:  # torch.save may refuse protocol 0; when it writes one, torch.load cannot read it back
    torch.save(obj, out + "/p0_zip.pt", pickle_protocol=0)
except Exception:
    pass
`
	for _, tr := range torchtest.All(t) {
		t.Run(tr.Name, func(t *testing.T) {
			host, inside := tr.TempDir(t)
			tr.Run(t, script, inside)
			var pairs [][2]string
			for proto := 1; proto <= 5; proto++ {
				for _, container := range []string{"zip", "legacy"} {
					in := filepath.Join(host, fmt.Sprintf("p%d_%s.pt", proto, container))
					c, err := pickle.Open(in)
					if err != nil {
						t.Fatalf("protocol %d, %s: %v", proto, container, err)
					}
					out := filepath.Join(t.TempDir(), filepath.Base(in))
					if err := pickle.Save(out, c, nil); err != nil {
						t.Fatalf("protocol %d, %s: save: %v", proto, container, err)
					}
					c.Close()
					pairs = append(pairs, [2]string{in, out})
				}
			}
			if _, err := os.Stat(filepath.Join(host, "p0_zip.pt")); err == nil {
				_, err := pickle.Open(filepath.Join(host, "p0_zip.pt"))
				if !errors.Is(err, pickle.ErrUnsupported) || !strings.Contains(err.Error(), "pickle protocol 0") {
					t.Errorf("protocol 0: %v, want it refused by name", err)
				}
			}
			res, err := tr.SameAll(t, pairs)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d files (protocols 1-5, zip and legacy) identical after the round trip", tr, len(res))
		})
	}
}

// Checkpoints of torch 0.1.10 and older are tar archives whose storages are pickled
// objects; torch's safe loader refuses them and so does pt2conv, saying what they are.
func TestTarCheckpointRefusedByName(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"sys_info", "pickle", "tensors", "storages"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 1}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte{'.'})
	}
	tw.Close()
	_, err := pickle.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "old.pt")
	if !errors.Is(err, pickle.ErrUnsupported) || !strings.Contains(err.Error(), "torch ≤ 0.1.10 tar checkpoint: load and re-save it with torch first") {
		t.Fatalf("got %v", err)
	}
}

// The protocol pt2conv reports for each fixture is the one Python's pickletools finds.
func TestFixtureProtocols(t *testing.T) {
	m := torchtest.LoadManifest(t)
	for _, f := range m.Files {
		c, err := pickle.Open(torchtest.Fixture(t, f.File))
		if err != nil {
			t.Fatal(err)
		}
		if got := pickle.ArchiveOf(c).Protocol; got != f.Protocol {
			t.Errorf("%s: protocol %d, pickletools says %d", f.File, got, f.Protocol)
		}
		c.Close()
	}
}
