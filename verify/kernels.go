package verify

import (
	"errors"
	"fmt"

	blasgemm "github.com/pt2conv/pt2conv/internal/sgemm"
)

// ErrShape: a kernel's operands do not fit together.
var ErrShape = errors.New("shape mismatch")

// sgemm computes c = alpha·op(a)·op(b) + beta·c on row-major matrices with BLAS semantics:
// op(a) is m×k, op(b) is k×n, c is m×n. It is a variable so that tests can swap the GEMM.
var sgemm = blasgemm.Sgemm

// maxColumns bounds the im2col buffer of Conv2d (in float32 elements, 256 MiB); larger
// batches are processed in groups of samples.
var maxColumns = 1 << 26

// Linear computes x·wᵀ + b like torch.nn.functional.linear: x is [N, in], w is [out, in],
// b has out elements or is nil. The result is [N, out].
func Linear(x, w *Dense, b []float32) (*Dense, error) {
	if len(x.Shape) != 2 || len(w.Shape) != 2 || x.Shape[1] != w.Shape[1] || !x.valid() || !w.valid() {
		return nil, fmt.Errorf("linear of input %v with weight %v: %w", x.Shape, w.Shape, ErrShape)
	}
	n, in, out := x.Shape[0], x.Shape[1], w.Shape[0]
	if b != nil && len(b) != out {
		return nil, fmt.Errorf("linear with %d outputs and %d biases: %w", out, len(b), ErrShape)
	}
	y := NewDense(n, out)
	if n > 0 && n < out && in > 0 {
		// Few rows, a large weight: computed as w·xᵀ, the weight is read where it lies
		// (the kernel takes rows of its left operand unpacked) instead of being packed,
		// a copy as large as the weight, and the small result is transposed.
		yt := make([]float32, out*n)
		sgemm(false, true, out, n, in, 1, w.Data, in, x.Data, in, 0, yt, n)
		for o := range out {
			for r, v := range yt[o*n : (o+1)*n] {
				y.Data[r*out+o] = v
			}
		}
		if b != nil {
			for r := range n {
				row := y.Data[r*out : (r+1)*out]
				for o, v := range b {
					row[o] += v
				}
			}
		}
		return y, nil
	}
	beta := float32(0)
	if b != nil {
		beta = 1
		for r := 0; r < n; r++ {
			copy(y.Data[r*out:(r+1)*out], b)
		}
	}
	if n > 0 && out > 0 && in > 0 {
		sgemm(false, true, n, out, in, 1, x.Data, in, w.Data, in, beta, y.Data, out)
	}
	return y, nil
}

// valid reports whether the data holds exactly the elements the shape says.
func (d *Dense) valid() bool {
	for _, s := range d.Shape {
		if s < 0 {
			return false
		}
	}
	return len(d.Data) == numElements(d.Shape)
}

// ConvParams are Conv2d's geometry, per axis (height, width). Zero strides and dilations
// mean 1.
type ConvParams struct {
	Stride, Padding, Dilation [2]int
}

func (p ConvParams) normalized() ConvParams {
	for i := range 2 {
		p.Stride[i] = max(p.Stride[i], 1)
		p.Dilation[i] = max(p.Dilation[i], 1)
	}
	return p
}

// outSize is torch's output length of a convolution along one axis.
func outSize(in, kernel int, p ConvParams, axis int) int {
	span := p.Dilation[axis]*(kernel-1) + 1
	return (in+2*p.Padding[axis]-span)/p.Stride[axis] + 1
}

// Conv2d computes torch.nn.functional.conv2d with groups=1: x is [N, C, H, W], w is
// [out, C, kH, kW], b has out elements or is nil. The result is [N, out, Ho, Wo]. It unfolds
// the input (im2col) and multiplies it by the weight viewed as [out, C·kH·kW].
func Conv2d(x, w *Dense, b []float32, p ConvParams) (*Dense, error) {
	if len(x.Shape) != 4 || len(w.Shape) != 4 || x.Shape[1] != w.Shape[1] || !x.valid() || !w.valid() {
		return nil, fmt.Errorf("conv2d of input %v with weight %v: %w", x.Shape, w.Shape, ErrShape)
	}
	p = p.normalized()
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	out, kh, kw := w.Shape[0], w.Shape[2], w.Shape[3]
	ho, wo := outSize(h, kh, p, 0), outSize(wd, kw, p, 1)
	if ho <= 0 || wo <= 0 || p.Padding[0] < 0 || p.Padding[1] < 0 {
		return nil, fmt.Errorf("conv2d of input %v with weight %v, %+v: no output: %w", x.Shape, w.Shape, p, ErrShape)
	}
	if b != nil && len(b) != out {
		return nil, fmt.Errorf("conv2d with %d outputs and %d biases: %w", out, len(b), ErrShape)
	}
	y := NewDense(n, out, ho, wo)
	k, plane := c*kh*kw, ho*wo
	if n == 0 || out == 0 || k == 0 {
		addBias(y, b)
		return y, nil
	}
	group := max(1, min(n, maxColumns/max(1, k*plane)))
	cols := make([]float32, k*group*plane)
	prod := make([]float32, out*group*plane)
	for first := 0; first < n; first += group {
		nb := min(group, n-first)
		ld := nb * plane
		im2col(cols[:k*ld], ld, x, first, nb, kh, kw, ho, wo, p)
		sgemm(false, false, out, ld, k, 1, w.Data, k, cols, ld, 0, prod, ld)
		for s := 0; s < nb; s++ {
			for o := 0; o < out; o++ {
				copy(y.Data[((first+s)*out+o)*plane:][:plane], prod[o*ld+s*plane:][:plane])
			}
		}
	}
	addBias(y, b)
	return y, nil
}

// im2col fills the first nb·Ho·Wo columns of cols, a [C·kH·kW, ld] matrix, with the input
// patches of samples first .. first+nb-1, zero where the kernel overlaps the padding.
func im2col(cols []float32, ld int, x *Dense, first, nb, kh, kw, ho, wo int, p ConvParams) {
	c, h, wd := x.Shape[1], x.Shape[2], x.Shape[3]
	for ch := 0; ch < c; ch++ {
		for i := 0; i < kh; i++ {
			for j := 0; j < kw; j++ {
				row := cols[((ch*kh+i)*kw+j)*ld:][:nb*ho*wo]
				for s := 0; s < nb; s++ {
					src := x.Data[((first+s)*c+ch)*h*wd:][:h*wd]
					dst := row[s*ho*wo:]
					for oh := 0; oh < ho; oh++ {
						r := oh*p.Stride[0] - p.Padding[0] + i*p.Dilation[0]
						line := dst[oh*wo : (oh+1)*wo]
						if r < 0 || r >= h {
							clear(line)
							continue
						}
						for ow := range line {
							q := ow*p.Stride[1] - p.Padding[1] + j*p.Dilation[1]
							if q < 0 || q >= wd {
								line[ow] = 0
							} else {
								line[ow] = src[r*wd+q]
							}
						}
					}
				}
			}
		}
	}
}

// addBias adds b[o] to every element of channel o of an [N, out, ...] array.
func addBias(y *Dense, b []float32) {
	if b == nil || len(y.Shape) < 2 {
		return
	}
	out := y.Shape[1]
	plane := numElements(y.Shape[2:])
	for i := 0; i < y.Shape[0]*out; i++ {
		v := b[i%out]
		for j := range y.Data[i*plane : (i+1)*plane] {
			y.Data[i*plane+j] += v
		}
	}
}

// ReLU replaces the negative elements of d by zero, in place.
func ReLU(d *Dense) {
	for i, v := range d.Data {
		if v < 0 {
			d.Data[i] = 0
		}
	}
}

// linearRef is Linear accumulating in float64, rounding each result once.
func linearRef(x, w *Dense, b []float32) *Dense {
	n, in, out := x.Shape[0], x.Shape[1], w.Shape[0]
	y := NewDense(n, out)
	for r := 0; r < n; r++ {
		for o := 0; o < out; o++ {
			var s float64
			if b != nil {
				s = float64(b[o])
			}
			for i := 0; i < in; i++ {
				s += float64(x.Data[r*in+i]) * float64(w.Data[o*in+i])
			}
			y.Data[r*out+o] = float32(s)
		}
	}
	return y
}

// conv2dRef is Conv2d by direct summation in float64, rounding each result once.
func conv2dRef(x, w *Dense, b []float32, p ConvParams) *Dense {
	p = p.normalized()
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	out, kh, kw := w.Shape[0], w.Shape[2], w.Shape[3]
	ho, wo := outSize(h, kh, p, 0), outSize(wd, kw, p, 1)
	y := NewDense(n, out, ho, wo)
	for s := 0; s < n; s++ {
		for o := 0; o < out; o++ {
			for oh := 0; oh < ho; oh++ {
				for ow := 0; ow < wo; ow++ {
					var acc float64
					if b != nil {
						acc = float64(b[o])
					}
					for ch := 0; ch < c; ch++ {
						for i := 0; i < kh; i++ {
							r := oh*p.Stride[0] - p.Padding[0] + i*p.Dilation[0]
							if r < 0 || r >= h {
								continue
							}
							for j := 0; j < kw; j++ {
								q := ow*p.Stride[1] - p.Padding[1] + j*p.Dilation[1]
								if q < 0 || q >= wd {
									continue
								}
								acc += float64(x.Data[((s*c+ch)*h+r)*wd+q]) * float64(w.Data[((o*c+ch)*kh+i)*kw+j])
							}
						}
					}
					y.Data[((s*out+o)*ho+oh)*wo+ow] = float32(acc)
				}
			}
		}
	}
	return y
}
