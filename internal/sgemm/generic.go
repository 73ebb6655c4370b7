package sgemm

import "unsafe"

// kernelGeneric is the micro-kernel in plain Go. It is far slower than the
// assembly one and exists so that the blocked driver can be built and
// tested on every architecture.
func kernelGeneric(kb int, a, b, c *float32, ldc int) {
	as := unsafe.Slice(a, kb*mr)
	kernelGenericStrided(kb, func(q, r int) float32 { return as[q*mr+r] }, b, c, ldc)
}

// kernelRowsGeneric is the rowsKernel in plain Go.
func kernelRowsGeneric(kb int, a *float32, lda int, b, c *float32, ldc int, _ *float32) {
	as := unsafe.Slice(a, (mr-1)*lda+kb)
	kernelGenericStrided(kb, func(q, r int) float32 { return as[r*lda+q] }, b, c, ldc)
}

func kernelGenericStrided(kb int, aAt func(q, r int) float32, b, c *float32, ldc int) {
	bs := unsafe.Slice(b, kb*nr)
	var acc [mr * nr]float32
	for q := range kb {
		bq := bs[q*nr:][:nr]
		for r := range mr {
			av := aAt(q, r)
			t := acc[r*nr:][:nr]
			for j, bv := range bq {
				t[j] += av * bv
			}
		}
	}
	cs := unsafe.Slice(c, (mr-1)*ldc+nr)
	for r := range mr {
		row := cs[r*ldc:][:nr]
		for j := range row {
			row[j] += acc[r*nr+j]
		}
	}
}
