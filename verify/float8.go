package verify

import "math"

// The two 8-bit float formats of the OCP 8-bit Floating Point Specification (OFP8, v1.0)
// that torch calls float8_e4m3fn and float8_e5m2, and the "fnuz" variants torch also has
// (finite, no negative zero: the byte 0x80 is the only NaN, and the bias is one more), as
// tables indexed by the byte. Every value is exact in float32.
var (
	float8E4M3FN   = float8Table(4, 3, false)
	float8E5M2     = float8Table(5, 2, true)
	float8E4M3FNUZ = float8FNUZTable(4, 3)
	float8E5M2FNUZ = float8FNUZTable(5, 2)
)

// float8FNUZTable decodes a format without infinities and negative zero, whose bias is
// 2^(exp-1): every pattern is a number except 0x80, which is NaN.
func float8FNUZTable(expBits, mantBits uint) [256]float32 {
	var out [256]float32
	bias := 1 << (expBits - 1)
	maxExp := 1<<expBits - 1
	mantMask := 1<<mantBits - 1
	for b := 0; b < 256; b++ {
		exp := b >> mantBits & maxExp
		mant := b & mantMask
		var v float64
		switch {
		case b == 0x80:
			v = math.NaN()
		case exp == 0:
			v = math.Ldexp(float64(mant), 1-bias-int(mantBits))
		default:
			v = math.Ldexp(float64(mant|1<<mantBits), exp-bias-int(mantBits))
		}
		if b&0x80 != 0 && b != 0x80 {
			v = -v
		}
		out[b] = float32(v)
	}
	return out
}

// float8Table decodes all 256 bytes of a format with the given exponent and mantissa
// widths (bias 2^(exp-1)-1). With ieee, the top exponent holds infinities and NaNs as in
// IEEE 754 (E5M2); without, only the all-ones pattern S.1111.111 is NaN and the top
// exponent otherwise holds normal numbers, which is what gives E4M3 its range of ±448.
func float8Table(expBits, mantBits uint, ieee bool) [256]float32 {
	var out [256]float32
	bias := 1<<(expBits-1) - 1
	maxExp := 1<<expBits - 1
	mantMask := 1<<mantBits - 1
	for b := 0; b < 256; b++ {
		neg := b&0x80 != 0
		exp := b >> mantBits & maxExp
		mant := b & mantMask
		var v float64
		switch {
		case ieee && exp == maxExp && mant == 0:
			v = math.Inf(1)
		case ieee && exp == maxExp, !ieee && exp == maxExp && mant == mantMask:
			v = math.NaN()
		case exp == 0: // subnormal: mant · 2^(1-bias-mantBits)
			v = math.Ldexp(float64(mant), 1-bias-int(mantBits))
		default:
			v = math.Ldexp(float64(mant|1<<mantBits), exp-bias-int(mantBits))
		}
		if neg {
			v = -v
		}
		out[b] = float32(v)
	}
	return out
}
