package reflinktest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// imageSize is the loop image's size: above mkfs.xfs's 300 MB minimum; the file is sparse.
const imageSize = 512 << 20

// mkfs is the command that formats each supported file system, reflink on.
var mkfs = map[string][]string{
	"xfs":   {"mkfs.xfs", "-q", "-m", "reflink=1"},
	"btrfs": {"mkfs.btrfs", "-q"},
}

// Mount formats a loop image as fstype ("xfs" or "btrfs"), mounts it on a new directory
// and returns the directory. The file system is unmounted and the image removed when the
// test ends, whether it passed or not. It skips the test when not root or when the kernel
// lacks fstype, and fails it when the formatting tool is missing (install xfsprogs,
// btrfs-progs).
func Mount(t testing.TB, fstype string) string {
	t.Helper()
	args, ok := mkfs[fstype]
	if !ok {
		t.Fatalf("reflinktest: no recipe for file system %q", fstype)
	}
	if os.Geteuid() != 0 {
		t.Skipf("mounting a %s image needs root", fstype)
	}
	if !kernelHas(fstype) {
		t.Skipf("the kernel has no %s file system", fstype)
	}
	if _, err := exec.LookPath(args[0]); err != nil {
		t.Fatalf("%s is missing: install %sprogs", args[0], fstype)
	}
	base := t.TempDir()
	img := filepath.Join(base, fstype+".img")
	dir := filepath.Join(base, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, imageSize); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(args[0], append(args[1:], img)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", args[0], err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", "-t", fstype, img, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v\n%s", fstype, err, out)
	}
	// Registered after TempDir's own cleanup, so it runs first: unmount, then remove.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

func kernelHas(fstype string) bool {
	if hasFilesystem(fstype) {
		return true
	}
	exec.Command("modprobe", fstype).Run() // may be a module not loaded yet
	return hasFilesystem(fstype)
}

func hasFilesystem(fstype string) bool {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == fstype {
			return true
		}
	}
	return false
}

// fiemap mirrors struct fiemap from linux/fiemap.h, followed by room for its extents.
type fiemap struct {
	start, length uint64
	flags         uint32
	mappedExtents uint32
	extentCount   uint32
	reserved      uint32
	extents       [fiemapBatch]fiemapExtent
}

type fiemapExtent struct {
	logical, physical, length uint64
	reserved64                [2]uint64
	flags                     uint32
	reserved                  [3]uint32
}

const (
	fiemapBatch       = 128
	fiemapFlagSync    = 0x1 // FIEMAP_FLAG_SYNC: write dirty pages out first
	fiemapExtentLast  = 0x1
	fiemapExtentShare = 0x2000 // FIEMAP_EXTENT_SHARED
	fsIocFiemap       = 0xC020660B
)

// SharedBytes returns how many bytes of [off, off+n) of the file at path lie in extents
// the file system marks shared with another file.
func SharedBytes(t testing.TB, path string, off, n int64) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var shared int64
	pos := uint64(off)
	end := uint64(off + n)
	for pos < end {
		m := fiemap{start: pos, length: end - pos, flags: fiemapFlagSync, extentCount: fiemapBatch}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&m))); errno != 0 {
			t.Fatalf("FS_IOC_FIEMAP %s: %v", path, errno)
		}
		if m.mappedExtents == 0 {
			break
		}
		last := false
		for _, e := range m.extents[:m.mappedExtents] {
			lo, hi := max(e.logical, uint64(off)), min(e.logical+e.length, end)
			if e.flags&fiemapExtentShare != 0 && hi > lo {
				shared += int64(hi - lo)
			}
			pos = e.logical + e.length
			last = last || e.flags&fiemapExtentLast != 0
		}
		if last {
			break
		}
	}
	return shared
}
