package sgemm

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// benchShapes are the products of verifying a converted VGG16 head on 64
// windows, in both orientations verify uses: Conv2d multiplies the weight
// [m = out, k] by an im2col matrix of n = 64 columns (B not transposed), and
// Linear multiplies m = 64 input rows by the transposed weight [n = out, k]
// (B transposed).
var benchShapes = []struct {
	form    string
	m, n, k int
	transB  bool
}{
	{"conv", 4096, 64, 25088, false},
	{"linear", 64, 4096, 25088, true},
	{"conv", 4096, 64, 4096, false},
	{"linear", 64, 4096, 4096, true},
	{"conv", 1000, 64, 4096, false},
	{"linear", 64, 1000, 4096, true},
}

var benchData = sync.OnceValue(func() []float32 {
	rnd := rand.New(rand.NewPCG(3, 4))
	return randomFloats(rnd, 4096*25088)
})

// BenchmarkSgemm compares Sgemm with gonum's on benchShapes, on one and two
// threads. The thread
// count is set through GOMAXPROCS, which both implementations follow.
func BenchmarkSgemm(b *testing.B) {
	impls := []struct {
		name string
		gemm func(tB bool, m, n, k int, a, bm, c []float32, ldb int)
	}{
		{"sgemm", func(tB bool, m, n, k int, a, bm, c []float32, ldb int) {
			Sgemm(false, tB, m, n, k, 1, a, k, bm, ldb, 0, c, n)
		}},
		{"gonum", func(tB bool, m, n, k int, a, bm, c []float32, ldb int) {
			t := blas.NoTrans
			if tB {
				t = blas.Trans
			}
			gonum.Implementation{}.Sgemm(blas.NoTrans, t, m, n, k, 1, a, k, bm, ldb, 0, c, n)
		}},
	}
	for _, impl := range impls {
		for _, s := range benchShapes {
			for _, threads := range []int{1, 2} {
				name := fmt.Sprintf("%s/%s/m=%d,n=%d,k=%d,transB=%v/threads=%d",
					impl.name, s.form, s.m, s.n, s.k, s.transB, threads)
				b.Run(name, func(b *testing.B) {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
					benchGemm(b, impl.gemm, s.m, s.n, s.k, s.transB)
				})
			}
		}
	}
}

func benchGemm(b *testing.B, gemm func(tB bool, m, n, k int, a, bm, c []float32, ldb int), m, n, k int, tB bool) {
	data := benchData()
	a, bm := data[:m*k], data[len(data)-k*n:]
	c := make([]float32, m*n)
	ldb := n
	if tB {
		ldb = k
	}
	for b.Loop() {
		gemm(tB, m, n, k, a, bm, c, ldb)
	}
	flops := 2 * float64(m) * float64(n) * float64(k) * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOPS")
}

// BenchmarkKernel measures the micro-kernel alone on data held in L1: the
// ceiling for Sgemm.
func BenchmarkKernel(b *testing.B) {
	a := make([]float32, mr*kc)
	bs := make([]float32, nr*kc)
	c := make([]float32, mr*nr)
	for b.Loop() {
		kernel(kc, &a[0], &bs[0], &c[0], nr)
	}
	b.ReportMetric(2*mr*nr*kc*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}
