package pickle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"runtime"
	"strings"
	"testing"
)

// Hostile and broken inputs: each must be refused quickly with a classified error, and
// memory must follow what the file holds, not what it claims.

// tensorPickle is a protocol 2 state_dict {"w": tensor} whose storage "0" is a torch.<class>
// of numel elements; the tensor views its first element.
func tensorPickle(class string, numel uint64) []byte {
	var b bytes.Buffer
	b.WriteString("\x80\x02ccollections\nOrderedDict\n)RX\x01\x00\x00\x00w")
	b.WriteString("ctorch._utils\n_rebuild_tensor_v2\n(")
	b.WriteString("(X\x07\x00\x00\x00storagectorch\n" + class + "\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu")
	// LONG1 in the fewest bytes that keep the number positive, as Python writes it.
	var n [9]byte
	binary.LittleEndian.PutUint64(n[:], numel)
	size := 9
	for size > 1 && n[size-1] == 0 && n[size-2] < 0x80 {
		size--
	}
	b.WriteString("\x8a")
	b.WriteByte(byte(size))
	b.Write(n[:size])
	b.WriteString("tQK\x00K\x01\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRs.")
	return b.Bytes()
}

// zipRecordSpec is one record of a test archive.
type zipRecordSpec struct {
	name   string
	data   []byte
	method uint16
}

// buildZip writes an archive whose records are given relative to the top folder "archive".
func buildZip(t testing.TB, records ...zipRecordSpec) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, r := range records {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/" + r.name, Method: r.method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(r.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkpointZip is a minimal valid archive around pkl with one storage record.
func checkpointZip(t testing.TB, pkl, storage []byte) []byte {
	return buildZip(t,
		zipRecordSpec{name: "data.pkl", data: pkl},
		zipRecordSpec{name: "data/0", data: storage},
		zipRecordSpec{name: "version", data: []byte("3\n")})
}

// patchCentral rewrites a field of the central directory entry of the record whose name
// ends in suffix; off is the field's offset inside the entry.
func patchCentral(t testing.TB, archive []byte, suffix string, off int, value uint32) []byte {
	t.Helper()
	out := bytes.Clone(archive)
	for i := 0; i+46 <= len(out); i++ {
		if string(out[i:i+4]) != "PK\x01\x02" {
			continue
		}
		nameLen := int(binary.LittleEndian.Uint16(out[i+28:]))
		if strings.HasSuffix(string(out[i+46:i+46+nameLen]), suffix) {
			binary.LittleEndian.PutUint32(out[i+off:], value)
			return out
		}
	}
	t.Fatalf("no central directory entry for %q", suffix)
	return nil
}

// setEncrypted sets the "encrypted" flag of every local and central header.
func setEncrypted(archive []byte) []byte {
	out := bytes.Clone(archive)
	for i := 0; i+10 <= len(out); i++ {
		switch string(out[i : i+4]) {
		case "PK\x03\x04":
			out[i+6] |= 1
		case "PK\x01\x02":
			out[i+8] |= 1
		}
	}
	return out
}

func TestValidTestArchive(t *testing.T) {
	data := checkpointZip(t, tensorPickle("FloatStorage", 1), make([]byte, 4))
	c, err := NewReader(bytes.NewReader(data), int64(len(data)), "ok.pt")
	if err != nil {
		t.Fatalf("the test archive itself is refused: %v", err)
	}
	if ts := checkpoint.Tensors(c.Root); len(ts) != 1 || ts[0].Tensor.Storage.Len != 1 {
		t.Fatalf("tensors = %+v", ts)
	}
}

func TestHostileArchives(t *testing.T) {
	vgg := fixtureFiles(t)["vgg_tiny.pt"]
	legacy := fixtureFiles(t)["vgg_tiny_legacy.pt"]
	four := make([]byte, 4)
	tests := []struct {
		name string
		data []byte
		want error // a sentinel, or nil for a *GlobalError
	}{
		{"empty file", nil, ErrNotCheckpoint},
		{"random bytes", []byte("\x13\x37 not a checkpoint at all"), ErrNotCheckpoint},
		{"zip header only", []byte("PK\x03\x04"), ErrTruncated},
		{"truncated archive", vgg[:len(vgg)/2], ErrCorrupt},
		{"storage of 2^62 elements", checkpointZip(t, tensorPickle("FloatStorage", 1<<62), four), ErrLimit},
		{"storage of 2^63 bytes", checkpointZip(t, tensorPickle("DoubleStorage", 1<<60), four), ErrLimit},
		{"storage larger than its record", checkpointZip(t, tensorPickle("FloatStorage", 1<<40), four), ErrCorrupt},
		{"storage smaller than its record", checkpointZip(t, tensorPickle("FloatStorage", 1), make([]byte, 8)), ErrCorrupt},
		{"storage without a record", buildZip(t, zipRecordSpec{name: "data.pkl", data: tensorPickle("FloatStorage", 1)}), ErrCorrupt},
		{"no data.pkl", buildZip(t, zipRecordSpec{name: "data/0", data: four}, zipRecordSpec{name: "version", data: []byte("3\n")}), ErrNotCheckpoint},
		{"compressed records", buildZip(t,
			zipRecordSpec{name: "data.pkl", data: tensorPickle("FloatStorage", 1), method: zip.Deflate},
			zipRecordSpec{name: "data/0", data: four, method: zip.Deflate}), ErrUnsupported},
		{"encrypted records", setEncrypted(checkpointZip(t, tensorPickle("FloatStorage", 1), four)), ErrUnsupported},
		{"duplicate records", buildZip(t,
			zipRecordSpec{name: "data.pkl", data: tensorPickle("FloatStorage", 1)},
			zipRecordSpec{name: "data/0", data: four},
			zipRecordSpec{name: "data/0", data: four}), ErrCorrupt},
		{"record sizes that disagree", patchCentral(t, checkpointZip(t, tensorPickle("FloatStorage", 1), four), "data/0", 24, 1<<31), ErrCorrupt},
		{"record beyond the file's end", patchCentral(t, patchCentral(t, checkpointZip(t, tensorPickle("FloatStorage", 1), four), "data/0", 20, 1<<20), "data/0", 24, 1<<20), ErrTruncated},
		{"records under two folders", func() []byte {
			var buf bytes.Buffer
			zw := zip.NewWriter(&buf)
			for _, n := range []string{"a/data.pkl", "b/data/0"} {
				w, _ := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store})
				w.Write(four)
			}
			zw.Close()
			return buf.Bytes()
		}(), ErrNotCheckpoint},
		{"TorchScript archive", buildZip(t,
			zipRecordSpec{name: "data.pkl", data: []byte("\x80\x02N.")},
			zipRecordSpec{name: "constants.pkl", data: []byte("\x80\x02).")},
			zipRecordSpec{name: "code/__torch__.py", data: []byte("class M(Module):\n  pass\n")}), ErrTorchScript},
		{"BINBYTES8 claiming 2^40 bytes", checkpointZip(t, []byte("\x80\x02\x8e\x00\x00\x00\x00\x00\x01\x00\x00."), four), ErrTruncated},
		{"os.system", checkpointZip(t, []byte("\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R."), four), nil},
		{"legacy with another magic number", append([]byte("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x18."), legacy[15:]...), ErrNotCheckpoint},
		{"legacy with another protocol version", append(append(bytes.Clone(legacy[:15]), "\x80\x02M\xea\x03."...), legacy[21:]...), ErrUnsupported},
		{"legacy cut in its storages", legacy[:len(legacy)-10], ErrTruncated},
		{"legacy cut in its pickles", legacy[:200], ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c, err := NewReader(bytes.NewReader(tt.data), int64(len(tt.data)), "hostile.pt")
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("accepted: %v", c)
			}
			if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(16<<20+400*len(tt.data)); got > limit {
				t.Errorf("allocated %d bytes to refuse a %d-byte file (limit %d)", got, len(tt.data), limit)
			}
			if !strings.HasPrefix(err.Error(), "hostile.pt: ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q should be one line starting with the file name", err)
			}
			if tt.want == nil {
				var ge *GlobalError
				if !errors.As(err, &ge) {
					t.Fatalf("error %v is not a *GlobalError", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v does not wrap %v", err, tt.want)
			}
		})
	}
}

func TestRefusedGlobals(t *testing.T) {
	tests := []struct {
		name, pkl, module, global string
	}{
		{"os.system via GLOBAL", "\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.", "os", "system"},
		{"posix.system via STACK_GLOBAL", "\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.", "posix", "system"},
		{"builtins.eval via STACK_GLOBAL", "\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x011\x85R.", "builtins", "eval"},
		{"subprocess.Popen via STACK_GLOBAL", "\x80\x04\x8c\x0asubprocess\x8c\x05Popen\x93\x8c\x02id\x85R.", "subprocess", "Popen"},
		{"a global never called", "\x80\x02c__builtin__\ngetattr\n.", "__builtin__", "getattr"},
		{"a global inside a tensor's hooks", "\x80\x02]cos\nremove\na.", "os", "remove"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeRawPickle([]byte(tt.pkl), DefaultLimits)
			var ge *GlobalError
			if !errors.As(err, &ge) {
				t.Fatalf("error %v is not a *GlobalError", err)
			}
			if ge.Module != tt.module || ge.Name != tt.global {
				t.Errorf("refused %s.%s, want %s.%s", ge.Module, ge.Name, tt.module, tt.global)
			}
		})
	}
}

func TestPickleLimits(t *testing.T) {
	small := Limits{MaxPickleBytes: 1 << 20, MaxStack: 100, MaxMarks: 10, MaxMemo: 10, MaxLine: 32, MaxDepth: 20, MaxObjects: 1000}
	rep := func(s string, n int) string { return strings.Repeat(s, n) }
	tests := []struct {
		name string
		pkl  string
		lim  Limits
		want error
	}{
		{"nesting by MARK", "\x80\x02" + rep("(", 11) + rep("l", 11) + ".", small, ErrLimit},
		{"nesting by APPEND", "\x80\x02" + rep("]", 30) + rep("a", 29) + ".", small, ErrLimit},
		{"nesting 200000 deep", "\x80\x02" + rep("]", 200000) + rep("a", 199999) + ".", DefaultLimits, ErrLimit},
		{"MARKs 200000 deep", "\x80\x02" + rep("(", 200000) + rep("l", 200000) + ".", DefaultLimits, ErrLimit},
		{"shared 2^49 times", sharedLists(50), DefaultLimits, ErrLimit},
		{"shared within the limit", sharedLists(9), small, nil},
		{"shared beyond the limit", sharedLists(10), small, ErrLimit},
		{"global with a newline", "\x80\x04\x8c\x03os\n\x8c\x06system\x93.", DefaultLimits, ErrCorrupt},
		{"stack", "\x80\x02(" + rep("N", 101) + "l.", small, ErrLimit},
		{"stack by DUP", "\x80\x02N" + rep("2", 100) + ".", small, ErrLimit},
		{"memo", "\x80\x04N" + rep("\x94", 11) + ".", small, ErrLimit},
		{"text line", "\x80\x02V" + rep("x", 33) + "\n.", small, ErrLimit},
		{"GLOBAL name", "\x80\x02c" + rep("m", 40) + "\nx\n.", small, ErrLimit},
		{"pickle size", "\x80\x02" + rep("N0", 600000) + "N.", small, ErrLimit},
		{"string beyond the pickle", "\x80\x02X\xff\x00\x00\x00abc.", small, ErrTruncated},
		{"BINBYTES8 of 2^40", "\x80\x02\x8e\x00\x00\x00\x00\x00\x01\x00\x00.", DefaultLimits, ErrTruncated},
		{"BINUNICODE8 of 2^63", "\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x80.", DefaultLimits, ErrTruncated},
		{"FRAME of 2^62", "\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x40N.", DefaultLimits, ErrTruncated},
		{"LONG4 of 2^31", "\x80\x02\x8b\x00\x00\x00\x80.", DefaultLimits, ErrTruncated},
		{"GET of a slot never PUT", "\x80\x02h\x05.", DefaultLimits, ErrCorrupt},
		{"no STOP", "\x80\x02N", DefaultLimits, ErrTruncated},
		{"bytes after STOP", "\x80\x02N.junk", DefaultLimits, ErrCorrupt},
		{"STOP on an empty stack", "\x80\x02.", DefaultLimits, ErrCorrupt},
		{"protocol 6", "\x80\x06N.", DefaultLimits, ErrUnsupported},
		{"INST", "\x80\x02(ios\nsystem\n.", DefaultLimits, ErrUnsupported},
		{"unknown opcode", "\x80\x02\xff.", DefaultLimits, ErrCorrupt},
		{"a frozenset", "\x80\x04(\x91.", DefaultLimits, ErrUnsupported},
		{"storage of 2^62 floats", string(tensorPickle("FloatStorage", 1<<62)), DefaultLimits, ErrLimit},
		{"storage of 2^64-1 bytes", string(tensorPickle("ByteStorage", 1<<64-1)), DefaultLimits, ErrLimit},
		{"tensor outside its storage", strings.Replace(string(tensorPickle("FloatStorage", 1)), "K\x00K\x01\x85", "K\x01K\x01\x85", 1), DefaultLimits, ErrCorrupt},
		{"storage reference without a class", "\x80\x02(X\x07\x00\x00\x00storageNX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ.", DefaultLimits, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A refusal costs memory in proportion to the pickle, never to what it claims:
			// allocations count where wall time would depend on the machine's load.
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := decodeRawPickle([]byte(tt.pkl), tt.lim)
			runtime.ReadMemStats(&after)
			if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
				t.Fatalf("error %v does not wrap %v", err, tt.want)
			}
			if err != nil && strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error %q is not one line", err)
			}
			if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(16<<20+400*len(tt.pkl)); got > limit {
				t.Errorf("allocated %d bytes to refuse a %d-byte pickle (limit %d)", got, len(tt.pkl), limit)
			}
		})
	}
}

// sharedLists is a pickle of n lists, each holding the one before twice: a few bytes per
// level, but a walk of the tree visits 2^n lists.
func sharedLists(levels int) string {
	var b strings.Builder
	b.WriteString("\x80\x02]r\x00\x00\x00\x000")
	for k := 1; k < levels; k++ {
		fmt.Fprintf(&b, "](j%sj%ser%s0", le32(k-1), le32(k-1), le32(k))
	}
	fmt.Fprintf(&b, "j%s.", le32(levels-1))
	return b.String()
}

func le32(v int) string {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(v))
	return string(b[:])
}

// TestClaimsDoNotAllocate checks that lengths a file declares are never allocated before
// the bytes are seen: refusing each of these costs far less than what it claims.
func TestClaimsDoNotAllocate(t *testing.T) {
	four := make([]byte, 4)
	files := map[string][]byte{
		"BINBYTES8 of 2^40":    checkpointZip(t, []byte("\x80\x02\x8e\x00\x00\x00\x00\x00\x01\x00\x00."), four),
		"BINUNICODE of 2^32-1": checkpointZip(t, []byte("\x80\x02X\xff\xff\xff\xff."), four),
		"storage of 2^40":      checkpointZip(t, tensorPickle("FloatStorage", 1<<40), four),
		"record of 4 GiB":      patchCentral(t, checkpointZip(t, tensorPickle("FloatStorage", 1), four), "data.pkl", 24, 1<<32-1),
	}
	for name, data := range files {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := NewReader(bytes.NewReader(data), int64(len(data)), "claims.pt")
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
				t.Errorf("refusing a %d-byte file allocated %d bytes (%v)", len(data), got, err)
			}
		})
	}
}

// TestTruncatedFixtures cuts every fixture at many offsets: each cut is refused with a
// classified error (a zip cut before its directory, a legacy file cut anywhere).
func TestTruncatedFixtures(t *testing.T) {
	for name, full := range fixtureFiles(t) {
		step := max(1, len(full)/97)
		for n := 0; n < len(full); n += step {
			c, err := NewReader(bytes.NewReader(full[:n]), int64(n), name)
			if err == nil {
				t.Errorf("%s cut at %d of %d bytes was accepted: %v", name, n, len(full), c)
				continue
			}
			if !classified(err) {
				t.Errorf("%s cut at %d: unclassified error %v", name, n, err)
			}
		}
	}
}

// TestBitFlips flips bits in data.pkl and in the zip directory of every zip fixture; the
// reader may accept a flip that stays valid, but never panics or returns an unclassified
// error.
func TestBitFlips(t *testing.T) {
	for name, full := range fixtureFiles(t) {
		pkl := dataPickle(t, full)
		if pkl == nil {
			continue
		}
		pklAt := bytes.Index(full, pkl)
		dirAt := bytes.Index(full, []byte("PK\x01\x02"))
		if pklAt < 0 || dirAt < 0 {
			t.Fatalf("%s: data.pkl or the central directory not found", name)
		}
		regions := [][2]int{{pklAt, pklAt + len(pkl)}, {dirAt, len(full)}}
		for _, r := range regions {
			step := max(1, (r[1]-r[0])/29)
			for i := r[0]; i < r[1]; i += step {
				for _, bit := range []byte{0x04, 0x80} {
					b := bytes.Clone(full)
					b[i] ^= bit
					c, err := NewReader(bytes.NewReader(b), int64(len(b)), name)
					if err != nil {
						if !classified(err) {
							t.Errorf("%s with byte %d ^ %#x: unclassified error %v", name, i, bit, err)
						}
						continue
					}
					_ = checkpoint.Storages(c.Root)
				}
			}
		}
	}
}

// TestLegacyKeyListedTwice lists one storage key twice in place of another, which would
// leave the other storage without bytes.
func TestLegacyKeyListedTwice(t *testing.T) {
	legacy := fixtureFiles(t)["vgg_tiny_legacy.pt"]
	pos := int64(0)
	for i := 0; i < 4; i++ { // magic, protocol version, sys_info, object
		n, err := scanPickle(bytes.NewReader(legacy[pos:]), int64(len(legacy))-pos, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		pos += n
	}
	n, err := scanPickle(bytes.NewReader(legacy[pos:]), int64(len(legacy))-pos, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	v, err := decodeRawPickle(legacy[pos:pos+n], DefaultLimits)
	keys, ok := v.(*checkpoint.List)
	if err != nil || !ok || len(keys.Items) < 2 {
		t.Fatalf("storage key list: %v %v", v, err)
	}
	var b strings.Builder
	b.WriteString("\x80\x02(")
	for range keys.Items {
		k := keys.Items[0].(string) // every entry is the first key
		fmt.Fprintf(&b, "X%s%s", le32(len(k)), k)
	}
	b.WriteString("l.")
	data := append(append(bytes.Clone(legacy[:pos]), b.String()...), legacy[pos+n:]...)
	_, err = NewReader(bytes.NewReader(data), int64(len(data)), "twice.pt")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("error %v does not wrap %v", err, ErrCorrupt)
	}
}

// TestFixturesWithinLimits makes sure the defaults are not so tight that real files fail.
func TestFixturesWithinLimits(t *testing.T) {
	for name, b := range fixtureFiles(t) {
		if _, err := NewReader(bytes.NewReader(b), int64(len(b)), name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Globals torch's safe loader allows but pt2conv cannot keep are refused as unsupported,
// naming the construct, and never with the "runs pickled code" message meant for code.
func TestAllowedButUnsupported(t *testing.T) {
	const v2 = "ctorch._utils\n_rebuild_tensor_v2\n"
	tests := []struct{ name, pkl, want string }{
		{"wrapper subclass", "\x80\x02ctorch._utils\n_rebuild_wrapper_subclass\n)R.", "a wrapper tensor subclass"},
		{"device tensor via numpy", "\x80\x02ctorch._utils\n_rebuild_device_tensor_from_numpy\n)R.", "a device tensor saved through numpy"},
		{"device tensor via cpu", "\x80\x02ctorch._utils\n_rebuild_device_tensor_from_cpu_tensor\n)R.", "a device tensor saved through a CPU copy"},
		{"tensor subclass", "\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n(" + v2 + "ctorch\nFloatTensor\n)NtR.", "a tensor of class torch.FloatTensor"},
		{"attributes on a parameter rebuild", "\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n(ctorch._utils\n_rebuild_parameter\nctorch\nTensor\n)NtR.",
			"a tensor with Python attributes rebuilt by torch._utils._rebuild_parameter"},
		{"tensor built with state", "\x80\x02ctorch._utils\n_rebuild_meta_tensor_no_storage\n(ctorch\nfloat32\n))\x89tR}b.", "built with extra state"},
		{"frozenset", "\x80\x04(\x91.", "frozenset"},
		{"parameter by NEWOBJ", "\x80\x02ctorch.nn.parameter\nParameter\n)\x81.", "an nn.Parameter created by NEWOBJ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeRawPickle([]byte(tt.pkl), DefaultLimits)
			var ge *GlobalError
			if !errors.Is(err, ErrUnsupported) || errors.As(err, &ge) {
				t.Fatalf("error %v: want ErrUnsupported", err)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "code") {
				t.Errorf("error %q does not name %q, or speaks of code", err, tt.want)
			}
		})
	}
}

// Rebuild calls torch allows but whose arguments are not what torch writes are corrupt.
func TestMalformedRebuilds(t *testing.T) {
	tests := []struct{ name, pkl, want string }{
		{"nested tensor without parts", "\x80\x02ctorch._utils\n_rebuild_nested_tensor\n)R.", "nested tensor with 0 parts"},
		{"nested tensor of numbers", "\x80\x02ctorch._utils\n_rebuild_nested_tensor\n(K\x01K\x02K\x03K\x04tR.", "not dense tensors"},
		{"meta tensor without arguments", "\x80\x02ctorch._utils\n_rebuild_meta_tensor_no_storage\n)R.", "malformed meta tensor"},
		{"meta tensor of negative size", "\x80\x02ctorch._utils\n_rebuild_meta_tensor_no_storage\n(ctorch\nfloat32\nJ\xff\xff\xff\xff\x85K\x01\x85\x89tR.", "malformed meta tensor"},
		{"attributes without arguments", "\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n)R.", "_rebuild_from_type_v2 with 0 arguments"},
		{"attributes without a class", "\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n(K\x01K\x02)NtR.", "without a function, class and arguments"},
		{"NEWOBJ of a tensor", "\x80\x02ctorch\nTensor\n)\x81.", "NEWOBJ of torch.Tensor"},
		{"old form without a storage", "\x80\x02ctorch._utils\n_rebuild_tensor\n(NK\x00)\x29tR.", "without a typed storage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeRawPickle([]byte(tt.pkl), DefaultLimits)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v: want ErrCorrupt naming %q", err, tt.want)
			}
		})
	}
}
