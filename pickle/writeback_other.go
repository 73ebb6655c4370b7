//go:build !linux

package pickle

import "os"

// startWriteback is a no-op where the kernel offers no early writeback; fsync does it all.
func startWriteback(f *os.File, off, n int64) {}
