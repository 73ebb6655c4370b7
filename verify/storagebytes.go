package verify

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"reflect"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// compareChunk is how many storage bytes are compared at a time, per side.
var compareChunk = 1 << 20

// storages compares every paired storage's bytes. They are read, even from mapped
// checkpoints: on virtual machines the first read of each page of a mapping can cost
// several times what copying the page out of the page cache costs. Storages that lie one
// after another in both files, as a checkpoint's many small ones do, are read together, a
// span of up to compareChunk bytes per file at a time; a larger storage streams through
// chunks of its own.
func (p *prover) storages(orig, conv *checkpoint.Checkpoint) error {
	srcA, _ := orig.Source()
	srcB, _ := conv.Source()
	sameSource := srcA != nil && reflect.TypeOf(srcA) == reflect.TypeOf(srcB) &&
		reflect.TypeOf(srcA).Comparable() && srcA == srcB
	bufs := &[3][]byte{make([]byte, compareChunk), make([]byte, compareChunk), make([]byte, compareChunk)}
	r := span{a: srcA, b: srcB}
	for i := range p.pairs {
		sa, sb := p.pairs[i].a, p.pairs[i].b
		p.s.Storages++
		if sa.Len != sb.Len {
			// Differences are listed in storage order: those of the span come first.
			if err := p.compareSpan(&r, orig, conv, bufs); err != nil {
				return err
			}
			p.differ(p.views[p.pairs[i].first].path, "its storage holds %d elements, was %d", sb.Len, sa.Len)
			continue
		}
		n := sa.ByteLen()
		p.s.Bytes += n
		if sameSource && sa.Offset == sb.Offset {
			p.proven(sa, sb) // the very same bytes
			continue
		}
		if srcA != nil && srcB != nil && n <= int64(compareChunk) {
			if !r.extend(i, sa, sb, int64(compareChunk)) {
				if err := p.compareSpan(&r, orig, conv, bufs); err != nil {
					return err
				}
				r.extend(i, sa, sb, int64(compareChunk))
			}
			continue
		}
		if err := p.compareSpan(&r, orig, conv, bufs); err != nil {
			return err
		}
		if err := p.compareStreamed(i, orig, conv, bufs); err != nil {
			return err
		}
	}
	return p.compareSpan(&r, orig, conv, bufs)
}

// maxGap is the most bytes between two storages of a span: a zip record's header and
// padding are well under it.
const maxGap = 4 << 10

// span is a run of storage pairs whose original storages lie one after another in the
// original's source, in order, at most maxGap bytes apart, and whose converted storages do
// the same in the converted file's: bytes [loA, hiA) of a and [loB, hiB) of b hold them.
type span struct {
	a, b               io.ReaderAt
	pairs              []int
	loA, hiA, loB, hiB int64
}

// extend adds pair i, of storages sa and sb, to the span, if it can join it within limit
// bytes per file.
func (r *span) extend(i int, sa, sb *checkpoint.Storage, limit int64) bool {
	n := sa.ByteLen()
	if len(r.pairs) == 0 {
		r.pairs = append(r.pairs, i)
		r.loA, r.hiA, r.loB, r.hiB = sa.Offset, sa.Offset+n, sb.Offset, sb.Offset+n
		return true
	}
	if sa.Offset < r.hiA || sa.Offset-r.hiA > maxGap || sa.Offset+n-r.loA > limit ||
		sb.Offset < r.hiB || sb.Offset-r.hiB > maxGap || sb.Offset+n-r.loB > limit {
		return false
	}
	r.pairs = append(r.pairs, i)
	r.hiA, r.hiB = sa.Offset+n, sb.Offset+n
	return true
}

// compareSpan compares the storages of the span, reading each file's part in one go, and
// empties it. When a part cannot be read whole, the storages are compared one by one, so
// that the error names the storage that could not be read.
func (p *prover) compareSpan(r *span, orig, conv *checkpoint.Checkpoint, bufs *[3][]byte) error {
	if len(r.pairs) == 0 {
		return nil
	}
	defer func() { r.pairs = r.pairs[:0] }()
	bufA, bufB := bufs[0][:r.hiA-r.loA], bufs[1][:r.hiB-r.loB]
	na, _ := r.a.ReadAt(bufA, r.loA)
	nb, _ := r.b.ReadAt(bufB, r.loB)
	if na < len(bufA) || nb < len(bufB) {
		for _, i := range r.pairs {
			if err := p.compareStreamed(i, orig, conv, bufs); err != nil {
				return err
			}
		}
		return nil
	}
	for _, i := range r.pairs {
		sa, sb := p.pairs[i].a, p.pairs[i].b
		n := sa.ByteLen()
		a := bufA[sa.Offset-r.loA:][:n]
		b := bufB[sb.Offset-r.loB:][:n]
		if bytes.Equal(a, b) {
			p.proven(sa, sb)
			continue
		}
		at := 0
		for a[at] == b[at] {
			at++
		}
		size := int64(sa.Kind.ItemSize())
		elem := int64(at) / size
		p.byteDifference(i, elem, a[elem*size:][:size], b[elem*size:][:size])
	}
	return nil
}

// compareStreamed compares the storages of pair i through chunks of the buffers.
func (p *prover) compareStreamed(i int, orig, conv *checkpoint.Checkpoint, bufs *[3][]byte) error {
	sa, sb := p.pairs[i].a, p.pairs[i].b
	where := p.views[p.pairs[i].first].path
	ra, rb := orig.StorageReader(sa), conv.StorageReader(sb)
	at, errA, errB := firstDifferenceAt(ra, rb, sa.ByteLen(), bufs)
	if errA != nil {
		return fmt.Errorf("%s: reading storage %q of %s: %w", where, sa.Key, orig.Name, errA)
	}
	if errB != nil {
		return fmt.Errorf("%s: reading storage %q of %s: %w", where, sb.Key, conv.Name, errB)
	}
	if at < 0 {
		p.proven(sa, sb)
		return nil
	}
	size := int64(sa.Kind.ItemSize())
	elem := at / size
	a, b := make([]byte, size), make([]byte, size)
	if _, err := ra.ReadAt(a, elem*size); err != nil {
		return fmt.Errorf("%s: reading storage %q of %s: %w", where, sa.Key, orig.Name, err)
	}
	if _, err := rb.ReadAt(b, elem*size); err != nil {
		return fmt.Errorf("%s: reading storage %q of %s: %w", where, sb.Key, conv.Name, err)
	}
	p.byteDifference(i, elem, a, b)
	return nil
}

// byteDifference names the first differing element of a storage by a tensor that views
// it, with the index in that tensor.
func (p *prover) byteDifference(pair int, elem int64, a, b []byte) {
	s := p.pairs[pair].a
	values := fmt.Sprintf("%s in the original, %s in the converted file", formatElement(s.Kind, a), formatElement(s.Kind, b))
	for v := p.pairs[pair].first; v >= 0; v = p.views[v].next {
		if idx, ok := indexOf(p.views[v].a, elem); ok {
			p.differ(p.views[v].path, "element %v differs (first difference in storage order): %s", idx, values)
			return
		}
	}
	p.differ(p.views[p.pairs[pair].first].path, "storage %q element %d, outside every tensor's view, differs: %s", s.Key, elem, values)
}

// indexOf finds the index of storage element pos in the view, for views that do not
// overlap themselves.
func indexOf(t *checkpoint.Tensor, pos int64) ([]int64, bool) {
	order, ok := storageOrder(t)
	if !ok || t.NumElements() == 0 {
		return nil, false
	}
	idx := make([]int64, len(t.Size))
	rem := pos - t.Offset
	for _, d := range order {
		if rem < 0 {
			return nil, false
		}
		idx[d] = rem / t.Stride[d]
		if idx[d] >= t.Size[d] {
			return nil, false
		}
		rem -= idx[d] * t.Stride[d]
	}
	return idx, rem == 0
}

// formatElement shows one little-endian element with its bits, so that -0.0 against +0.0
// or two NaN payloads read differently.
func formatElement(k checkpoint.StorageKind, raw []byte) string {
	var bits uint64
	for i := len(raw) - 1; i >= 0; i-- {
		bits = bits<<8 | uint64(raw[i])
	}
	hex := fmt.Sprintf("%#0*x", 2*len(raw), bits)
	if conv, err := converter[float64](k); err == nil && k != checkpoint.Bool {
		return fmt.Sprintf("%v (%s)", conv(raw), hex)
	}
	if k == checkpoint.Complex64 && len(raw) == 8 {
		le := binary.LittleEndian
		return fmt.Sprintf("(%v%+vj) (%s)", math.Float32frombits(le.Uint32(raw)), math.Float32frombits(le.Uint32(raw[4:])), hex)
	}
	return hex
}

// proven records that the converted file's storage sb holds exactly the bytes of the
// original's sa, so that a view of sb reads the same elements from sa.
func (p *prover) proven(sa, sb *checkpoint.Storage) {
	if sa.Kind == sb.Kind && sa.Len == sb.Len {
		p.same[sb] = sa
	}
}

// inOriginal returns the converted file's tensor t viewing, instead of its own storage,
// the original's storage proven to hold the same bytes (or t itself when there is none).
// Its elements are the same, bit for bit; reading them from the original's pages, already
// read for the proof, spares reading the converted file's a second time.
func (same identical) inOriginal(t *checkpoint.Tensor) *checkpoint.Tensor {
	if t == nil {
		return t
	}
	sa, ok := same[t.Storage]
	if !ok {
		return t
	}
	v := *t
	v.Storage = sa
	return &v
}

// firstDifferenceAt returns the index of the first byte where the first n bytes of a and
// b differ, or -1, with the error reading a or b. Each side is read in chunks of the size of
// the buffers (three of the same length: one for a, two for b); the next chunk of b is read
// while the current one is compared, so that on two cores reading b costs no time of its own.
func firstDifferenceAt(a, b io.ReaderAt, n int64, bufs *[3][]byte) (int64, error, error) {
	type chunk struct {
		off int64
		buf []byte
		err error
	}
	size := int64(len(bufs[0]))
	free := make(chan []byte, 2)
	free <- bufs[1]
	free <- bufs[2]
	read := make(chan chunk, 2)
	stop := make(chan struct{})
	defer func() {
		close(stop)
		for range read { // the reader is gone when this function returns
		}
	}()
	go func() {
		defer close(read)
		for off := int64(0); off < n; off += size {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			m := min(size, n-off)
			_, err := io.ReadFull(io.NewSectionReader(b, off, m), buf[:m])
			read <- chunk{off, buf[:m], err}
			if err != nil {
				return
			}
		}
	}()
	for c := range read {
		if c.err != nil {
			return 0, nil, c.err
		}
		mine := bufs[0][:len(c.buf)]
		if _, err := io.ReadFull(io.NewSectionReader(a, c.off, int64(len(mine))), mine); err != nil {
			return 0, err, nil
		}
		if !bytes.Equal(mine, c.buf) {
			for i := range mine {
				if mine[i] != c.buf[i] {
					return c.off + int64(i), nil, nil
				}
			}
		}
		free <- c.buf[:cap(c.buf)]
	}
	return -1, nil, nil
}
