//go:build unix && !linux

package osfile

// madvisePopulate does nothing: pages are mapped as they are first read.
func madvisePopulate(b []byte) error { return nil }
