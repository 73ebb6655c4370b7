package safetensors_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/osfile"
	"github.com/pt2conv/pt2conv/internal/reflinktest"
	"github.com/pt2conv/pt2conv/internal/torchtest"
	"github.com/pt2conv/pt2conv/safetensors"
)

// makeLinears writes, with the safetensors library, a state_dict of two Linear layers big
// enough that their bytes span many blocks.
const makeLinears = `
import sys, torch
from safetensors.torch import save_file
torch.manual_seed(3)
save_file({"fc1.weight": torch.randn(640, 1024), "fc1.bias": torch.randn(640),
           "fc2.weight": torch.randn(10, 640), "fc2.bias": torch.randn(10)}, sys.argv[1])
`

// checkOneByOne loads both files with the safetensors library and checks that the second
// holds the first's tensors, the weights viewed as 1×1 convolutions.
const checkOneByOne = `
import sys, torch
from safetensors.torch import load_file
from safetensors import safe_open
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert list(a) == list(b), (list(a), list(b))
for k, t in a.items():
    want = t[:, :, None, None] if k.endswith(".weight") else t
    assert b[k].shape == want.shape and torch.equal(b[k], want), k
with safe_open(sys.argv[2], "pt") as f:
    assert all(torch.equal(f.get_tensor(k), b[k]) for k in f.keys())
print("ok", len(b))
`

// TestHeaderOnlyChangeSharesBlocks rewrites a safetensors file's Linear weights as 1×1
// convolutions, a change of the header only, on XFS with reflink and on btrfs; proves with
// FIEMAP that every whole block of the output's data region shares its extent with the
// input; and has the safetensors library load the output.
func TestHeaderOnlyChangeSharesBlocks(t *testing.T) {
	tr := withSafetensors(t)
	for _, fstype := range []string{"xfs", "btrfs"} {
		t.Run(fstype, func(t *testing.T) {
			dir := reflinktest.Mount(t, fstype)
			host, inside := tr.TempDir(t)
			tr.Run(t, makeLinears, inside+"/in.safetensors")
			in, out := filepath.Join(dir, "in.safetensors"), filepath.Join(dir, "out.safetensors")
			copyFile(t, in, filepath.Join(host, "in.safetensors")) // a copy, sharing nothing
			c, err := safetensors.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := safetensors.Save(out, oneByOne(c), nil); err != nil {
				t.Fatal(err)
			}

			inStart, outStart := dataStart(t, in), dataStart(t, out)
			if inStart%osfile.CloneBlock != outStart%osfile.CloneBlock || outStart%8 != 0 {
				t.Fatalf("data region at %d in the output, %d in the input: not congruent modulo %d with 8-byte alignment", outStart, inStart, osfile.CloneBlock)
			}
			if pad := headerPadding(t, out); pad >= osfile.CloneBlock {
				t.Errorf("the header ends in %d spaces, want under %d", pad, osfile.CloneBlock)
			}
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			lo := (outStart + osfile.CloneBlock - 1) / osfile.CloneBlock * osfile.CloneBlock
			hi := fi.Size() / osfile.CloneBlock * osfile.CloneBlock
			if hi-lo < 2<<20 {
				t.Fatalf("only %d bytes of data lie in whole blocks; the file is too small to tell", hi-lo)
			}
			if got := reflinktest.SharedBytes(t, out, lo, hi-lo); got != hi-lo {
				t.Errorf("%d of the %d data bytes in whole blocks share the input's extents", got, hi-lo)
			}

			shared := filepath.Join(host, "out.safetensors")
			copyFile(t, shared, out)
			res := tr.Run(t, checkOneByOne, inside+"/in.safetensors", inside+"/out.safetensors")
			t.Logf("%s: %s", tr, strings.TrimSpace(string(res)))
		})
	}
}

// withSafetensors returns an interpreter that has the safetensors library, and skips the
// test when there is none (fails it when torch is required).
func withSafetensors(t *testing.T) *torchtest.Torch {
	for _, tr := range torchtest.All(t) {
		if _, err := tr.Output("import safetensors"); err == nil {
			return tr
		}
	}
	if torchtest.Required() {
		t.Fatal("no torch with the safetensors library")
	}
	t.Skip("no torch with the safetensors library")
	return nil
}

// oneByOne returns c with its 2-D weights viewed as [out, in, 1, 1], as a conversion to
// 1×1 convolutions writes them: the same storage, new sizes and strides.
func oneByOne(c *checkpoint.Checkpoint) *checkpoint.Checkpoint {
	od := c.Root.(*checkpoint.OrderedDict)
	out := &checkpoint.OrderedDict{}
	for _, e := range od.Entries {
		if t := e.Value.(*checkpoint.Tensor); len(t.Size) == 2 {
			v := *t
			v.Size = []int64{t.Size[0], t.Size[1], 1, 1}
			v.Stride = []int64{t.Stride[0], t.Stride[1], 1, 1}
			e.Value = &v
		}
		out.Entries = append(out.Entries, e)
	}
	return c.WithRoot(out)
}

func dataStart(t *testing.T, path string) int64 {
	t.Helper()
	c, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return safetensors.HeaderOf(c).DataStart()
}

// headerPadding counts the spaces that end the header of the safetensors file at path.
func headerPadding(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(binary.LittleEndian.Uint64(b))
	hdr := b[8 : 8+n]
	return n - int64(len(bytes.TrimRight(hdr, " ")))
}

func copyFile(t *testing.T, dst, src string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
