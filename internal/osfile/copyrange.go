package osfile

import (
	"fmt"
	"io"
	"os"
)

// CloneBlock is the alignment that block sharing needs: XFS and btrfs share ("reflink")
// only whole blocks, and both use 4 KiB blocks by default. A writer that places a run of
// bytes at an offset congruent modulo CloneBlock to where the run lies in its source lets
// CopyRange share all of the run but its partial first and last blocks.
const CloneBlock = 4096

// CopyRange copies n bytes at srcOff in src to dstOff in dst, using explicit offsets: it
// moves neither file's offset, so the caller must seek dst past the copy before writing
// to it sequentially again. It returns how many of the bytes now share their blocks with
// src instead of being copied.
//
// On linux, when dstOff and srcOff are congruent modulo CloneBlock, the bytes up to the
// first block boundary are copied, the whole blocks that follow are cloned with
// FICLONERANGE (XFS, btrfs, and other file systems that share blocks), and the bytes past
// the last whole block are copied. Where cloning is refused (ext4, two file systems, a
// block size other than CloneBlock) the rest is copied with copy_file_range, which still
// keeps the bytes inside the kernel and lets file systems that clone on their own (NFS,
// CIFS, ZFS) do so; where that is refused too, through a buffer. Other platforms copy
// through a buffer.
//
// A source shorter than srcOff+n gives an error wrapping io.ErrUnexpectedEOF.
func CopyRange(dst, src *os.File, dstOff, srcOff, n int64) (cloned int64, err error) {
	if n < 0 || dstOff < 0 || srcOff < 0 {
		return 0, fmt.Errorf("copy range: negative offset or length")
	}
	if n == 0 {
		return 0, nil
	}
	return copyRange(dst, src, dstOff, srcOff, n)
}

// bufferedCopy copies n bytes from srcOff to dstOff through a buffer.
func bufferedCopy(dst, src *os.File, dstOff, srcOff, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		m, err := src.ReadAt(buf[:min(n, int64(len(buf)))], srcOff)
		if m > 0 {
			if _, werr := dst.WriteAt(buf[:m], dstOff); werr != nil {
				return werr
			}
			srcOff += int64(m)
			dstOff += int64(m)
			n -= int64(m)
		}
		if err == io.EOF && n > 0 {
			return fmt.Errorf("source ends %d bytes early: %w", n, io.ErrUnexpectedEOF)
		}
		if err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}
