package pickle

import "io"

// blockReader serves small reads from one cached block of the underlying reader. The zip
// reader reads every record's 30-byte local header to find where its data starts; torch
// writes records in order, so for a file of many small records a cached block answers
// hundreds of those reads with one system call. Larger reads go straight through.
type blockReader struct {
	r     io.ReaderAt
	size  int64
	block []byte
	start int64 // offset of block in r
}

const readBlockSize = 64 << 10

func newBlockReader(r io.ReaderAt, size int64) *blockReader {
	return &blockReader{r: r, size: size, start: -1}
}

func (b *blockReader) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > readBlockSize/4 || off < 0 {
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

// fill loads the block starting at off (or ending at the source's end, if that is nearer).
func (b *blockReader) fill(off int64) error {
	if b.block == nil {
		b.block = make([]byte, readBlockSize)
	}
	n, err := b.r.ReadAt(b.block[:cap(b.block)], off)
	if n == 0 && err != nil {
		b.start = -1
		return err
	}
	b.block, b.start = b.block[:n], off
	return nil
}
