package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// readOnlyDir is a directory no file can be made in: a read-only tmpfs as root (who may
// write anywhere else), a directory without write permission otherwise.
func readOnlyDir(t *testing.T) string {
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_RDONLY, "size=64k"); err != nil {
			t.Skipf("mount a read-only tmpfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(dir, 0) })
		return dir
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	return dir
}

// TestDryRunReadOnlyDirectory: a dry run refuses an output it could not write, as the real
// run does, with kind io.
func TestDryRunReadOnlyDirectory(t *testing.T) {
	ro := readOnlyDir(t)
	in := fixture("vgg_tiny.pt")
	for _, args := range [][]string{
		{"convert", in, "-o", filepath.Join(ro, "x.pt")},
		{"convert", in, "--out-dir", filepath.Join(ro, "sub")},
		{"convert", in, "--out-dir", ro},
	} {
		realCode, _, realErr := pt2conv(t, append(args, "--layer", "classifier.3")...)
		dryCode, dryOut, dryErr := pt2conv(t, append(args, "--layer", "classifier.3", "--dry-run", "--json")...)
		if realCode != exitBadInput || dryCode != realCode {
			t.Errorf("%v: real run exit %d (%s), dry run exit %d (%s); want 2 for both", args, realCode, realErr, dryCode, dryErr)
		}
		if !strings.Contains(dryOut, `"kind": "io"`) {
			t.Errorf("%v: dry run's document: %s", args, dryOut)
		}
	}
}
