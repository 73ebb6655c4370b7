package osfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// StartWriteback asks the kernel to begin writing [off, off+n) of f to disk now, without
// waiting. The final sync then waits only for the tail, so copying and writing to disk
// overlap instead of following each other. Errors are ignored: the sync still does it all.
func StartWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
