package pickle

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// TestReadZipDirectoryAgreesWithArchiveZip reads archives made three ways, with and without
// zip64 fields, and wants the same records, sizes, CRCs and data offsets as archive/zip.
func TestReadZipDirectoryAgreesWithArchiveZip(t *testing.T) {
	stdlib := func(n int, comment string) []byte {
		var buf bytes.Buffer
		w := zip.NewWriter(&buf)
		for i := range n {
			f, err := w.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("top/data/%d", i), Method: zip.Store})
			if err != nil {
				t.Fatal(err)
			}
			f.Write(bytes.Repeat([]byte{byte(i)}, i%100))
		}
		if err := w.SetComment(comment); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	ours := func(zip64Limit int64) []byte {
		var buf bytes.Buffer
		writeTestZip(t, &buf, zip64Limit, testRecords())
		return buf.Bytes()
	}
	tests := []struct {
		name string
		file []byte
	}{
		{"archive/zip", stdlib(10, "")},
		{"archive/zip with a comment", stdlib(3, "a comment that ends in PK\x05\x06")},
		{"archive/zip, 70,000 records (zip64 end record)", stdlib(70_000, "")},
		{"torch layout", ours(0)},
		{"torch layout, zip64 fields in every record", ours(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := zip.NewReader(bytes.NewReader(tt.file), int64(len(tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := readZipDirectory(bytes.NewReader(tt.file), int64(len(tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want.File) {
				t.Fatalf("%d records, archive/zip reads %d", len(got), len(want.File))
			}
			for i, f := range want.File {
				e := got[i]
				off, err := dataOffset(bytes.NewReader(tt.file), &e, int64(len(tt.file)), new([]byte))
				if err != nil {
					t.Fatalf("%s: %v", e.name, err)
				}
				wantOff, _ := f.DataOffset()
				if e.name != f.Name || e.usize != f.UncompressedSize64 || e.csize != f.CompressedSize64 ||
					e.crc32 != f.CRC32 || e.method != f.Method || e.flags != f.Flags || off != wantOff || !e.sameName {
					t.Fatalf("record %d: got %q %d/%d crc %08x method %d flags %x at %d; archive/zip: %q %d/%d crc %08x method %d flags %x at %d",
						i, e.name, e.usize, e.csize, e.crc32, e.method, e.flags, off,
						f.Name, f.UncompressedSize64, f.CompressedSize64, f.CRC32, f.Method, f.Flags, wantOff)
				}
			}
		})
	}
}

// TestReadZipDirectoryRefuses: damaged directories give the codec's errors, never a panic.
func TestReadZipDirectoryRefuses(t *testing.T) {
	var buf bytes.Buffer
	writeTestZip(t, &buf, 0, testRecords())
	good := buf.Bytes()
	end := bytes.LastIndex(good, []byte("PK\x05\x06"))
	patched := func(at int, b ...byte) []byte {
		f := bytes.Clone(good)
		copy(f[at:], b)
		return f
	}
	tests := []struct {
		name string
		file []byte
		want error
	}{
		{"shorter than an end record", good[:10], ErrTruncated},
		{"cut before its end record", good[:end], ErrCorrupt},
		{"end record only", good[end:], ErrCorrupt},
		{"directory past the end", patched(end+16, 0xff, 0xff, 0xff, 0x7f), ErrCorrupt},
		{"more records than fit", patched(end+10, 0xfe, 0xff), ErrCorrupt},
		{"comment longer than the file", patched(end+20, 1, 0), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readZipDirectory(bytes.NewReader(tt.file), int64(len(tt.file)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}
