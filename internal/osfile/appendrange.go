package osfile

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrShortSource: AppendRange's source ended before the bytes it was asked to copy.
var ErrShortSource = errors.New("the source ends early")

// copyStep is how many bytes AppendRange moves between two calls of its step function.
const copyStep = 64 << 20

// AppendRange appends n bytes of src, from offset off, to dst at its current offset, and
// leaves dst's offset after them. It copies with CopyRange (whole blocks cloned where the
// file system shares blocks and the offsets are congruent, file to file in the kernel
// elsewhere on linux) in steps of 64 MiB; after each step the disk is asked to start
// writing it and step, if set, is called with the bytes copied so far and may stop the copy
// by returning an error. src's file offset does not move.
func AppendRange(dst, src *os.File, off, n int64, step func(copied int64) error) error {
	start, err := dst.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	for copied := int64(0); copied < n; {
		k := min(n-copied, copyStep)
		if _, err := CopyRange(dst, src, start+copied, off+copied, k); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%w: %d of %d bytes at offset %d copied", ErrShortSource, copied, n, off)
			}
			return err
		}
		StartWriteback(dst, start+copied, k)
		copied += k
		if step != nil {
			if err := step(copied); err != nil {
				return err
			}
		}
	}
	_, err = dst.Seek(start+n, io.SeekStart)
	return err
}
