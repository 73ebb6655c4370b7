package sgemm

import (
	"sync"
	"unsafe"
)

// Blocking parameters; see the package comment.
const (
	mr = 6    // rows of the register tile
	nr = 16   // columns of the register tile
	kc = 256  // depth of a packed block
	mc = 120  // rows of a packed A block, a multiple of mr
	nc = 4080 // columns of a packed B panel, a multiple of nr
)

// microKernel adds the product of an mr x kb sliver of packed A and a
// kb x nr sliver of packed B to the mr x nr tile of C at c, whose rows are
// ldc elements apart.
type microKernel func(kb int, a, b, c *float32, ldc int)

// rowsKernel is a microKernel that reads A unpacked: mr rows lda elements
// apart, starting at a. It may prefetch the same columns of the rows at
// next, which it must not otherwise read.
type rowsKernel func(kb int, a *float32, lda int, b, c *float32, ldc int, next *float32)

// workspace holds one goroutine's packing buffers.
type workspace struct {
	a, b []float32
	tile [mr * nr]float32
}

var workspaces = sync.Pool{New: func() any { return new(workspace) }}

// grow returns buf resliced to n elements, reallocating when it is too
// small. New buffers start on a 32-byte boundary so that packed slivers
// never straddle more cache lines than necessary.
func grow(buf []float32, n int) []float32 {
	if cap(buf) >= n {
		return buf[:n]
	}
	const align = 32 / 4
	raw := make([]float32, n+align)
	off := int(uintptr(unsafe.Pointer(&raw[0])) % 32 / 4)
	if off != 0 {
		off = align - off
	}
	return raw[off : off+n : off+n]
}

// run computes the whole of p on the calling goroutine.
func (p problem) run() {
	p.scaleC()
	if p.k == 0 || p.alpha == 0 {
		return
	}
	ws := workspaces.Get().(*workspace)
	defer workspaces.Put(ws)
	for jc := 0; jc < p.n; jc += nc {
		nb := min(nc, p.n-jc)
		for pc := 0; pc < p.k; pc += kc {
			kb := min(kc, p.k-pc)
			ws.b = grow(ws.b, roundUp(nb, nr)*kb)
			p.packB(ws.b, pc, kb, jc, nb)
			for ic := 0; ic < p.m; ic += mc {
				mb := min(mc, p.m-ic)
				ws.a = grow(ws.a, roundUp(mb, mr)*kb)
				p.packA(ws.a, ic, mb, pc, kb)
				p.macroKernel(ws, ic, mb, pc, jc, nb, kb)
			}
		}
	}
}

func roundUp(x, unit int) int { return (x + unit - 1) / unit * unit }

// scaleC applies beta to C up front so that every k block can simply
// accumulate. A zero beta clears C without reading it, as BLAS requires.
func (p *problem) scaleC() {
	if p.beta == 1 {
		return
	}
	for i := range p.m {
		row := p.c[i*p.ldc:][:p.n]
		if p.beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= p.beta
		}
	}
}

// macroKernel multiplies the mb x kb block of op(A) at (ic, pc) by the
// packed kb x nb panel of B into C at (ic, jc). Slivers of A that packA
// left in place are read straight from the matrix.
func (p *problem) macroKernel(ws *workspace, ic, mb, pc, jc, nb, kb int) {
	for jr := 0; jr < nb; jr += nr {
		nrb := min(nr, nb-jr)
		bs := &ws.b[jr*kb]
		for ir := 0; ir < mb; ir += mr {
			mrb := min(mr, mb-ir)
			ci := (ic+ir)*p.ldc + jc + jr
			inside := mrb == mr && nrb == nr
			dst, ldc := &p.c[ci], p.ldc
			if !inside {
				// Edge tile: the packed slivers are zero-padded, so
				// compute the full tile aside and add only the part
				// inside C.
				clear(ws.tile[:])
				dst, ldc = &ws.tile[0], nr
			}
			if mrb == mr && !p.transA {
				ai := (ic+ir)*p.lda + pc
				next := ai
				if jr+nr >= nb && ic+mc+ir+mr <= p.m {
					// The last pass over this block: fetch the
					// next block's rows from memory meanwhile.
					next += mc * p.lda
				}
				kernelRows(kb, &p.a[ai], p.lda, bs, dst, ldc, &p.a[next])
			} else {
				kernel(kb, &ws.a[ir*kb], bs, dst, ldc)
			}
			if inside {
				continue
			}
			for r := range mrb {
				row := p.c[ci+r*p.ldc:][:nrb]
				for j := range row {
					row[j] += ws.tile[r*nr+j]
				}
			}
		}
	}
}

// packA copies rows [ic, ic+mb) and columns [pc, pc+kb) of op(A) into dst
// as slivers of mr rows, each stored column after column, with the last
// sliver padded by zero rows. When A is not transposed, full slivers are
// left out: the micro-kernel reads their rows in place as fast as it reads
// a packed copy, and packing them would cost as much as a quarter of the
// multiplication when n is small.
func (p *problem) packA(dst []float32, ic, mb, pc, kb int) {
	for ir := 0; ir < mb; ir += mr {
		rows := min(mr, mb-ir)
		s := dst[ir*kb:][:mr*kb]
		if p.transA {
			for q := range kb {
				src := p.a[(pc+q)*p.lda+ic+ir:][:rows]
				d := s[q*mr:][:mr]
				copy(d, src)
				clear(d[rows:])
			}
			continue
		}
		if rows == mr {
			continue
		}
		for r := range mr {
			if r >= rows {
				for q := range kb {
					s[q*mr+r] = 0
				}
				continue
			}
			src := p.a[(ic+ir+r)*p.lda+pc:][:kb]
			for q, v := range src {
				s[q*mr+r] = v
			}
		}
	}
}

// packB copies rows [pc, pc+kb) and columns [jc, jc+nb) of op(B), scaled
// by alpha, into dst as slivers of nr columns, each stored row after row,
// with the last sliver padded by zero columns.
func (p *problem) packB(dst []float32, pc, kb, jc, nb int) {
	alpha := p.alpha
	for jr := 0; jr < nb; jr += nr {
		cols := min(nr, nb-jr)
		s := dst[jr*kb:][:nr*kb]
		if !p.transB {
			for q := range kb {
				src := p.b[(pc+q)*p.ldb+jc+jr:][:cols]
				d := s[q*nr:][:nr]
				for j, v := range src {
					d[j] = alpha * v
				}
				clear(d[cols:])
			}
			continue
		}
		for j := range nr {
			if j >= cols {
				for q := range kb {
					s[q*nr+j] = 0
				}
				continue
			}
			src := p.b[(jc+jr+j)*p.ldb+pc:][:kb]
			for q, v := range src {
				s[q*nr+j] = alpha * v
			}
		}
	}
}
