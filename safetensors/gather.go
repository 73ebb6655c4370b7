package safetensors

import (
	"fmt"
	"io"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/osfile"
)

// tileBytes bounds each buffer a gather uses: one for a span of the source, one for the
// output it becomes.
const tileBytes = 4 << 20

// view is a strided window of a storage, in elements.
type view struct {
	off          int64
	size, stride []int64
}

func (v view) numel() int64 {
	n := int64(1)
	for _, d := range v.size {
		n *= d
	}
	return n
}

func (v view) contiguous() bool {
	t := checkpoint.Tensor{Size: v.size, Stride: v.stride}
	return t.IsContiguous()
}

func (v view) span() (lo, hi int64) {
	t := checkpoint.Tensor{Offset: v.off, Size: v.size, Stride: v.stride}
	return t.Span()
}

// tensor writes t's elements in row-major order.
func (s *sink) tensor(t *checkpoint.Tensor) error {
	return s.view(t.Storage, view{t.Offset, t.Size, t.Stride})
}

// view writes v's elements in row-major order. A contiguous view is a raw span. Otherwise
// the view is split along its leading dimension until a piece either touches a span of the
// source small enough to read whole, or is small enough to assemble in memory from runs
// along its unit-stride dimension; so a transposed weight is read in runs of rows and
// neither buffer grows past tileBytes.
func (s *sink) view(st *checkpoint.Storage, v view) error {
	isz := int64(st.Kind.ItemSize())
	n := v.numel()
	if n == 0 {
		return nil
	}
	if v.contiguous() {
		return s.copyRaw(st.Offset+v.off*isz, n*isz)
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if lo, hi := v.span(); (hi-lo)*isz <= tileBytes {
		return s.gatherSpan(st, v, lo, hi)
	}
	if s.dst != nil && len(v.size) == 2 && v.stride[0] == 1 && v.stride[1] >= v.size[0] && v.stride[1]*isz <= tileBytes {
		return s.transposeToFile(st, v)
	}
	if n*isz <= tileBytes {
		return s.gatherRuns(st, v)
	}
	rowBytes := n / v.size[0] * isz
	if rowBytes > tileBytes {
		for i := int64(0); i < v.size[0]; i++ {
			if err := s.view(st, view{v.off + i*v.stride[0], v.size[1:], v.stride[1:]}); err != nil {
				return err
			}
		}
		return nil
	}
	chunk := tileBytes / rowBytes
	for i := int64(0); i < v.size[0]; i += chunk {
		size := append([]int64{min(chunk, v.size[0]-i)}, v.size[1:]...)
		if err := s.view(st, view{v.off + i*v.stride[0], size, v.stride}); err != nil {
			return err
		}
	}
	return nil
}

func (s *sink) buffers() {
	if s.tile == nil {
		s.tile = make([]byte, tileBytes)
		s.out = make([]byte, tileBytes)
	}
}

func (s *sink) readAt(st *checkpoint.Storage, buf []byte, elem int64) error {
	isz := int64(st.Kind.ItemSize())
	if _, err := s.c.StorageReader(st).ReadAt(buf, elem*isz); err != nil {
		return fmt.Errorf("%w: reading storage bytes: %v", ErrTruncated, err)
	}
	return nil
}

// gatherSpan reads the elements [lo, hi) v touches in one piece and writes v from them.
func (s *sink) gatherSpan(st *checkpoint.Storage, v view, lo, hi int64) error {
	s.buffers()
	isz := int64(st.Kind.ItemSize())
	src := s.tile[:(hi-lo)*isz]
	if err := s.readAt(st, src, lo); err != nil {
		return err
	}
	out := s.out[:0]
	var err error
	eachIndex(v.size, func(idx []int64) bool {
		e := v.off - lo
		for i, x := range idx {
			e += x * v.stride[i]
		}
		out = append(out, src[e*isz:(e+1)*isz]...)
		if len(out) == cap(out) {
			err = s.bytes(out)
			out = out[:0]
		}
		return err == nil
	})
	if err == nil && len(out) > 0 {
		err = s.bytes(out)
	}
	s.done += v.numel() * isz
	s.report()
	return err
}

// gatherRuns assembles v (at most tileBytes) in memory from reads along its unit-stride
// dimension, then writes it.
func (s *sink) gatherRuns(st *checkpoint.Storage, v view) error {
	s.buffers()
	isz := int64(st.Kind.ItemSize())
	out := s.out[:v.numel()*isz]
	ostride := make([]int64, len(v.size))
	acc := int64(1)
	for i := len(v.size) - 1; i >= 0; i-- {
		ostride[i] = acc
		acc *= v.size[i]
	}
	run := -1 // the dimension read in runs: the last one with stride 1
	for i := range v.size {
		if v.stride[i] == 1 && v.size[i] > 1 {
			run = i
		}
	}
	outer := append([]int64(nil), v.size...)
	runLen := int64(1)
	if run >= 0 {
		runLen, outer[run] = v.size[run], 1
	}
	buf := s.tile[:runLen*isz]
	var err error
	eachIndex(outer, func(idx []int64) bool {
		se, oe := v.off, int64(0)
		for i, x := range idx {
			se += x * v.stride[i]
			oe += x * ostride[i]
		}
		if err = s.readAt(st, buf, se); err != nil {
			return false
		}
		step := int64(0)
		if run >= 0 {
			step = ostride[run]
		}
		for j := int64(0); j < runLen; j++ {
			o := (oe + j*step) * isz
			copy(out[o:o+isz], buf[j*isz:(j+1)*isz])
		}
		return true
	})
	if err != nil {
		return err
	}
	s.done += int64(len(out))
	s.report()
	return s.bytes(out)
}

// eachIndex calls fn with every index of a tensor of the given size, in row-major order,
// until fn returns false.
func eachIndex(size []int64, fn func(idx []int64) bool) {
	for _, d := range size {
		if d == 0 {
			return
		}
	}
	idx := make([]int64, len(size))
	for {
		if !fn(idx) {
			return
		}
		i := len(size) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < size[i] {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return
		}
	}
}

// transposeToFile writes a transposed matrix view (strides (1, p), p ≥ rows) straight into
// the output file: it reads bands of whole source rows, one read each, and writes every
// output row's piece of the band at its place. Reading the view in output order instead
// would take one small read per element run; this takes one read per band and one write
// per output row and band.
func (s *sink) transposeToFile(st *checkpoint.Storage, v view) error {
	if err := s.flushRaw(); err != nil {
		return err
	}
	if err := s.bw.Flush(); err != nil {
		return err
	}
	s.buffers()
	isz := int64(st.Kind.ItemSize())
	rows, cols, pitch := v.size[0], v.size[1], v.stride[1]
	base, err := s.dst.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	n := rows * cols * isz
	band := max(1, (tileBytes/isz-rows)/pitch+1) // source rows per read
	piece := s.out
	for c0 := int64(0); c0 < cols; c0 += band {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		b := min(band, cols-c0)
		src := s.tile[:((b-1)*pitch+rows)*isz]
		if err := s.readAt(st, src, v.off+c0*pitch); err != nil {
			return err
		}
		for r := int64(0); r < rows; r++ {
			out := piece[:b*isz]
			for k := int64(0); k < b; k++ {
				e := (k*pitch + r) * isz
				copy(out[k*isz:(k+1)*isz], src[e:e+isz])
			}
			if _, err := s.dst.WriteAt(out, base+(r*cols+c0)*isz); err != nil {
				return err
			}
		}
		s.done += b * rows * isz
		s.report()
	}
	if s.wb == nil {
		s.wb = osfile.NewWriteback(s.dst, base)
	}
	s.wb.Upto(base + n)
	s.written += n
	if _, err := s.dst.Seek(base+n, io.SeekStart); err != nil {
		return err
	}
	return nil
}
