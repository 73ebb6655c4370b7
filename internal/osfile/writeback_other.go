//go:build !linux

package osfile

import "os"

// StartWriteback does nothing where the kernel offers no early writeback of a byte range;
// the final sync does it all.
func StartWriteback(f *os.File, off, n int64) {}
