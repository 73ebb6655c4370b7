package pickle

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func fromBytes(t *testing.T, tree func() (checkpoint.Value, map[*checkpoint.Storage][]byte)) *checkpoint.Checkpoint {
	t.Helper()
	root, data := tree()
	c, err := checkpoint.FromBytes(root, data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func training(plainOnly bool) func() (checkpoint.Value, map[*checkpoint.Storage][]byte) {
	return func() (checkpoint.Value, map[*checkpoint.Storage][]byte) { return trainingTree(plainOnly) }
}

// A checkpoint given the records torch wrote comes out byte for byte as torch wrote it.
func TestWriteMatchesTorch(t *testing.T) {
	for _, golden := range []string{"state_dict_torch1.pt", "state_dict_torch2.pt"} {
		t.Run(golden, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", "write", golden))
			if err != nil {
				t.Fatal(err)
			}
			zr, err := zip.NewReader(bytes.NewReader(want), int64(len(want)))
			if err != nil {
				t.Fatal(err)
			}
			c := fromBytes(t, stateDictTree)
			arch := &Archive{Protocol: 2}
			c.Format, c.Container = FormatZip, arch
			beforeData := true
			for _, f := range zr.File {
				name := strings.TrimPrefix(f.Name, "archive/")
				if name == "data.pkl" {
					continue
				}
				if strings.HasPrefix(name, "data/") {
					beforeData = false
					continue
				}
				rc, _ := f.Open()
				data, _ := io.ReadAll(rc)
				arch.Records = append(arch.Records, NewRecord(name, data, beforeData))
			}
			var buf bytes.Buffer
			n, err := Write(&buf, c, nil)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(buf.Len()) {
				t.Errorf("WriteTo returned %d, wrote %d", n, buf.Len())
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("archive differs from torch's (%d bytes, want %d)", buf.Len(), len(want))
			}
		})
	}
}

func zipNames(t *testing.T, path string) []string {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if off, _ := f.DataOffset(); off%64 != 0 {
			t.Errorf("%s: data at %d", f.Name, off)
		}
	}
	return names
}

// Records past the zip64 limit (lowered here) carry zip64 fields that Python's zipfile and
// archive/zip follow. (torch's reader cannot be shown such a file: it rightly rejects a
// 0xFFFFFFFF offset in an archive smaller than 4 GiB; TestSaveHuge covers torch.)
func TestSaveZip64Layout(t *testing.T) {
	c := fromBytes(t, training(true))
	var buf bytes.Buffer
	z := newZipWriter(&buf)
	z.zip64Limit = 200
	if _, err := writeZip(c, nil, z, "z64", nil); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var recs []testRecord
	for _, f := range zr.File {
		rc, _ := f.Open()
		data, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, testRecord{f.Name, data})
		if len(f.Extra) == 0 {
			t.Errorf("%s: no zip64 field", f.Name)
		}
	}
	checkZipLayout(t, buf.Bytes(), recs)
	checkPythonZip(t, buf.Bytes(), recs)
}

// fileCheckpoint reopens a saved archive the way the reader presents one: storages at
// their data offsets in the file, CRCs from the zip directory, other records kept.
func fileCheckpoint(t *testing.T, path string, tree func() (checkpoint.Value, map[*checkpoint.Storage][]byte)) *checkpoint.Checkpoint {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, _ := f.Stat()
	zr, err := zip.NewReader(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	root, _ := tree()
	byKey := map[string]*checkpoint.Storage{}
	for _, s := range checkpoint.Storages(root) {
		byKey[s.Key] = s
	}
	c := checkpoint.New(root, f, fi.Size(), path)
	c.SetCloser(f)
	arch := &Archive{Protocol: 2}
	c.Format, c.Container = FormatZip, arch
	beforeData := true
	for _, zf := range zr.File {
		_, name, _ := strings.Cut(zf.Name, "/")
		off, _ := zf.DataOffset()
		switch {
		case name == "data.pkl":
		case strings.HasPrefix(name, "data/"):
			beforeData = false
			s := byKey[strings.TrimPrefix(name, "data/")]
			s.Offset, s.CRC32, s.HasCRC = off, zf.CRC32, true
		default:
			arch.Records = append(arch.Records, Record{Name: name, BeforeData: beforeData, offset: off,
				size: int64(zf.UncompressedSize64), crc32: zf.CRC32})
		}
	}
	return c
}

// Saving a file-backed checkpoint copies storages file to file and reproduces the input.
func TestSaveFromFile(t *testing.T) {
	dir1, dir2 := t.TempDir(), t.TempDir()
	in, out := filepath.Join(dir1, "m.pt"), filepath.Join(dir2, "m.pt")
	if err := Save(in, fromBytes(t, training(false)), nil); err != nil {
		t.Fatal(err)
	}
	c := fileCheckpoint(t, in, training(false))
	if err := Save(out, c, nil); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(in)
	b, _ := os.ReadFile(out)
	if !bytes.Equal(a, b) {
		t.Errorf("re-saved file differs from its input")
	}
	var buf bytes.Buffer // the same checkpoint through a plain writer takes the buffered path
	if _, err := write(c, nil, &buf, "m", nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), a) {
		t.Errorf("Write to a buffer differs from Save")
	}
}

func TestSaveCorruptSource(t *testing.T) {
	in := filepath.Join(t.TempDir(), "m.pt")
	if err := Save(in, fromBytes(t, stateDictTree), nil); err != nil {
		t.Fatal(err)
	}
	c := fileCheckpoint(t, in, stateDictTree)
	checkpoint.Storages(c.Root)[0].CRC32 ^= 1
	if _, err := Write(io.Discard, c, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("CRC mismatch: err = %v, want ErrCorrupt", err)
	}
	checkpoint.Storages(c.Root)[1].Len = 1 << 40
	if _, err := Write(io.Discard, c, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("storage beyond the file: err = %v, want ErrCorrupt", err)
	}
}

// Two distinct storages with one key would be two records of one name; one storage that
// two tensors share is one record. Keys that are numbers and keys that are not are told
// apart differently (distinctStorages), so both are tried.
func TestSaveStorageKeys(t *testing.T) {
	for _, key := range []string{"0", "7", "w"} {
		t.Run(key, func(t *testing.T) {
			a := &checkpoint.Storage{Kind: checkpoint.Float32, Key: key, Location: "cpu", Len: 1}
			b := &checkpoint.Storage{Kind: checkpoint.Float32, Key: key, Location: "cpu", Len: 1}
			other := &checkpoint.Storage{Kind: checkpoint.Float32, Key: key + "1", Location: "cpu", Len: 1}
			distinct := &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "a", Value: tensor(a, 0, nil, nil)}, {Key: "b", Value: tensor(b, 0, nil, nil)}}}
			c, err := checkpoint.FromBytes(distinct, map[*checkpoint.Storage][]byte{a: f32s(1), b: f32s(2)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Write(io.Discard, c, nil); err == nil || !strings.Contains(err.Error(), "data/"+key) {
				t.Errorf("two storages with key %s: err = %v", key, err)
			}
			shared := &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "a", Value: tensor(a, 0, nil, nil)},
				{Key: "o", Value: tensor(other, 0, nil, nil)}, {Key: "b", Value: tensor(a, 0, nil, nil)}}}
			c, err = checkpoint.FromBytes(shared, map[*checkpoint.Storage][]byte{a: f32s(1), other: f32s(3)})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := Write(&buf, c, nil); err != nil {
				t.Fatalf("one storage shared by two tensors: %v", err)
			}
			zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			if err != nil {
				t.Fatal(err)
			}
			var data []string
			for _, f := range zr.File {
				if _, rel, _ := strings.Cut(f.Name, "/"); strings.HasPrefix(rel, "data/") {
					data = append(data, rel)
				}
			}
			if want := []string{"data/" + key, "data/" + key + "1"}; !slices.Equal(data, want) {
				t.Errorf("storage records %v, want %v", data, want)
			}
		})
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestSaveTarget(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.pt")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := fromBytes(t, stateDictTree)

	if err := Save(path, c, nil); !errors.Is(err, ErrExists) {
		t.Errorf("Save over a file: err = %v, want ErrExists", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Errorf("refused Save changed the file")
	}

	if err := Save(path, c, &SaveOptions{Force: true}); err != nil {
		t.Fatalf("Save with Force: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("replaced file has mode %v, want the old 0600", fi.Mode().Perm())
	}
	if names := listDir(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v", names)
	}

	// The checkpoint read from path may not be saved over it, by any name.
	c.Name = path
	link := filepath.Join(dir, "link.pt")
	if err := os.Link(path, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, link, filepath.Join(dir, ".", "out.pt")} {
		if err := Save(p, c, &SaveOptions{Force: true}); !errors.Is(err, ErrSameFile) {
			t.Errorf("Save(%s) over the input: err = %v, want ErrSameFile", p, err)
		}
	}

	newPath := filepath.Join(dir, "new.pt")
	if err := Save(newPath, c, nil); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(newPath); fi.Mode().Perm() != 0o644 {
		t.Errorf("new file has mode %v, want 0644", fi.Mode().Perm())
	}
}

// A failed Save leaves neither a temporary file nor a changed target.
func TestSaveFailureCleansUp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.pt")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := fromBytes(t, stateDictTree)
	checkpoint.Storages(c.Root)[1].Offset = 1 << 30 // past the end of the in-memory source
	if err := Save(path, c, &SaveOptions{Force: true}); err == nil {
		t.Fatal("Save succeeded")
	}
	if names := listDir(t, dir); len(names) != 1 || names[0] != "out.pt" {
		t.Errorf("directory holds %v after a failed Save", names)
	}
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Errorf("failed Save changed the target")
	}
	if err := Save(filepath.Join(dir, "missing", "x.pt"), c, nil); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
}

func TestArchiveName(t *testing.T) {
	for in, want := range map[string]string{
		"out.pt": "out", "model.tar.pth": "model.tar", "noext": "noext", ".pt": "archive", "": "archive",
	} {
		if got := archiveName(in); got != want {
			t.Errorf("archiveName(%q) = %q, want %q", in, got, want)
		}
	}
}

// bigCheckpoint is a checkpoint with one storage of n float32 elements, kept in a file
// (sparse: no disk blocks) when file is set, in memory otherwise.
func bigCheckpoint(t *testing.T, n int64, file bool) *checkpoint.Checkpoint {
	t.Helper()
	s := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Location: "cpu", Len: n}
	root := &checkpoint.OrderedDict{Entries: []checkpoint.Entry{{Key: "w", Value: tensor(s, 0, []int64{n}, []int64{1})}}}
	if !file {
		c, err := checkpoint.FromBytes(root, map[*checkpoint.Storage][]byte{s: make([]byte, 4*n)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "src"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(4 * n); err != nil {
		t.Fatal(err)
	}
	crc := crc32.NewIEEE()
	zeros := make([]byte, 1<<20)
	for left := 4 * n; left > 0; left -= int64(len(zeros)) {
		crc.Write(zeros[:min(left, int64(len(zeros)))])
	}
	s.CRC32, s.HasCRC = crc.Sum32(), true
	return checkpoint.New(root, f, 4*n, f.Name())
}

// Storage bytes do not pile up in memory, and Progress counts every byte.
func TestSaveMemoryAndProgress(t *testing.T) {
	for _, file := range []bool{true, false} {
		t.Run(fmt.Sprintf("file=%v", file), func(t *testing.T) {
			n := int64(4 << 20) // 16 MiB of float32 in memory
			if file {
				n = 18 << 20 // 72 MiB of float32 in a sparse file: two copy chunks
			}
			c := bigCheckpoint(t, n, file)
			var calls int
			var last, total int64
			opts := &SaveOptions{Progress: func(done, tot int64) {
				if done < last {
					t.Errorf("progress went back from %d to %d", last, done)
				}
				calls, last, total = calls+1, done, tot
			}}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			path := filepath.Join(t.TempDir(), "big.pt")
			if err := Save(path, c, opts); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
				t.Errorf("Save allocated %d bytes for a %d-byte storage", alloc, 4*n)
			}
			if last != total || calls < 4 {
				t.Errorf("progress: %d calls, ended at %d of %d", calls, last, total)
			}
			fi, _ := os.Stat(path)
			if fi.Size() < 4*n {
				t.Errorf("saved %d bytes", fi.Size())
			}
			zr, err := zip.OpenReader(path)
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			for _, f := range zr.File {
				rc, _ := f.Open()
				if _, err := io.Copy(io.Discard, rc); err != nil { // checks the CRC
					t.Errorf("%s: %v", f.Name, err)
				}
			}
		})
	}
}

func ExampleSave() {
	s := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Location: "cpu", Len: 2}
	sd := &checkpoint.OrderedDict{Entries: []checkpoint.Entry{
		{Key: "fc.bias", Value: &checkpoint.Tensor{Storage: s, Size: []int64{2}, Stride: []int64{1}}},
	}}
	c, err := checkpoint.FromBytes(sd, map[*checkpoint.Storage][]byte{s: make([]byte, 8)})
	if err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "bias.pt")
	if err := Save(path, c, nil); err != nil {
		panic(err)
	}
	err = Save(path, c, nil) // again: the file exists now
	fmt.Println(errors.Is(err, ErrExists))
	zr, _ := zip.OpenReader(path)
	defer zr.Close()
	for _, f := range zr.File {
		fmt.Println(f.Name)
	}
	// Output:
	// true
	// bias/data.pkl
	// bias/byteorder
	// bias/data/0
	// bias/version
}

// Opening a file torch wrote and saving it again reproduces the file byte for byte.
func TestOpenSaveRoundTrip(t *testing.T) {
	for _, golden := range []string{"state_dict_torch1.pt", "state_dict_torch2.pt"} {
		t.Run(golden, func(t *testing.T) {
			path := filepath.Join("testdata", "write", golden)
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			out := filepath.Join(t.TempDir(), "archive.pt") // torch named the folder "archive"
			if err := Save(out, c, nil); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
				t.Errorf("saved file differs from the one opened")
			}
		})
	}
}
