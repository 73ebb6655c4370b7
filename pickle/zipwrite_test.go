package pickle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/pt2conv/pt2conv/internal/torchtest"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type testRecord struct {
	name string
	data []byte
}

func testRecords() []testRecord {
	var recs []testRecord
	for i, size := range []int{0, 1, 3, 59, 63, 64, 65, 127, 1000, 4099} {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(i*31 + j)
		}
		recs = append(recs, testRecord{fmt.Sprintf("top/%s/%d", strings.Repeat("n", i*7), size), data})
	}
	return recs
}

// writeTestZip writes recs, alternately through the buffer and straight to the raw
// writer as storage copies do.
func writeTestZip(t *testing.T, w io.Writer, zip64Limit int64, recs []testRecord) int64 {
	t.Helper()
	z := newZipWriter(w)
	if zip64Limit > 0 {
		z.zip64Limit = zip64Limit
	}
	for i, r := range recs {
		if err := z.create(r.name, int64(len(r.data))); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := z.Write(r.data); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := z.Flush(); err != nil {
				t.Fatal(err)
			}
			n, err := w.Write(r.data)
			if err != nil {
				t.Fatal(err)
			}
			z.wroteRaw(int64(n))
		}
		if err := z.closeRecord(crc32.ChecksumIEEE(r.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return z.off
}

// checkZipLayout checks what torch's writer guarantees and readers rely on: stored records
// in the given order, flag 0x808, data aligned to 64 bytes, a data descriptor after the
// data, a padding field only in the local header, and the zip64 end records.
func checkZipLayout(t *testing.T, archive []byte, recs []testRecord) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatalf("archive/zip cannot read the archive: %v", err)
	}
	if len(zr.File) != len(recs) {
		t.Fatalf("%d records, want %d", len(zr.File), len(recs))
	}
	for i, f := range zr.File {
		r := recs[i]
		if f.Name != r.name || f.Method != zip.Store || f.Flags != zipFlags {
			t.Errorf("record %d: name %q method %d flags %#x; want %q, stored, 0x808",
				i, f.Name, f.Method, f.Flags, r.name)
		}
		if len(f.Extra) != 0 && binary.LittleEndian.Uint16(f.Extra) != zip64ExtraID {
			t.Errorf("%s: central extra field %x; only zip64's belongs there", f.Name, f.Extra)
		}
		off, err := f.DataOffset()
		if err != nil {
			t.Fatal(err)
		}
		if off%64 != 0 {
			t.Errorf("%s: data at %d, not a multiple of 64", f.Name, off)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc) // checks the CRC
		if err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
		if !bytes.Equal(got, r.data) {
			t.Errorf("%s: data differs", f.Name)
		}
		desc := archive[off+int64(len(r.data)):]
		if sig := binary.LittleEndian.Uint32(desc); sig != sigDataDescriptor {
			t.Errorf("%s: no data descriptor after the data", f.Name)
		}
		if crc := binary.LittleEndian.Uint32(desc[4:]); crc != crc32.ChecksumIEEE(r.data) {
			t.Errorf("%s: descriptor CRC %08x", f.Name, crc)
		}
	}
	end := archive[len(archive)-22-20-56:]
	if binary.LittleEndian.Uint32(end) != sigZip64End || binary.LittleEndian.Uint32(end[56:]) != sigZip64Locator {
		t.Errorf("no zip64 end record and locator before the end record")
	}
}

// localExtra returns the extra field of the local header at off.
func localExtra(archive []byte, off int64) []byte {
	h := archive[off:]
	n, e := int(binary.LittleEndian.Uint16(h[26:])), int(binary.LittleEndian.Uint16(h[28:]))
	return h[30+n : 30+n+e]
}

func TestZipLayout(t *testing.T) {
	recs := testRecords()
	for _, limit := range []int64{0, 2000, 1} {
		t.Run(fmt.Sprintf("zip64Limit=%d", limit), func(t *testing.T) {
			var buf bytes.Buffer
			n := writeTestZip(t, &buf, limit, recs)
			if n != int64(buf.Len()) {
				t.Errorf("writer counted %d bytes, wrote %d", n, buf.Len())
			}
			archive := buf.Bytes()
			checkZipLayout(t, archive, recs)
			checkPythonZip(t, archive, recs)

			zr, _ := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
			for _, f := range zr.File {
				off := localHeaderOffset(t, archive, f.Name)
				extra := localExtra(archive, off)
				needs64 := limit > 0 && (off >= limit || int64(f.UncompressedSize64) >= limit)
				if has64 := binary.LittleEndian.Uint16(extra) == zip64ExtraID; has64 != needs64 {
					t.Errorf("%s at %d: local zip64 field %v, want %v", f.Name, off, has64, needs64)
				}
				if !bytes.Contains(extra, []byte("FB")) {
					t.Errorf("%s: no FB padding field", f.Name)
				}
			}
		})
	}
}

// localHeaderOffset finds a record's local header by its name.
func localHeaderOffset(t *testing.T, archive []byte, name string) int64 {
	t.Helper()
	for off := 0; off+30 < len(archive); {
		i := bytes.Index(archive[off:], []byte("PK\x03\x04"))
		if i < 0 {
			break
		}
		off += i
		n := int(binary.LittleEndian.Uint16(archive[off+26:]))
		if string(archive[off+30:off+30+n]) == name {
			return int64(off)
		}
		off += 4
	}
	t.Fatalf("no local header for %s", name)
	return 0
}

// checkPythonZip lets Python's zipfile test the archive, when a python3 is at hand.
func checkPythonZip(t *testing.T, archive []byte, recs []testRecord) {
	t.Helper()
	python, err := exec.LookPath(envOr("PT2CONV_PYTHON", "python3"))
	if err != nil {
		if torchtest.Required() {
			t.Fatalf("python3 not found (%s=1 requires it): %v", torchtest.EnvRequireTorch, err)
		}
		t.Logf("python3 not found, zipfile check skipped")
		return
	}
	path := filepath.Join(t.TempDir(), "a.zip")
	if err := os.WriteFile(path, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	const script = `
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
bad = z.testzip()
assert bad is None, "bad record %s" % bad
for i in z.infolist():
    assert i.compress_type == zipfile.ZIP_STORED and i.flag_bits == 0x808, i
print(" ".join("%s:%d" % (i.filename, i.file_size) for i in z.infolist()))
`
	out, err := exec.Command(python, "-c", script, path).CombinedOutput()
	if err != nil {
		t.Fatalf("python zipfile: %v\n%s", err, out)
	}
	var want []string
	for _, r := range recs {
		want = append(want, fmt.Sprintf("%s:%d", r.name, len(r.data)))
	}
	if got := strings.TrimSpace(string(out)); got != strings.Join(want, " ") {
		t.Errorf("python zipfile lists\n%s\nwant\n%s", got, strings.Join(want, " "))
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func TestZipWriterMisuse(t *testing.T) {
	z := newZipWriter(io.Discard)
	if err := z.closeRecord(0); err == nil {
		t.Error("closeRecord without a record succeeded")
	}
	if err := z.create("a", 2); err != nil {
		t.Fatal(err)
	}
	if err := z.create("b", 0); err == nil {
		t.Error("create with a record open succeeded")
	}
	if err := z.Close(); err == nil {
		t.Error("Close with a record open succeeded")
	}
	z.Write([]byte{1})
	if err := z.closeRecord(0); err == nil {
		t.Error("closeRecord after 1 of 2 bytes succeeded")
	}
}

func TestZip64Extra(t *testing.T) {
	// As torch writes them for a 4 GiB + 100 byte storage and the records after it.
	tests := []struct {
		size, offset int64
		local        bool
		want         string
	}{
		{4<<30 + 100, 604, true, "0100" + "1000" + "6400000001000000" + "0000000000000000"},
		{4<<30 + 100, 604, false, "0100" + "1000" + "6400000001000000" + "6400000001000000"},
		{12, 4294968124, true, "0100" + "0800" + "3c03000001000000"},
		{12, 4294968124, false, "0100" + "0800" + "3c03000001000000"},
		{5 << 30, 6 << 30, false, "0100" + "1800" + "0000004001000000" + "0000004001000000" + "0000008001000000"},
	}
	for _, tt := range tests {
		if got := fmt.Sprintf("%x", zip64Extra(tt.size, tt.offset, 0xFFFFFFFF, tt.local)); got != tt.want {
			t.Errorf("zip64Extra(%d, %d, local %v) = %s, want %s", tt.size, tt.offset, tt.local, got, tt.want)
		}
	}
}
