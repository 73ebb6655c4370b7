//go:build !linux

package reflinktest

import "testing"

// Mount skips the test: loop mounts and FIEMAP are linux's.
func Mount(t testing.TB, fstype string) string {
	t.Helper()
	t.Skipf("mounting a %s image is done on linux only", fstype)
	return ""
}

// SharedBytes is not reached: Mount has skipped the test.
func SharedBytes(t testing.TB, path string, off, n int64) int64 {
	t.Helper()
	t.Skip("FIEMAP is linux's")
	return 0
}
