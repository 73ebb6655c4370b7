package osfile

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

func copyRange(dst, src *os.File, dstOff, srcOff, n int64) (int64, error) {
	if dstOff%CloneBlock != srcOff%CloneBlock {
		return 0, kernelCopy(dst, src, dstOff, srcOff, n)
	}
	head := min(n, (CloneBlock-dstOff%CloneBlock)%CloneBlock)
	whole := (n - head) / CloneBlock * CloneBlock
	if whole == 0 {
		return 0, kernelCopy(dst, src, dstOff, srcOff, n)
	}
	// The head first, so that the clone starts at dst's end of file rather than past it.
	if err := kernelCopy(dst, src, dstOff, srcOff, head); err != nil {
		return 0, err
	}
	dstOff, srcOff, n = dstOff+head, srcOff+head, n-head
	clone := unix.FileCloneRange{
		Src_fd:      int64(src.Fd()),
		Src_offset:  uint64(srcOff),
		Src_length:  uint64(whole),
		Dest_offset: uint64(dstOff),
	}
	if err := unix.IoctlFileCloneRange(int(dst.Fd()), &clone); err != nil {
		// Not a file system that clones, or not these two files: copy the rest in one call
		// from the aligned point, which is where copy_file_range clones if it can.
		return 0, kernelCopy(dst, src, dstOff, srcOff, n)
	}
	return whole, kernelCopy(dst, src, dstOff+whole, srcOff+whole, n-whole)
}

// kernelCopy copies with copy_file_range, and through a buffer where the kernel refuses.
func kernelCopy(dst, src *os.File, dstOff, srcOff, n int64) error {
	for n > 0 {
		roff, woff := srcOff, dstOff
		m, err := unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), &woff, int(min(n, 1<<30)), 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			switch {
			case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP),
				errors.Is(err, unix.EINVAL), errors.Is(err, unix.EPERM), errors.Is(err, unix.ETXTBSY):
				return bufferedCopy(dst, src, dstOff, srcOff, n)
			}
			return &os.PathError{Op: "copy_file_range", Path: dst.Name(), Err: err}
		}
		if m == 0 {
			return fmt.Errorf("%s ends %d bytes early: %w", src.Name(), n, io.ErrUnexpectedEOF)
		}
		srcOff += int64(m)
		dstOff += int64(m)
		n -= int64(m)
	}
	return nil
}
