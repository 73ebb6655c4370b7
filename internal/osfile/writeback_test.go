package osfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteback hands over only whole pages, each once, never the page a later write may
// finish, and leaves the file's bytes alone.
func TestWriteback(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	content := bytes.Repeat([]byte("0123456789"), 2000)
	if _, err := f.Write(content); err != nil {
		t.Fatal(err)
	}
	w := NewWriteback(f, 100)
	for _, tt := range []struct{ upto, from int64 }{
		{100, 4096}, {5000, 4096}, {8192, 8192}, {9000, 8192}, {20000, 16384},
	} {
		w.Upto(tt.upto)
		if w.from != tt.from {
			t.Errorf("after Upto(%d): pages handed over up to %d, want %d", tt.upto, w.from, tt.from)
		}
	}
	w.Wait()
	w.Wait()
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("the file changed: %v", err)
	}
}
