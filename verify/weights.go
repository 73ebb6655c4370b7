package verify

import (
	"fmt"
	"io"
	"unsafe"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// weight is one form's weight as out rows of k elements, held in memory or read a block of
// rows at a time from the checkpoint's file.
//
// A large float32 weight is read, not mapped: on virtual machines the first read of each
// page of a mapping can cost several times what copying the page out of the page cache
// costs (about 0.45 s against 0.1 s for VGG16's 500 MB of classifier weights), and reading
// blocks keeps the process's own memory to a few blocks whatever the size of the weight.
type weight struct {
	shape  []int // the tensor's shape, [out, k] or [out, C, kH, kW]
	out, k int
	data   []float32         // all rows, when held in memory
	src    *io.SectionReader // otherwise the rows, little-endian float32, from byte 0
	from   weightSource      // where src reads: equal sources give equal rows
}

// weightSource names the bytes a weight is read from.
type weightSource struct {
	file    *checkpoint.Checkpoint
	storage *checkpoint.Storage
	offset  int64
}

// denseWeight holds d, of at least two dimensions, as a weight.
func denseWeight(d *Dense) *weight {
	return &weight{shape: d.Shape, out: d.Shape[0], k: numElements(d.Shape[1:]), data: d.Data}
}

// wholeWeight is the most elements a contiguous float32 weight may have to be read whole
// when its layer is loaded rather than a block of rows at a time: one read (or copy from
// the mapping) of a small weight costs less than setting up reads by rows. Tests lower it.
var wholeWeight int64 = scratchMax

// loadWeight prepares t, a tensor of c of at least two dimensions, to be read by rows: a
// large contiguous float32 tensor is read from the file as it is needed (on little-endian
// hosts), any other is decoded whole now (small reads through blk, if not nil), into a
// buffer of sc. When peer, the other form's weight, holds the very same bytes in memory,
// w shares them.
func loadWeight(c *checkpoint.Checkpoint, t *checkpoint.Tensor, blk *block, sc *scratch, peer *weight) (*weight, error) {
	lo, hi, shape, err := checkView(t)
	if err != nil {
		return nil, err
	}
	if len(shape) < 2 {
		return nil, fmt.Errorf("a weight of shape %v: %w", shape, ErrShape)
	}
	w := &weight{shape: shape, out: shape[0], k: numElements(shape[1:])}
	if littleEndianHost && t.Kind() == checkpoint.Float32 && t.Storage.Kind == checkpoint.Float32 &&
		t.IsContiguous() && hi > lo {
		w.from = weightSource{c, t.Storage, lo}
		if hi-lo > wholeWeight {
			w.src = io.NewSectionReader(c.StorageReader(t.Storage), lo*4, (hi-lo)*4)
			return w, nil
		}
		if peer != nil && w.sameRows(peer) {
			w.data = peer.data
			return w, nil
		}
	}
	if w.data, _, err = decodeWith(source{c, blk}, t, sc.floats); err != nil {
		return nil, err
	}
	return w, nil
}

// sameRows reports whether w and v read the very same bytes, so that one read serves both.
func (w *weight) sameRows(v *weight) bool {
	return w.from.file != nil && w.from == v.from && (w.src == nil) == (v.src == nil) && w.out == v.out && w.k == v.k
}

// rows returns rows [o0, o0+n) of w: a slice of the weight held in memory, or buf (of at
// least n·k elements) filled from the file.
func (w *weight) rows(o0, n int, buf []float32) ([]float32, error) {
	if w.src == nil {
		return w.data[o0*w.k : (o0+n)*w.k], nil
	}
	dst := buf[:n*w.k]
	raw := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*len(dst))
	if n, err := w.src.ReadAt(raw, 4*int64(o0)*int64(w.k)); n < len(raw) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading weight rows %d to %d: %w", o0, o0+n, err)
	}
	return dst, nil
}
