//go:build !linux

package osfile

import "os"

// copyRange copies through a buffer: darwin's clonefile clones whole files only, and
// windows' block cloning (ReFS) is not offered by the file systems checkpoints live on.
func copyRange(dst, src *os.File, dstOff, srcOff, n int64) (int64, error) {
	return 0, bufferedCopy(dst, src, dstOff, srcOff, n)
}
