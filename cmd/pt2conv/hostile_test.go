package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pt2conv/pt2conv/pickle"
)

// The broken-file corpus is made from the real fixtures at test time: truncations, bit
// flips, hostile pickles. Every file goes through inspect, convert and verify; whatever
// the file, the command must return promptly with exit 0, 1 or 2 (2 for the clearly
// broken), print exactly one line on stderr when it fails, leave no output or temporary
// file behind on failure, and never modify its input.

// caseTimeout bounds one command on one corpus file; the race detector is slow, the
// files are small.
const caseTimeout = 20 * time.Second

// runTimed runs the command line in-process and fails the test if it does not return in
// time.
func runTimed(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		c := run(args, &out, &errb)
		done <- result{c, out.String(), errb.String()}
	}()
	select {
	case r := <-done:
		return r.code, r.out, r.err
	case <-time.After(caseTimeout):
		t.Fatalf("pt2conv %s did not return within %v", strings.Join(args, " "), caseTimeout)
		return 0, "", ""
	}
}

// corpusFile is one generated input; broken means every command must exit 2 on it.
type corpusFile struct {
	name   string
	data   []byte
	broken bool
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// archive builds a zip with the given records under the top folder "archive".
func archive(t *testing.T, records ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i+1 < len(records); i += 2 {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/" + records[i], Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(records[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// storagePickle is a state_dict {"w": tensor} on a FloatStorage of numel elements.
func storagePickle(numel uint64) string {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], numel)
	return "\x80\x02ccollections\nOrderedDict\n)RX\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n(" +
		"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu\x8a\x08" + string(n[:]) +
		"tQK\x00K\x01\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRs."
}

// hostileCorpus generates the broken and hostile files.
func hostileCorpus(t *testing.T) []corpusFile {
	vgg := mustRead(t, fixture("vgg_tiny.pt"))
	legacy := mustRead(t, fixture("vgg_tiny_legacy.pt"))
	var files []corpusFile
	add := func(name string, data []byte, broken bool) {
		files = append(files, corpusFile{name: name, data: data, broken: broken})
	}
	add("empty.pt", nil, true)
	add("random.pt", func() []byte {
		b := make([]byte, 4096)
		for i := range b {
			b[i] = byte(i*7919 + i>>3)
		}
		return b
	}(), true)
	for _, frac := range []int{1, 5, 20, 50, 80, 95, 99} {
		add(fmt.Sprintf("cut%02d.pt", frac), vgg[:len(vgg)*frac/100], true)
		add(fmt.Sprintf("legacy_cut%02d.pt", frac), legacy[:len(legacy)*frac/100], true)
	}
	pklAt := bytes.Index(vgg, []byte("\x80\x02ccollections"))
	dirAt := bytes.Index(vgg, []byte("PK\x01\x02"))
	if pklAt < 0 || dirAt < 0 {
		t.Fatal("vgg_tiny.pt: data.pkl or the zip directory not found")
	}
	for i, at := range []int{pklAt + 1, pklAt + 40, pklAt + 200, pklAt + 500, dirAt + 10, dirAt + 30, dirAt + 46, len(vgg) - 10} {
		b := bytes.Clone(vgg)
		b[at] ^= 0x5a
		add(fmt.Sprintf("flip%d.pt", i), b, false) // a flip may leave a valid file
	}
	add("deep.pt", archive(t, "data.pkl", "\x80\x02"+strings.Repeat("]", 200000)+strings.Repeat("a", 199999)+"."), true)
	shared := "\x80\x02]q\x000"
	for k := 1; k < 60; k++ { // each list holds the one before twice: 2^59 paths
		shared += fmt.Sprintf("](h%ch%ceq%c0", k-1, k-1, k)
	}
	add("shared_lists.pt", archive(t, "data.pkl", shared+fmt.Sprintf("h%c.", 59)), true)
	add("huge_storage.pt", archive(t, "data.pkl", storagePickle(1<<62), "data/0", "abcd"), true)
	add("claims_storage.pt", archive(t, "data.pkl", storagePickle(1<<40), "data/0", "abcd"), true)
	add("binbytes8.pt", archive(t, "data.pkl", "\x80\x02\x8e\x00\x00\x00\x00\x00\x01\x00\x00."), true)
	add("torchscript.pt", archive(t, "data.pkl", "\x80\x02N.", "constants.pkl", "\x80\x02).",
		"code/__torch__/model.py", "class Model(Module):\n  pass\n"), true)
	add("os_system.pt", archive(t, "data.pkl", "\x80\x02cos\nsystem\nX\x05\x00\x00\x00touch\x85R."), true)
	for _, g := range [][2]string{{"posix", "system"}, {"builtins", "eval"}, {"subprocess", "Popen"}} {
		pkl := fmt.Sprintf("\x80\x04\x8c%c%s\x94\x8c%c%s\x94\x93\x94\x8c\x05touch\x94\x85\x94R\x94.",
			len(g[0]), g[0], len(g[1]), g[1])
		add(g[0]+"_"+g[1]+".pt", archive(t, "data.pkl", pkl), true)
	}
	add("no_data_pkl.pt", archive(t, "data/0", "abcd", "version", "3\n"), true)
	add("duplicate.pt", archive(t, "data.pkl", storagePickle(1), "data/0", "abcd", "data/0", "abcd"), true)
	add("compressed.pt", func() []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: "archive/data.pkl", Method: zip.Deflate})
		w.Write([]byte(storagePickle(1)))
		zw.Close()
		return buf.Bytes()
	}(), true)
	magic := bytes.Clone(legacy)
	magic[5] ^= 1 // inside the magic number
	add("legacy_magic.pt", magic, true)
	proto := bytes.Clone(legacy)
	proto[18]++ // the protocol version 1001 (M\xe9\x03) becomes 1002
	add("legacy_protocol.pt", proto, true)
	return files
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

func TestHostileFiles(t *testing.T) {
	dir := t.TempDir()
	outDir := filepath.Join(dir, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	good := fixture("vgg_tiny.pt")
	for _, f := range hostileCorpus(t) {
		in := filepath.Join(dir, f.name)
		if err := os.WriteFile(in, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(f.name, func(t *testing.T) {
			out := filepath.Join(outDir, f.name)
			commands := [][]string{
				{"inspect", in},
				{"inspect", "--json", in},
				{"convert", in, "-o", out, "--layer", "classifier.0=8x3x3", "--verify"},
				{"convert", in, "-o", out},
				{"convert", in, "--out-dir", outDir, "-j", "2"},
				{"verify", good, in},
				{"verify", in, in},
			}
			for _, args := range commands {
				code, stdout, stderr := runTimed(t, args...)
				if code != exitOK && code != exitFailed && code != exitBadInput {
					t.Errorf("%v: exit code %d", args, code)
				}
				if f.broken && code != exitBadInput {
					t.Errorf("%v: exit %d on a broken file, want 2 (stderr %q)", args, code, stderr)
				}
				if code != exitOK && (strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n")) {
					t.Errorf("%v: exit %d with stderr %q, want exactly one line", args, code, stderr)
				}
				// A batch reports each file's failure on stdout and sums up on stderr.
				batch := slices.Contains(args, "--out-dir")
				if code != exitOK && !batch && !strings.Contains(stderr, f.name) {
					t.Errorf("%v: error %q does not name the file", args, stderr)
				}
				if code != exitOK && batch && !strings.Contains(stdout, "FAIL  "+in) {
					t.Errorf("%v: report %q does not name the file", args, stdout)
				}
				checkOutDir(t, outDir, out, code == exitOK && args[0] == "convert")
				os.Remove(out)
			}
			if sha(mustRead(t, in)) != sha(f.data) {
				t.Errorf("the input file was modified")
			}
		})
	}
}

// checkOutDir makes sure the output directory holds nothing but, when the command
// succeeded, the output file, and that this file opens.
func checkOutDir(t *testing.T, outDir, out string, wantOut bool) {
	t.Helper()
	entries, err := os.ReadDir(outDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(outDir, e.Name())
		if p == out && wantOut {
			c, err := pickle.Open(p)
			if err != nil {
				t.Errorf("the written file does not open: %v", err)
			} else {
				c.Close()
			}
			continue
		}
		t.Errorf("%s left in the output directory", e.Name())
	}
	if wantOut && len(entries) == 0 {
		t.Errorf("exit 0 but no output written")
	}
}

// TestBatchConcurrent converts 50 copies of a fixture four at a time; under the race
// detector this covers the shared paths of a batch.
func TestBatchConcurrent(t *testing.T) {
	dir := t.TempDir()
	inDir, outDir := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	for _, d := range []string{inDir, outDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := mustRead(t, fixture("vgg_tiny.pt"))
	args := []string{"convert", "--out-dir", outDir, "-j", "4", "--layer", "classifier.0=8x3x3", "--layer", "classifier.3", "--verify", "--json"}
	for i := 0; i < 50; i++ {
		in := filepath.Join(inDir, fmt.Sprintf("copy%02d.pt", i))
		if err := os.WriteFile(in, src, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, in)
	}
	code, stdout, stderr := runTimed(t, args...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, `"converted": 50`) {
		t.Errorf("report does not say 50 converted:\n%.500s", stdout)
	}
	entries, err := os.ReadDir(outDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 50 {
		t.Fatalf("%d files in the output directory, want 50", len(entries))
	}
	for _, e := range entries {
		c, err := pickle.Open(filepath.Join(outDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		shapes := map[string]int{}
		for _, nt := range checkpoint.Tensors(c.Root) {
			shapes[nt.Path.String()] = len(nt.Tensor.Size)
		}
		c.Close()
		if shapes["classifier.0.weight"] != 4 || shapes["classifier.3.weight"] != 4 {
			t.Errorf("%s: converted weights have ranks %v", e.Name(), shapes)
		}
	}
	for i := 0; i < 50; i++ {
		if sha(mustRead(t, filepath.Join(inDir, fmt.Sprintf("copy%02d.pt", i)))) != sha(src) {
			t.Fatalf("input copy%02d.pt was modified", i)
		}
	}
}
