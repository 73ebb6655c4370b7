package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/osfile"
	"github.com/pt2conv/pt2conv/internal/reflinktest"
	"github.com/pt2conv/pt2conv/internal/torchtest"
	"github.com/pt2conv/pt2conv/pickle"
)

// TestConvertSharesBlocks converts a checkpoint on XFS with reflink and on btrfs, proves
// with FIEMAP that every whole block of the output's storages shares its extent with the
// input, and has every torch check the output.
func TestConvertSharesBlocks(t *testing.T) {
	torches := torchtest.All(t)
	for _, fstype := range []string{"xfs", "btrfs"} {
		t.Run(fstype, func(t *testing.T) {
			dir := reflinktest.Mount(t, fstype)
			in := filepath.Join(dir, "big.pt")
			out := filepath.Join(dir, "big_conv.pt")
			torches[0].Run(t, "cmd/pt2conv/testdata/converted.py", "make-big", in)
			args := []string{"convert", in, "-o", out, "--layer", "fc1=64x4x4", "--layer", "fc2"}
			if code, stdout, stderr := pt2conv(t, args...); code != 0 {
				t.Fatalf("pt2conv %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
			}

			c, err := pickle.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var whole, shared int64
			for _, s := range checkpoint.Storages(c.Root) {
				lo := (s.Offset + osfile.CloneBlock - 1) / osfile.CloneBlock * osfile.CloneBlock
				hi := (s.Offset + s.ByteLen()) / osfile.CloneBlock * osfile.CloneBlock
				if hi <= lo {
					continue
				}
				whole += hi - lo
				got := reflinktest.SharedBytes(t, out, lo, hi-lo)
				if got != hi-lo {
					t.Errorf("storage %s: %d of its %d bytes in whole blocks share the input's extents", s.Key, got, hi-lo)
				}
				shared += got
			}
			if whole < 2<<20 {
				t.Fatalf("only %d bytes of storages lie in whole blocks; the checkpoint is too small to tell", whole)
			}
			t.Logf("%s: %d of %d storage bytes in whole blocks are shared", fstype, shared, whole)

			shapes := map[string][]int64{"fc1.weight": {640, 64, 4, 4}, "fc2.weight": {10, 640, 1, 1}}
			for _, tr := range torches {
				res, err := judge(t, tr, "cmd/pt2conv/testdata/converted.py", []judgeCase{{Orig: in, Conv: out, Shapes: shapes}}, "check")
				if err != nil {
					t.Errorf("%s: %v", tr, err)
					continue
				}
				t.Logf("%s: %s", tr, strings.TrimSpace(string(res)))
			}
		})
	}
}
