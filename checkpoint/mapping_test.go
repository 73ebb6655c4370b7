package checkpoint_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/osfile"
)

func TestMap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt")
	content := bytes.Repeat([]byte{1, 2, 3, 4}, 1024)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Len: 100, Offset: 64}
	c := checkpoint.New(nil, f, int64(len(content)), path)
	c.SetCloser(f)
	defer c.Close()
	if _, ok := c.MappedBytes(s); ok {
		t.Fatal("MappedBytes before Map: ok")
	}
	err = c.Map()
	if runtime.GOOS == "windows" {
		if !errors.Is(err, osfile.ErrNoMap) {
			t.Fatalf("Map on windows: %v, want ErrNoMap", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	b, ok := c.MappedBytes(s)
	if !ok || !bytes.Equal(b, content[64:464]) {
		t.Fatalf("MappedBytes: ok %v, %d bytes; want the storage's 400 bytes", ok, len(b))
	}
	c.Prefault(s)
	if _, ok := c.MappedBytes(&checkpoint.Storage{Kind: checkpoint.Float32, Len: 2000, Offset: 64}); ok {
		t.Error("MappedBytes of a storage past the end: ok")
	}
	if err := c.Unchanged(); err != nil {
		t.Fatalf("Unchanged on an untouched file: %v", err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if err := c.Unchanged(); !errors.Is(err, checkpoint.ErrChanged) {
		t.Fatalf("Unchanged after the file was touched: %v, want ErrChanged", err)
	}
}

func TestMapNotAFile(t *testing.T) {
	c := checkpoint.New(nil, bytes.NewReader(make([]byte, 100)), 100, "<memory>")
	if err := c.Map(); !errors.Is(err, osfile.ErrNoMap) {
		t.Fatalf("Map of an in-memory checkpoint: %v, want ErrNoMap", err)
	}
	if err := c.Unchanged(); err != nil {
		t.Fatalf("Unchanged of an unmapped checkpoint: %v", err)
	}
}
