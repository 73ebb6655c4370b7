package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// stFile assembles a safetensors file from a header text and a data region.
func stFile(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	return append(append(b, header...), data...)
}

// safetensorsCorpus breaks a real safetensors fixture every way the reference reader
// refuses: header length past the end or 2^63, invalid JSON, non-UTF-8, overlapping and
// out-of-bounds offsets, shape overflow, duplicate keys, deep nesting, newer dtypes,
// truncations. Every file is broken.
func safetensorsCorpus(t *testing.T) map[string][]byte {
	src := mustRead(t, fixture("safetensors/vgg_tiny.safetensors"))
	n := binary.LittleEndian.Uint64(src)
	header, data := string(src[8:8+n]), src[8+n:]
	files := map[string][]byte{}
	for _, frac := range []int{0, 1, 3, 10, 50, 90, 99} {
		files[fmt.Sprintf("cut%02d.safetensors", frac)] = src[:len(src)*frac/100+min(frac, 1)*4]
	}
	files["len_2p63.safetensors"] = append(binary.LittleEndian.AppendUint64(nil, 1<<63), src[8:]...)
	files["len_past_end.safetensors"] = append(binary.LittleEndian.AppendUint64(nil, uint64(len(src))), src[8:]...)
	files["len_101mb.safetensors"] = append(binary.LittleEndian.AppendUint64(nil, 100_000_001), src[8:]...)
	replace := func(old, new string) []byte {
		if !strings.Contains(header, old) {
			t.Fatalf("vgg_tiny.safetensors header lacks %q", old)
		}
		return stFile(strings.Replace(header, old, new, 1), data)
	}
	files["invalid_json.safetensors"] = replace(`"dtype"`, `"dtype`)
	files["not_utf8.safetensors"] = replace(`"classifier.0.bias"`, "\"classifier.0.\xff\xfe\"")
	files["duplicate_key.safetensors"] = stFile(strings.Replace(header, `"classifier.0.bias"`, `"classifier.0.weight"`, 1), data)
	files["newer_dtype.safetensors"] = replace(`"F32"`, `"F8_E8M0"`)
	files["unknown_dtype.safetensors"] = replace(`"F32"`, `"Q4"`)
	files["shape_overflow.safetensors"] = replace(`"shape":[`, `"shape":[4294967296,4294967296,`)
	files["deep.safetensors"] = stFile(`{"a":`+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+`}`, nil)
	files["not_object.safetensors"] = stFile(`["a"]    `, nil)
	// Offsets: move one tensor's span onto its neighbour's, and past the end.
	first := strings.Index(header, `"data_offsets":[`)
	end := strings.Index(header[first:], "]") + first
	files["overlap.safetensors"] = stFile(header[:first]+`"data_offsets":[0,`+spanEnd(t, header[first:end])+header[end:], data)
	files["out_of_bounds.safetensors"] = stFile(header, data[:len(data)-4])
	files["extra_data.safetensors"] = stFile(header, append(bytes.Clone(data), 0, 0, 0, 0))
	files["metadata_not_string.safetensors"] = replace(`"format":"pt"`, `"format":1`)
	return files
}

// spanEnd shifts a data_offsets pair's end by 4 bytes, so that the span overlaps the next.
func spanEnd(t *testing.T, offsets string) string {
	var b, e int64
	if _, err := fmt.Sscanf(offsets, `"data_offsets":[%d,%d`, &b, &e); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d", e-b+4)
}

func TestHostileSafetensors(t *testing.T) {
	dir := t.TempDir()
	outDir := filepath.Join(dir, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	good := fixture("safetensors/vgg_tiny.safetensors")
	for name, data := range safetensorsCorpus(t) {
		in := filepath.Join(dir, name)
		if err := os.WriteFile(in, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			for _, args := range [][]string{
				{"inspect", in},
				{"inspect", "--json", in},
				{"convert", in, "-o", filepath.Join(outDir, "x.safetensors"), "--layer", "classifier.3", "--verify"},
				{"convert", in, "-o", filepath.Join(outDir, "x.pt")},
				{"verify", good, in},
				{"verify", in, good},
			} {
				code, stdout, stderr := runTimed(t, args...)
				if code != exitBadInput {
					t.Errorf("%v: exit %d, want 2 (stdout %q, stderr %q)", args, code, stdout, stderr)
				}
				if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, name) {
					t.Errorf("%v: stderr %q, want one line naming the file", args, stderr)
				}
				if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
					t.Errorf("%v: %s left in the output directory", args, entries[0].Name())
				}
			}
			if !bytes.Equal(mustRead(t, in), data) {
				t.Errorf("the input file was modified")
			}
		})
	}
}

// TestShardFailureLeavesNothing writes a sharded set one of whose shards cannot be written
// (the file size limit stops it half way with EFBIG): the command fails and neither the
// output directory nor a temporary one is left behind.
func TestShardFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, t.TempDir())
	for _, f := range []string{"dtypes.safetensors", "vgg_tiny.safetensors"} {
		if err := os.WriteFile(filepath.Join(dir, f), mustRead(t, fixture("safetensors/"+f)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	index := `{"metadata": {"total_size": 0}, "weight_map": {"f8_e4m3": "dtypes.safetensors", "classifier.0.weight": "vgg_tiny.safetensors"}}`
	if err := os.WriteFile(filepath.Join(dir, "set.safetensors.index.json"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out", "pytorch_model.bin.index.json")
	// 8 KiB: the small shard and the index fit, the vgg_tiny shard (about 11 KiB) does not.
	cmd := exec.Command("sh", "-c", `ulimit -f 16 && exec $PT2CONV_TEST_EXEC "$0" "$@"`, bin,
		"convert", filepath.Join(dir, "set.safetensors.index.json"), "-o", out, "-j", "2")
	var stderrBuf bytes.Buffer
	cmd.Stderr = &stderrBuf
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if stderr := stderrBuf.String(); code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("exit %d, stderr %q; want a failure in one line", code, stderr)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("after a failed shard the directory holds %v, want only the inputs", names)
	}
}
