// Package blockread serves many small reads of a file from one cached block of it.
//
// Reading a checkpoint of many small records or tensors in file order asks for a few bytes
// at a time, one after another: the local header of every zip record, the bytes of every
// small tensor. A block read once answers hundreds of those reads with one system call.
package blockread

import "io"

// Reader is an io.ReaderAt that serves reads of at most MaxRead bytes from one cached
// block of its source, read BlockSize bytes at a time from the first byte asked for.
// Larger reads, and reads the block cannot serve, go straight to the source. It is not
// safe for concurrent use.
type Reader struct {
	r       io.ReaderAt
	size    int64 // of r: no block reaches past it
	maxRead int
	block   []byte
	start   int64 // offset of block in r; -1 when it holds nothing
}

// NewReader returns a Reader of the first size bytes of r with blocks of blockSize bytes,
// serving reads of at most maxRead bytes from them.
func NewReader(r io.ReaderAt, size int64, blockSize, maxRead int) *Reader {
	return &Reader{r: r, size: size, maxRead: maxRead, block: make([]byte, 0, blockSize), start: -1}
}

func (b *Reader) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > b.maxRead || off < 0 {
		return b.r.ReadAt(p, off)
	}
	if b.start < 0 || off < b.start || off+int64(len(p)) > b.start+int64(len(b.block)) {
		if err := b.fill(off); err != nil {
			return b.r.ReadAt(p, off)
		}
	}
	n := copy(p, b.block[off-b.start:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fill loads the block starting at off, as much of it as lies before the source's end.
func (b *Reader) fill(off int64) error {
	want := int64(cap(b.block))
	if off < b.size {
		want = min(want, b.size-off)
	}
	n, err := b.r.ReadAt(b.block[:want], off)
	if n == 0 && err != nil {
		b.start = -1
		return err
	}
	b.block, b.start = b.block[:n], off
	return nil
}
