package verify

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// family names the kind of object tree a format can hold: torch's formats keep any Python
// tree (dicts, plain values, _metadata, shared storages); safetensors files, alone or
// sharded, hold a flat map of names to contiguous tensors.
func family(format string) string {
	if strings.Contains(format, "safetensors") {
		return "safetensors"
	}
	return "torch"
}

// acrossFormats reports whether orig and conv come from formats whose trees differ, so that
// only their tensors can be compared.
func acrossFormats(orig, conv *checkpoint.Checkpoint) bool {
	return family(orig.Format) != family(conv.Format)
}

// proveTensors is Prove for two checkpoints of different formats. Containers, plain values,
// _metadata and storage sharing cannot survive a change of format, so what is proven is
// what both can hold: the same tensor names in the same order, each with the same dtype and
// the same elements in the same logical (row-major) order, bit for bit, under the same
// shape or, for converted layers, the converted one. Elements are compared through each
// side's view in chunks; a contiguous view is read as one run of bytes.
func proveTensors(orig, conv *checkpoint.Checkpoint, layers []Layer) (*Structure, error) {
	s := &Structure{Differences: []Difference{}}
	differ := func(path, format string, args ...any) {
		if len(s.Differences) >= maxDifferences {
			s.More++
			return
		}
		s.Differences = append(s.Differences, Difference{Path: path, What: fmt.Sprintf(format, args...)})
	}
	converted := map[string]bool{}
	for _, l := range layers {
		converted[l.Path.String()] = true
	}
	a, b := checkpoint.Tensors(orig.Root), checkpoint.Tensors(conv.Root)
	byName := make(map[string]checkpoint.NamedTensor, len(b))
	for _, nt := range b {
		byName[nt.Path.String()] = nt
	}
	seen := make(map[string]bool, len(a))
	storages := map[*checkpoint.Storage]bool{}
	for _, na := range a {
		path := na.Path.String()
		seen[path] = true
		nb, ok := byName[path]
		if !ok {
			differ(path, "missing from the converted file")
			continue
		}
		ta, tb := na.Tensor, nb.Tensor
		s.Tensors++
		if ta.Kind() != tb.Kind() {
			differ(path, "dtype %s, was %s", tb.Kind(), ta.Kind())
			continue
		}
		if !slices.Equal(ta.Size, tb.Size) {
			if !converted[path] || ta.NumElements() != tb.NumElements() {
				differ(path, "shape %s, was %s (not a conversion of a converted layer)", shapeText(tb.Size), shapeText(ta.Size))
				continue
			}
			s.Reshaped++
		}
		storages[tb.Storage] = true
		n, err := sameElements(orig, conv, ta, tb)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		s.Bytes += ta.NumElements() * int64(ta.Kind().ItemSize())
		if n >= 0 {
			differ(path, "element %d (in row-major order) differs", n)
		}
	}
	for _, nt := range b {
		if path := nt.Path.String(); !seen[path] {
			differ(path, "not in the original")
		}
	}
	s.Storages = len(storages)
	return s, nil
}

// sameElements compares two tensors' elements in row-major order and returns the flat index
// of the first that differs, or -1.
func sameElements(orig, conv *checkpoint.Checkpoint, a, b *checkpoint.Tensor) (int64, error) {
	n := a.NumElements()
	if n != b.NumElements() {
		return 0, nil
	}
	item := int64(a.Kind().ItemSize())
	ra, rb := newElementReader(orig, a, item), newElementReader(conv, b, item)
	bufA, bufB := make([]byte, compareChunk), make([]byte, compareChunk)
	per := int64(compareChunk) / item
	for done := int64(0); done < n; {
		m := min(per, n-done)
		if err := ra.read(bufA[:m*item]); err != nil {
			return 0, fmt.Errorf("reading %s: %w", orig.Name, err)
		}
		if err := rb.read(bufB[:m*item]); err != nil {
			return 0, fmt.Errorf("reading %s: %w", conv.Name, err)
		}
		if !bytes.Equal(bufA[:m*item], bufB[:m*item]) {
			i := int64(0)
			for bufA[i] == bufB[i] {
				i++
			}
			return done + i/item, nil
		}
		done += m
	}
	return -1, nil
}

// elementReader yields a tensor's element bytes in row-major order: a contiguous view as
// one run of the storage, any other element by element through a window of the storage.
type elementReader struct {
	src        io.ReaderAt
	item       int64
	contiguous bool
	next       int64 // contiguous: byte offset of the next element in the storage
	pos        func() int64
	window     []byte
	winStart   int64
	winLen     int64
	storageLen int64
}

func newElementReader(c *checkpoint.Checkpoint, t *checkpoint.Tensor, item int64) *elementReader {
	r := &elementReader{src: c.StorageReader(t.Storage), item: item, storageLen: t.Storage.ByteLen()}
	if t.IsContiguous() {
		r.contiguous, r.next = true, t.Offset*item
	} else {
		r.pos = positions(t)
		r.window = make([]byte, min(int64(compareChunk), max(r.storageLen, item)))
		r.winStart = -1
	}
	return r
}

func (r *elementReader) read(dst []byte) error {
	if r.contiguous {
		if _, err := r.src.ReadAt(dst, r.next); err != nil && !(err == io.EOF && len(dst) == 0) {
			return err
		}
		r.next += int64(len(dst))
		return nil
	}
	for i := int64(0); i < int64(len(dst)); i += r.item {
		off := r.pos() * r.item
		if r.winStart < 0 || off < r.winStart || off+r.item > r.winStart+r.winLen {
			r.winStart = off
			r.winLen = min(int64(len(r.window)), r.storageLen-off)
			if _, err := r.src.ReadAt(r.window[:r.winLen], off); err != nil && err != io.EOF {
				return err
			}
		}
		copy(dst[i:i+r.item], r.window[off-r.winStart:])
	}
	return nil
}
