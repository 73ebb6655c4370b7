package pickle

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestWindow(t *testing.T) {
	data := []byte("0123456789")
	tests := []struct {
		name    string
		off, n  int64
		want    string
		wantErr bool
	}{
		{"all", 0, 10, "0123456789", false},
		{"middle", 3, 4, "3456", false},
		{"empty at end", 10, 0, "", false},
		{"past the end", 8, 3, "", true},
		{"negative offset", -1, 2, "", true},
	}
	for _, tt := range tests {
		for _, src := range []struct {
			kind string
			r    io.ReaderAt
		}{{"mapped", &mappedFile{data: data}}, {"reader", bytes.NewReader(data)}} {
			t.Run(tt.name+"/"+src.kind, func(t *testing.T) {
				got, err := window(src.r, tt.off, tt.n)
				if (err != nil) != tt.wantErr {
					t.Fatalf("window(%d, %d) error %v, want error %v", tt.off, tt.n, err, tt.wantErr)
				}
				if err == nil && string(got) != tt.want {
					t.Errorf("window(%d, %d) = %q, want %q", tt.off, tt.n, got, tt.want)
				}
			})
		}
	}
}

func TestMappedFileReadAt(t *testing.T) {
	m := &mappedFile{data: []byte("abcdef")}
	tests := []struct {
		off     int64
		n       int
		want    string
		wantErr error
	}{
		{0, 6, "abcdef", nil},
		{4, 2, "ef", nil},
		{4, 4, "ef", io.EOF},
		{6, 1, "", io.EOF},
	}
	for _, tt := range tests {
		p := make([]byte, tt.n)
		n, err := m.ReadAt(p, tt.off)
		if string(p[:n]) != tt.want || !errors.Is(err, tt.wantErr) && err != tt.wantErr {
			t.Errorf("ReadAt(%d bytes at %d) = %q, %v; want %q, %v", tt.n, tt.off, p[:n], err, tt.want, tt.wantErr)
		}
	}
	if _, err := m.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("ReadAt at a negative offset did not fail")
	}
}

// A file truncated while it is mapped and read is an error, not a crash.
func TestReadingMappedTruncatedFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("files are not mapped on windows")
	}
	const size = 1 << 20
	f, path := openFileOf(t, bytes.Repeat([]byte{1}, size))
	m, unmap := mapSource(f, size)
	if m == nil {
		t.Fatal("mapSource did not map a regular file")
	}
	defer unmap()
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	sum := 0
	read := func() (err error) {
		defer readingMapped(m)(&err)
		b, err := window(m, 0, size)
		if err != nil {
			return err
		}
		for _, c := range b[size/2:] {
			sum += int(c)
		}
		return nil
	}
	if err := read(); !errors.Is(err, errCutShort) || !errors.Is(err, ErrTruncated) {
		t.Fatalf("reading a truncated mapping: error %v (sum %d), want %v", err, sum, errCutShort)
	}
}

// readingMapped turns only faults, or any panic while the mapped file is cut short, into
// errors: any other panic goes on.
func TestReadingMappedRepanics(t *testing.T) {
	f, _ := openFileOf(t, []byte("PK\x03\x04"))
	intact := &mappedFile{data: make([]byte, 4), file: f}
	for _, m := range []*mappedFile{nil, intact} {
		func() {
			defer func() {
				if r := recover(); r != "not a fault" {
					t.Errorf("recovered %v, want the original panic", r)
				}
			}()
			func() (err error) {
				defer readingMapped(m)(&err)
				panic("not a fault")
			}()
			t.Error("the panic did not reach the caller")
		}()
	}
	cut := &mappedFile{data: make([]byte, 8), file: f} // the file has 4 bytes
	err := func() (err error) {
		defer readingMapped(cut)(&err)
		panic("any panic")
	}()
	if !errors.Is(err, errCutShort) {
		t.Errorf("a panic reading a file cut short: error %v, want %v", err, errCutShort)
	}
}

func TestMapSourceOnlyFiles(t *testing.T) {
	if m, _ := mapSource(bytes.NewReader([]byte("PK")), 2); m != nil {
		t.Error("mapSource mapped a reader that is not a file")
	}
	f, _ := openFileOf(t, []byte("PK"))
	if m, _ := mapSource(f, 100); m != nil {
		t.Error("mapSource mapped a file shorter than the size it was opened with")
	}
}

// openFileOf writes data to a new file, opens it for the rest of the test and returns it
// and its path.
func openFileOf(t *testing.T, data []byte) (*os.File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}
