package rewrite

import (
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// convView returns the sizes and strides of a Linear weight (out, in) with strides (s0, s1)
// seen as a Conv2d weight (out, C, H, W), where C·H·W == in: element [o, c, h, w] is element
// [o, c·H·W + h·W + w], the index torch's flatten gives x[c, h, w].
func convView(size, stride []int64, c, h, w int64) (newSize, newStride []int64) {
	s1 := stride[1]
	return []int64{size[0], c, h, w}, []int64{stride[0], h * w * s1, w * s1, s1}
}

// linearView returns the sizes and strides of a Conv2d weight (out, C, kH, kW) seen as a
// Linear weight (out, C·kH·kW). It fails when dimensions 1..3 cannot be merged into one
// strided dimension, the rule torch's view follows (dimensions of size 1 merge with any
// stride).
func linearView(size, stride []int64) (newSize, newStride []int64, ok bool) {
	inner := int64(1) // stride of the merged dimension: that of the innermost non-1 dimension
	expect := int64(-1)
	n := int64(1)
	for d := 3; d >= 1; d-- {
		n *= size[d]
		if size[d] == 1 {
			continue
		}
		if expect < 0 {
			inner = stride[d]
		} else if stride[d] != expect {
			return nil, nil, false
		}
		expect = stride[d] * size[d]
	}
	return []int64{size[0], n}, []int64{stride[0], inner}, true
}

// productIs reports whether the factors multiply to n, without overflowing on huge factors.
func productIs(n int64, factors ...int64) bool {
	if n == 0 { // an empty Linear (no inputs) seen as C = 0
		return slices.Contains(factors, 0)
	}
	for _, f := range factors {
		if f <= 0 || n%f != 0 {
			return false
		}
		n /= f
	}
	return n == 1
}

// product formats the product of positive factors, exactly even when it exceeds int64.
func product(factors ...int64) string {
	p := big.NewInt(1)
	for _, f := range factors {
		p.Mul(p, big.NewInt(f))
	}
	return p.String()
}

// isqrt returns the integer square root of n and whether n is a perfect square.
func isqrt(n int64) (int64, bool) {
	if n < 0 {
		return 0, false
	}
	r := int64(0)
	for bit := int64(1) << 31; bit > 0; bit >>= 1 {
		if t := r + bit; t*t <= n {
			r = t
		}
	}
	return r, r*r == n
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// dims formats sizes as 512x7x7.
func dims(s []int64) string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = itoa(v)
	}
	return strings.Join(parts, "x")
}

// shape formats sizes or strides as the command line prints them: (1000, 512, 1, 1).
func shape(s []int64) string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = itoa(v)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
