package verify

import (
	"cmp"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// batch is one set of inputs for both forms of a layer: x, [N, C, H', W'], for the 4-D form
// and rows, its C×H×W windows, [N·Ho·Wo, C·H·W], for the 2-D form. prevTol, if not nil, is
// the tolerance the rows already carry from a previous layer (per element of rows).
type batch struct {
	x, rows *Dense
	prevTol []float64
}

// windows lays out x, [N, C, H', W'], as the 4-D form's input and the 2-D form's windows.
func (d *layerData) windows(x *Dense) batch {
	l := d.layer
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	ho, wo := h-l.H+1, w-l.W+1
	rows := d.sc.dense(n*ho*wo, c*l.H*l.W)
	k := rows.Shape[1]
	r := 0
	for s := range n {
		for i := range ho {
			for j := range wo {
				dst := rows.Data[r*k:]
				for ch := range c {
					for y := range l.H {
						src := x.Data[((s*c+ch)*h+i+y)*w+j:]
						copy(dst[(ch*l.H+y)*l.W:][:l.W], src[:l.W])
					}
				}
				r++
			}
		}
	}
	return batch{x: x, rows: rows}
}

// following feeds the previous layer's outputs, through ReLU, to this (1×1) layer.
func (d *layerData) following(prev *outputs) batch {
	ReLU(prev.conv)
	ReLU(prev.lin)
	return batch{x: prev.conv, rows: prev.lin, prevTol: prev.tol}
}

// windowsOf runs the 4-D form on x, [N, C, H', W'], and the 2-D form on each C×H×W window.
func (d *layerData) windowsOf(x *Dense) (*outputs, error) {
	o, err := d.runAll([]batch{d.windows(x)})
	if err != nil {
		return nil, err
	}
	return o[0], nil
}

// next feeds the previous layer's outputs, through ReLU, to this (1×1) layer.
func (d *layerData) next(prev *outputs) (*outputs, error) {
	o, err := d.runAll([]batch{d.following(prev)})
	if err != nil {
		return nil, err
	}
	return o[0], nil
}

// runAll computes both forms on every batch. The weights are gone through once, a block
// of rows at a time, shared out between the cores: each block of the 4-D form's weight
// multiplies the unfolded inputs (im2col) of all batches side by side, the 2-D form's the
// windows of all batches, and its squares (for the tolerance) the squared windows and the
// squared tolerances carried into the chain. See Result for the tolerance.
func (d *layerData) runAll(bs []batch) ([]*outputs, error) {
	out, k := d.lin.out, d.lin.k
	if d.conv.out != out || d.conv.k != k {
		return nil, fmt.Errorf("weights %v and %v: %w", d.lin.shape, d.conv.shape, ErrShape)
	}
	unfolded, cols, err := d.unfold(bs)
	if err != nil {
		return nil, err
	}
	var nr int
	for _, b := range bs {
		if len(b.rows.Shape) != 2 || b.rows.Shape[1] != k || !b.rows.valid() {
			return nil, fmt.Errorf("linear of input %v with weight %v: %w", b.rows.Shape, d.lin.shape, ErrShape)
		}
		nr += b.rows.Shape[0]
	}
	all := d.sc.floats(nr * k)[:0]
	for _, b := range bs {
		all = append(all, b.rows.Data...)
	}
	// The products with the squared weights: of every squared row, and of the squared
	// tolerances carried into the rows of batches that have them.
	var room [4]squared
	squares := append(room[:0], squared{z: d.sc.floats(len(all)), nr: nr})
	for i, v := range all {
		squares[0].z[i] = v * v
	}
	for _, b := range bs {
		if b.prevTol == nil {
			continue
		}
		t := d.sc.floats(len(b.prevTol))
		for i, v := range b.prevTol {
			t[i] = float32(v * v)
		}
		squares = append(squares, squared{z: t, nr: b.rows.Shape[0]})
	}
	// Results come out transposed, a row per output: the kernel reads the weight's rows
	// where they lie and packs only the inputs, a few columns.
	prod := d.sc.floats(out * cols) // 4-D form, [out, cols]
	yt := d.sc.floats(out * nr)     // 2-D form, [out, nr]
	work := cols + nr
	for i := range squares {
		squares[i].res = d.sc.floats(out * squares[i].nr)
		work += squares[i].nr
	}
	if err := d.forBlocks(work, func(o0, ob int, wl, wc, w2 []float32) {
		// w2 may be wl itself, squared in place once both forms are done with it.
		if cols > 0 {
			sgemm(false, false, ob, cols, k, 1, wc, k, unfolded, cols, 0, prod[o0*cols:], cols)
		}
		if nr > 0 {
			sgemm(false, true, ob, nr, k, 1, wl, k, all, k, 0, yt[o0*nr:], nr)
		}
		for i, v := range wl {
			w2[i] = v * v
		}
		for _, s := range squares {
			if s.nr > 0 {
				sgemm(false, true, ob, s.nr, k, 1, w2, k, s.z, k, 0, s.res[o0*s.nr:], s.nr)
			}
		}
	}); err != nil {
		return nil, err
	}
	res := make([]*outputs, len(bs))
	row, col, carried := 0, 0, 1
	for bi, b := range bs {
		n := b.rows.Shape[0]
		o := &outputs{conv: d.folded(b.x, prod, cols, col), lin: d.sc.dense(n, out), tol: d.sc.float64s(n * out)}
		var carry *squared
		if b.prevTol != nil {
			carry = &squares[carried]
			carried++
		}
		for r := range n {
			for c := range out {
				i := r*out + c
				v := yt[c*nr+row+r]
				s2 := float64(squares[0].res[c*nr+row+r])
				if d.linBias != nil {
					v += d.linBias[c]
					b := float64(d.linBias[c])
					s2 += b * b
				}
				o.lin.Data[i] = v
				o.tol[i] = d.gamma * (math.Sqrt(s2) + math.Abs(float64(v)))
				if carry != nil {
					o.tol[i] += math.Sqrt(float64(carry.res[c*carry.nr+r]))
				}
			}
		}
		res[bi] = o
		row += n
		col += numElements(o.conv.Shape) / out
	}
	return res, nil
}

// unfold checks each batch's x against the 4-D form's weight and returns the unfolded
// inputs of all batches side by side, [C·kH·kW, cols].
func (d *layerData) unfold(bs []batch) ([]float32, int, error) {
	if len(d.conv.shape) != 4 {
		return nil, 0, fmt.Errorf("conv2d with weight %v: %w", d.conv.shape, ErrShape)
	}
	c, kh, kw := d.conv.shape[1], d.conv.shape[2], d.conv.shape[3]
	k := c * kh * kw
	cols := 0
	for _, b := range bs {
		x := b.x
		if len(x.Shape) != 4 || x.Shape[1] != c || x.Shape[2] < kh || x.Shape[3] < kw || !x.valid() {
			return nil, 0, fmt.Errorf("conv2d of input %v with weight %v: %w", x.Shape, d.conv.shape, ErrShape)
		}
		cols += x.Shape[0] * (x.Shape[2] - kh + 1) * (x.Shape[3] - kw + 1)
	}
	unfolded := d.sc.floats(k * cols)
	at := 0
	for _, b := range bs {
		n, ho, wo := b.x.Shape[0], b.x.Shape[2]-kh+1, b.x.Shape[3]-kw+1
		im2col(unfolded[at:], cols, b.x, 0, n, kh, kw, ho, wo, ConvParams{}.normalized())
		at += n * ho * wo
	}
	return unfolded, cols, nil
}

// folded is the 4-D form's output on x, [N, out, Ho, Wo], from its columns of prod
// ([out, cols]) starting at col, with the bias added.
func (d *layerData) folded(x *Dense, prod []float32, cols, col int) *Dense {
	out, kh, kw := d.conv.out, d.conv.shape[2], d.conv.shape[3]
	n, ho, wo := x.Shape[0], x.Shape[2]-kh+1, x.Shape[3]-kw+1
	plane := ho * wo
	y := d.sc.dense(n, out, ho, wo)
	for s := range n {
		for o := range out {
			copy(y.Data[(s*out+o)*plane:][:plane], prod[o*cols+col+s*plane:][:plane])
		}
	}
	addBias(y, d.convBias)
	return y
}

// squared is one input of the products with the squared weights: nr rows of k squared
// values, and the products, [out, nr].
type squared struct {
	z   []float32
	nr  int
	res []float32
}

// tileRows is how many rows of its left operand internal/sgemm's kernel takes at once:
// blocks of whole tiles are read where they lie, without a copy.
const tileRows = 6

// blockBytes bounds a block of weight rows read at a time; each core holds one when both
// forms read the same bytes, two otherwise. Each block's products pack the inputs anew, so
// blocks of fewer rows cost more copying. Tests lower it.
var blockBytes = 8 << 20

// parallelWork is the least work, in multiply-adds, that forBlocks shares out between
// cores: starting and waking goroutines for less costs more than it saves, which a
// checkpoint of thousands of small layers pays thousands of times.
const parallelWork = 1 << 20

// forBlocks calls f for every block of weight rows [o0, o0+ob), with the 2-D form's rows,
// the 4-D form's rows (the same slice when both forms read the same bytes) and room for
// the squares of the 2-D form's rows (its rows themselves when they were read into a
// buffer of forBlocks' own, which f may then overwrite after using them). work is how many
// multiply-adds f does per weight element. A layer with at least parallelWork of them is
// shared out on as many goroutines as there are cores; a smaller one runs on the caller's,
// with buffers from the layer's scratch. It returns the first error reading a block.
func (d *layerData) forBlocks(work int, f func(o0, ob int, wl, wc, w2 []float32)) error {
	out, k := d.lin.out, d.lin.k
	if out == 0 || k == 0 {
		return nil
	}
	per := min(out, max(1, blockBytes/4/k))
	if per > tileRows {
		per -= per % tileRows
	}
	blocks := (out + per - 1) / per
	shared := d.lin.sameRows(d.conv)
	var (
		mu    sync.Mutex
		taken int
		first error
	)
	workers, sc := 1, d.sc
	if int64(out)*int64(k)*int64(work) >= parallelWork {
		workers, sc = min(blocks, runtime.GOMAXPROCS(0)), nil
	}
	parallel(workers, func() {
		var bufL, bufC []float32
		if d.lin.src != nil {
			bufL = sc.floats(per * k)
		}
		if d.conv.src != nil && !shared {
			bufC = sc.floats(per * k)
		}
		var w2 []float32
		if bufL == nil {
			w2 = sc.floats(per * k)
		}
		for {
			mu.Lock()
			b := taken
			taken++
			stop := first != nil
			mu.Unlock()
			if b >= blocks || stop {
				return
			}
			o0 := b * per
			ob := min(per, out-o0)
			wl, err := d.lin.rows(o0, ob, bufL)
			wc := wl
			if err == nil && !shared {
				wc, err = d.conv.rows(o0, ob, bufC)
			}
			if err != nil {
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
				return
			}
			if bufL != nil {
				f(o0, ob, wl, wc, wl)
			} else {
				f(o0, ob, wl, wc, w2[:ob*k])
			}
		}
	})
	return first
}

// parallel runs f on n goroutines and waits for them. A panic in one, a memory fault
// included (weights may lie in a mapped file that was truncated), is raised again in the
// caller's goroutine, which Check recovers; the workers fault as a panic when the caller
// does (debug.SetPanicOnFault).
func parallel(n int, f func()) {
	if n <= 1 {
		f()
		return
	}
	onFault := debug.SetPanicOnFault(false)
	debug.SetPanicOnFault(onFault)
	var failed atomic.Pointer[any]
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			debug.SetPanicOnFault(onFault)
			defer func() {
				if r := recover(); r != nil {
					failed.CompareAndSwap(nil, &r)
				}
			}()
			f()
		})
	}
	wg.Wait()
	if r := failed.Load(); r != nil {
		panic(*r)
	}
}
