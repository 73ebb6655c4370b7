package osfile_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/pt2conv/pt2conv/internal/osfile"
	"github.com/pt2conv/pt2conv/internal/reflinktest"
)

// copyCase copies n bytes of a source file to dstOff of a destination that already holds
// dstOff bytes, and checks every byte.
func copyCase(t *testing.T, dir string, srcOff, dstOff, n int64) (cloned int64, dstPath string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(srcOff), uint64(n)))
	data := make([]byte, srcOff+n+100)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	srcPath := filepath.Join(dir, "src")
	dstPath = filepath.Join(dir, "dst")
	if err := os.WriteFile(srcPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := bytes.Repeat([]byte{'h'}, int(dstOff))
	if err := os.WriteFile(dstPath, prefix, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(srcPath)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(dstPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	cloned, err = osfile.CopyRange(dst, src, dstOff, srcOff, n)
	if err != nil {
		t.Fatalf("CopyRange(dst, src, %d, %d, %d): %v", dstOff, srcOff, n, err)
	}
	if cloned < 0 || cloned > n {
		t.Fatalf("cloned %d of %d bytes", cloned, n)
	}
	got, err := os.ReadFile(dstPath)
	if err != nil {
		t.Fatal(err)
	}
	want := append(prefix, data[srcOff:srcOff+n]...)
	if !bytes.Equal(got, want) {
		t.Fatalf("CopyRange(dst, src, %d, %d, %d): the destination's %d bytes differ from the %d expected", dstOff, srcOff, n, len(got), len(want))
	}
	return cloned, dstPath
}

func TestCopyRange(t *testing.T) {
	const b = osfile.CloneBlock
	for _, c := range []struct {
		name              string
		srcOff, dstOff, n int64
	}{
		{"empty", 10, 20, 0},
		{"small", 3, 7, 100},
		{"congruent, inside one block", b + 100, 3*b + 100, 500},
		{"congruent, many blocks", 100, 2*b + 100, 5*b + 17},
		{"aligned, whole blocks", b, 2 * b, 4 * b},
		{"not congruent", 100, 101, 5 * b},
	} {
		t.Run(c.name, func(t *testing.T) {
			copyCase(t, t.TempDir(), c.srcOff, c.dstOff, c.n)
		})
	}
}

func TestCopyRangeShortSource(t *testing.T) {
	dir := t.TempDir()
	src, err := os.Create(filepath.Join(dir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	src.Write(make([]byte, 1000))
	dst, err := os.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	_, err = osfile.CopyRange(dst, src, 0, 500, 1000)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("copying past the source's end: got %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestCopyRangeClones proves on XFS and btrfs that the whole blocks of a congruent copy
// share the source's extents and that only the edges are copied.
func TestCopyRangeClones(t *testing.T) {
	const b = osfile.CloneBlock
	for _, fstype := range []string{"xfs", "btrfs"} {
		t.Run(fstype, func(t *testing.T) {
			dir := reflinktest.Mount(t, fstype)
			const srcOff, dstOff, n = 1000, 3*b + 1000, 64*b + 300
			cloned, dst := copyCase(t, dir, srcOff, dstOff, n)
			// The first whole block starts at 4*b in dst; 63 whole blocks follow it.
			if want := int64(63 * b); cloned != want {
				t.Fatalf("cloned %d bytes, want %d", cloned, want)
			}
			if shared := reflinktest.SharedBytes(t, dst, 4*b, 63*b); shared != 63*b {
				t.Fatalf("FIEMAP: %d of the %d cloned bytes are shared", shared, 63*b)
			}
			if shared := reflinktest.SharedBytes(t, dst, 0, 4*b); shared != 0 {
				t.Fatalf("FIEMAP: %d bytes of the written head are shared", shared)
			}
		})
	}
}
