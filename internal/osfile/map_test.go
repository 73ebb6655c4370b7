package osfile_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/pt2conv/pt2conv/internal/osfile"
)

func TestMap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	want := bytes.Repeat([]byte("mapped "), 20000)
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := osfile.Map(f)
	if runtime.GOOS == "windows" {
		if !errors.Is(err, osfile.ErrNoMap) {
			t.Fatalf("Map on windows: got %v, want ErrNoMap", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	m.Populate(5, 100000)           // inside: maps pages ahead
	m.Populate(5, 3000)             // small: left to faults
	m.Populate(5, int64(len(want))) // past the end: ignored
	if !bytes.Equal(m.Bytes(), want) {
		t.Fatalf("mapped bytes differ from the file's")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if m.Bytes() != nil {
		t.Fatalf("Bytes after Close: %d bytes, want none", len(m.Bytes()))
	}
}

func TestMapEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := osfile.Map(f); !errors.Is(err, osfile.ErrNoMap) {
		t.Fatalf("Map of an empty file: got %v, want ErrNoMap", err)
	}
}
