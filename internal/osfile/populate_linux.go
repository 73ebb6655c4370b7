package osfile

import "golang.org/x/sys/unix"

func madvisePopulate(b []byte) error { return unix.Madvise(b, unix.MADV_POPULATE_READ) }
