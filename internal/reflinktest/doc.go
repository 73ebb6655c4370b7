// Package reflinktest gives tests a scratch copy-on-write file system (XFS with reflink,
// btrfs) mounted from a loop image, and tells which bytes of a file share their blocks
// with another file (FS_IOC_FIEMAP). It works on linux as root; elsewhere, and without
// root or without the file system in the kernel, Mount skips the test and says why.
package reflinktest
