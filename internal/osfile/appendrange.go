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
// elsewhere on linux) in steps of 64 MiB; after each step step, if set, is called with the
// bytes copied so far and may stop the copy by returning an error. src's file offset does
// not move.
//
// The disk is asked to start writing each step's whole pages while the next step is
// copied (StartWriteback, on a goroutine of its own: asking can block until the device
// takes more requests, which would hold up the copy). A page the next copy writes to
// again is left to the final sync, so that no page is written twice.
func AppendRange(dst, src *os.File, off, n int64, step func(copied int64) error) error {
	start, err := dst.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	wb := NewWriteback(dst, start)
	defer wb.Wait()
	for copied := int64(0); copied < n; {
		k := min(n-copied, copyStep)
		cloned, err := CopyRange(dst, src, start+copied, off+copied, k)
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%w: %d of %d bytes at offset %d copied", ErrShortSource, copied, n, off)
			}
			return err
		}
		copied += k
		if cloned < k { // shared blocks need no writing
			wb.Upto(start + copied)
		}
		if step != nil {
			if err := step(copied); err != nil {
				return err
			}
		}
	}
	_, err = dst.Seek(start+n, io.SeekStart)
	return err
}

// Writeback starts the writeback of a file written front to back, a range of whole pages
// at a time as they are finished, on a goroutine of its own (StartWriteback can block until
// the device takes more requests, which would hold up the writing). A page that is written
// to again after its writeback started is written twice, so the page at the end of each
// range, which the next write may finish, is left for later.
type Writeback struct {
	f      *os.File
	from   int64 // the first page not yet handed over
	ranges chan [2]int64
	done   chan struct{}
}

// writebackPage is the unit the kernel writes back.
const writebackPage = CloneBlock

// NewWriteback returns a Writeback for f, whose bytes before start are written already.
func NewWriteback(f *os.File, start int64) *Writeback {
	return &Writeback{f: f, from: (start + writebackPage - 1) / writebackPage * writebackPage}
}

// Upto starts the writeback of the whole pages of f before end that it has not started yet.
func (w *Writeback) Upto(end int64) {
	end = end / writebackPage * writebackPage
	if end <= w.from {
		return
	}
	if w.ranges == nil {
		w.ranges, w.done = make(chan [2]int64, 64), make(chan struct{})
		go func() {
			defer close(w.done)
			for r := range w.ranges {
				StartWriteback(w.f, r[0], r[1])
			}
		}()
	}
	w.ranges <- [2]int64{w.from, end - w.from}
	w.from = end
}

// Wait returns once every range has been handed to the kernel, so that the file may be
// closed. The Writeback is not used afterwards.
func (w *Writeback) Wait() {
	if w.ranges != nil {
		close(w.ranges)
		<-w.done
		w.ranges = nil
	}
}
