package pickle

import (
	"archive/zip"
	"bytes"
	"errors"
	"github.com/pt2conv/pt2conv/checkpoint"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fuzz targets feed arbitrary bytes to the reader's three entry points. Whatever the
// input, the reader must return, without panicking, either a checkpoint or an error that
// callers can classify: one of the sentinels in errors.go or a *GlobalError. Inputs that
// once failed this are kept under testdata/fuzz/<FuzzName>/ and run by plain `go test`.

const fixtureDir = "../fixtures"

// fixtureFiles returns the committed fixtures' bytes by base name.
func fixtureFiles(tb testing.TB) map[string][]byte {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(fixtureDir, "*.pt"))
	if err != nil || len(names) == 0 {
		tb.Fatalf("no fixtures in %s (%v)", fixtureDir, err)
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(n)] = b
	}
	return out
}

// dataPickle returns the data.pkl record of a zip checkpoint, or nil for other files.
func dataPickle(tb testing.TB, archive []byte) []byte {
	tb.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		return nil
	}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/data.pkl") {
			r, err := f.Open()
			if err != nil {
				tb.Fatal(err)
			}
			defer r.Close()
			b, err := io.ReadAll(r)
			if err != nil {
				tb.Fatal(err)
			}
			return b
		}
	}
	return nil
}

// decodeRawPickle scans and decodes one pickle the way data.pkl is read.
func decodeRawPickle(data []byte, lim Limits) (checkpoint.Value, error) {
	c := &fileReader{src: bytes.NewReader(data), size: int64(len(data)), arch: &Archive{}}
	d := &decoder{record: "data.pkl", lim: lim}
	v, _, err := c.decodePickle(d, 0, int64(len(data)), lim)
	return v, err
}

// readLegacyBytes reads data as a legacy stream, whatever its first bytes.
func readLegacyBytes(data []byte, lim Limits) (*checkpoint.Checkpoint, error) {
	r := &fileReader{src: bytes.NewReader(data), size: int64(len(data)), arch: &Archive{}}
	if err := r.readLegacy(lim); err != nil {
		return nil, err
	}
	c := checkpoint.New(r.root, r.src, r.size, "raw")
	c.Format, c.Container = r.format, r.arch
	return c, nil
}

var readerSentinels = []error{ErrNotCheckpoint, ErrTorchScript, ErrTruncated, ErrCorrupt, ErrLimit, ErrUnsupported}

// classified reports whether err wraps a reader sentinel or is a *GlobalError, and is
// one line: the command line prints it as its only line on stderr.
func classified(err error) bool {
	if strings.ContainsAny(err.Error(), "\n\r") {
		return false
	}
	var ge *GlobalError
	if errors.As(err, &ge) {
		return true
	}
	for _, s := range readerSentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// fuzzLimits are the defaults with the allocation-heavy limits lowered, so that one fuzz
// input cannot take seconds; the checks are the same code either way.
var fuzzLimits = Limits{
	MaxPickleBytes: 1 << 20,
	MaxStack:       1 << 14,
	MaxMarks:       200,
	MaxMemo:        1 << 14,
	MaxLine:        1 << 10,
	MaxDepth:       200,
	MaxObjects:     1 << 16,
}

// exercise uses an opened checkpoint the way the commands do, so that a tree the reader
// accepts but the rest of the package cannot handle shows up as a panic too.
func exercise(t *testing.T, c *checkpoint.Checkpoint) {
	for _, nt := range checkpoint.Tensors(c.Root) {
		_ = nt.Path.String()
	}
	for _, s := range checkpoint.Storages(c.Root) {
		if _, err := io.Copy(io.Discard, c.StorageReader(s)); err != nil {
			t.Fatalf("storage %q of an accepted file cannot be read: %v", s.Key, err)
		}
	}
	_, _ = Write(io.Discard, c, nil)
}

func FuzzReadZip(f *testing.F) {
	for _, b := range fixtureFiles(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := newReader(bytes.NewReader(data), int64(len(data)), "fuzz.pt", fuzzLimits)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz.pt: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		exercise(t, c)
	})
}

func FuzzPickle(f *testing.F) {
	for _, b := range fixtureFiles(f) {
		if p := dataPickle(f, b); p != nil {
			f.Add(p)
		}
	}
	for _, seed := range hostileSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeRawPickle(data, fuzzLimits)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		_ = checkpoint.Tensors(v)
		_ = checkpoint.Storages(v)
	})
}

func FuzzLegacy(f *testing.F) {
	for name, b := range fixtureFiles(f) {
		if strings.Contains(name, "legacy") {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := readLegacyBytes(data, fuzzLimits)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		exercise(t, c)
	})
}

// hostileSeeds are small pickles that reach the reader's limits and refusals.
func hostileSeeds() [][]byte {
	return [][]byte{
		[]byte("\x80\x02cos\nsystem\nX\x02\x00\x00\x00idq\x00\x85R."),
		[]byte("\x80\x04\x8c\x05posix\x8c\x06system\x93\x8c\x02id\x85R."),
		[]byte("\x80\x02]q\x00(h\x00h\x00e."),
		[]byte("\x80\x02}(K\x01K\x02u."),
		[]byte("\x80\x02\x8e\x00\x00\x00\x00\x00\x01\x00\x00."),
		[]byte(sharedLists(40)),
	}
}
