package osfile

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrShortSource: CopyRange's source ended before the bytes it was asked to copy.
var ErrShortSource = errors.New("the source ends early")

// copyStep is how many bytes CopyRange moves between two calls of its step function.
const copyStep = 64 << 20

// CopyRange appends n bytes of src, from offset off, to dst at its current offset. The
// bytes go file to file through os.File.ReadFrom, which on linux is copy_file_range (a
// clone where the file system shares blocks), in steps of 64 MiB; after each step the
// disk is asked to start writing it and step, if set, is called with the bytes copied so
// far and may stop the copy by returning an error. It moves src's file offset: callers
// that share src must serialise their copies.
func CopyRange(dst, src *os.File, off, n int64, step func(copied int64) error) error {
	if _, err := src.Seek(off, io.SeekStart); err != nil {
		return err
	}
	start, err := dst.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	var copied int64
	for copied < n {
		k, err := io.CopyN(dst, src, min(n-copied, copyStep))
		if k > 0 {
			StartWriteback(dst, start+copied, k)
		}
		copied += k
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: %d of %d bytes at offset %d copied", ErrShortSource, copied, n, off)
		}
		if err != nil {
			return err
		}
		if step != nil {
			if err := step(copied); err != nil {
				return err
			}
		}
	}
	return nil
}
