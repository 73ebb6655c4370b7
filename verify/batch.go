package verify

import (
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
	rows := NewDense(n*ho*wo, c*l.H*l.W)
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

// runAll computes both forms on every batch: each form is one matrix product over all the
// batches' columns, so that a large weight is read once per form rather than once per
// batch (for VGG16's fc6, 400 MB). See Result for the tolerance.
func (d *layerData) runAll(bs []batch) ([]*outputs, error) {
	convs, err := d.convAll(bs)
	if err != nil {
		return nil, err
	}
	all := bs[0].rows
	if len(bs) > 1 {
		k := d.lin.Shape[1]
		var nr int
		for _, b := range bs {
			nr += b.rows.Shape[0]
		}
		all = NewDense(nr, k)
		at := 0
		for _, b := range bs {
			at += copy(all.Data[at:], b.rows.Data)
		}
	}
	lin, err := Linear(all, d.lin, d.linBias)
	if err != nil {
		return nil, err
	}
	// The squared products: of every row, and of the tolerances carried into the rows of
	// batches that have them.
	out := d.lin.Shape[0]
	squares := []squared{{z: make([]float32, len(all.Data)), nr: all.Shape[0]}}
	for i, v := range all.Data {
		squares[0].z[i] = v * v
	}
	for _, b := range bs {
		if b.prevTol == nil {
			continue
		}
		t := make([]float32, len(b.prevTol))
		for i, v := range b.prevTol {
			t[i] = float32(v * v)
		}
		squares = append(squares, squared{z: t, nr: b.rows.Shape[0]})
	}
	d.squaredProducts(squares)
	res := make([]*outputs, len(bs))
	row, carried := 0, 1
	for bi, b := range bs {
		nr := b.rows.Shape[0]
		o := &outputs{conv: convs[bi], lin: &Dense{Shape: []int{nr, out}, Data: lin.Data[row*out : (row+nr)*out]}}
		products := squares[0].res[row*out : (row+nr)*out]
		var carry []float32
		if b.prevTol != nil {
			carry = squares[carried].res
			carried++
		}
		o.tol = make([]float64, nr*out)
		for r := range nr {
			for c := range out {
				i := r*out + c
				s2 := float64(products[i])
				if d.linBias != nil {
					b := float64(d.linBias[c])
					s2 += b * b
				}
				o.tol[i] = d.gamma * (math.Sqrt(s2) + math.Abs(float64(o.lin.Data[i])))
				if carry != nil {
					o.tol[i] += math.Sqrt(float64(carry[i]))
				}
			}
		}
		res[bi] = o
		row += nr
	}
	return res, nil
}

// convAll runs the 4-D form on every batch's x: Conv2d, with the unfolded inputs (im2col)
// of all batches side by side in one product when they fit in maxColumns.
func (d *layerData) convAll(bs []batch) ([]*Dense, error) {
	out, c, kh, kw := d.conv.Shape[0], d.conv.Shape[1], d.conv.Shape[2], d.conv.Shape[3]
	k := c * kh * kw
	cols, fit := 0, len(bs) > 1 && d.conv.valid() && k > 0 && out > 0
	for _, b := range bs {
		x := b.x
		if len(x.Shape) != 4 || x.Shape[1] != c || x.Shape[2] < kh || x.Shape[3] < kw || !x.valid() {
			fit = false // Conv2d says what is wrong
			break
		}
		cols += x.Shape[0] * (x.Shape[2] - kh + 1) * (x.Shape[3] - kw + 1)
	}
	res := make([]*Dense, len(bs))
	if !fit || k*cols > maxColumns {
		for i, b := range bs {
			y, err := Conv2d(b.x, d.conv, d.convBias, ConvParams{})
			if err != nil {
				return nil, err
			}
			res[i] = y
		}
		return res, nil
	}
	unfolded := make([]float32, k*cols)
	prod := make([]float32, out*cols)
	// im2col writes a [k, ld] matrix; each batch's block of columns is unfolded on its own
	// and then placed beside the others.
	at := 0
	for _, b := range bs {
		n, ho, wo := b.x.Shape[0], b.x.Shape[2]-kh+1, b.x.Shape[3]-kw+1
		ld := n * ho * wo
		part := make([]float32, k*ld)
		im2col(part, b.x, 0, n, kh, kw, ho, wo, ConvParams{}.normalized())
		for r := range k {
			copy(unfolded[r*cols+at:][:ld], part[r*ld:][:ld])
		}
		at += ld
	}
	sgemm(false, false, out, cols, k, 1, d.conv.Data, k, unfolded, cols, 0, prod, cols)
	at = 0
	for i, b := range bs {
		n, ho, wo := b.x.Shape[0], b.x.Shape[2]-kh+1, b.x.Shape[3]-kw+1
		plane := ho * wo
		y := NewDense(n, out, ho, wo)
		for s := range n {
			for o := range out {
				copy(y.Data[(s*out+o)*plane:][:plane], prod[o*cols+at+s*plane:][:plane])
			}
		}
		addBias(y, d.convBias)
		res[i] = y
		at += n * plane
	}
	return res, nil
}

// squared is one input of squaredProducts: nr rows of k already squared values, and the
// products computed for them, [nr, out].
type squared struct {
	z   []float32
	nr  int
	res []float32
}

// squaredBlock is how many weight rows squaredProducts squares at a time.
const squaredBlock = 64

// squaredProducts computes, for each input and each of its rows z and each output o,
// Σ_i w[o,i]²·z_i into the input's res. The weights are squared a block of rows at a time,
// so no second copy of a large weight is made, and each block serves every input; the
// blocks are shared out between the cores.
func (d *layerData) squaredProducts(in []squared) {
	out, k := d.lin.Shape[0], d.lin.Shape[1]
	for i := range in {
		in[i].res = make([]float32, in[i].nr*out)
	}
	if k == 0 || out == 0 {
		return
	}
	blocks := (out + squaredBlock - 1) / squaredBlock
	workers := min(blocks, runtime.GOMAXPROCS(0))
	var next sync.Mutex
	taken := 0
	work := func() {
		w := make([]float32, min(squaredBlock, out)*k)
		var part []float32
		for _, s := range in {
			part = grow(part, min(squaredBlock, out)*s.nr)
		}
		for {
			next.Lock()
			b := taken
			taken++
			next.Unlock()
			if b >= blocks {
				return
			}
			o0 := b * squaredBlock
			ob := min(squaredBlock, out-o0)
			for i, v := range d.lin.Data[o0*k : (o0+ob)*k] {
				w[i] = v * v
			}
			for _, s := range in {
				if s.nr == 0 {
					continue
				}
				// w·zᵀ reads the squared block where it lies; the inputs, a few rows,
				// are what the kernel packs.
				sgemm(false, true, ob, s.nr, k, 1, w[:ob*k], k, s.z, k, 0, part[:ob*s.nr], s.nr)
				for o := range ob {
					for r, v := range part[o*s.nr : (o+1)*s.nr] {
						s.res[r*out+o0+o] = v
					}
				}
			}
		}
	}
	parallel(workers, work)
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

// grow returns buf with room for n elements.
func grow(buf []float32, n int) []float32 {
	if cap(buf) >= n {
		return buf[:cap(buf)]
	}
	return make([]float32, n)
}
