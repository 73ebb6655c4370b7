package sgemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// gemmCase is one call to check against the float64 reference.
type gemmCase struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	pad            int // extra elements at the end of every row of a, b and c
}

func (tc gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,m=%d,n=%d,k=%d,alpha=%g,beta=%g,pad=%d",
		tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.beta, tc.pad)
}

// sentinel marks the padding of c, which Sgemm must never write.
const sentinel = float32(-12345)

// check runs tc through Sgemm and compares with referenceGemm.
func (tc gemmCase) check(t *testing.T, rnd *rand.Rand) {
	t.Helper()
	rowsA, colsA := tc.m, tc.k
	if tc.transA {
		rowsA, colsA = tc.k, tc.m
	}
	rowsB, colsB := tc.k, tc.n
	if tc.transB {
		rowsB, colsB = tc.n, tc.k
	}
	lda, ldb, ldc := max(1, colsA)+tc.pad, max(1, colsB)+tc.pad, max(1, tc.n)+tc.pad
	// a and b end right after their last element, so that reading past
	// them panics instead of passing unnoticed.
	a := randomFloats(rnd, max(0, (rowsA-1)*lda+colsA))
	b := randomFloats(rnd, max(0, (rowsB-1)*ldb+colsB))
	c := randomFloats(rnd, tc.m*ldc)
	for i := range tc.m {
		for j := tc.n; j < ldc; j++ {
			c[i*ldc+j] = sentinel
		}
	}
	cIn := append([]float32(nil), c...)
	if tc.beta == 0 {
		// BLAS must not read C when beta is zero: NaNs would leak through.
		for i := range tc.m {
			for j := range tc.n {
				cIn[i*ldc+j] = float32(math.NaN())
			}
		}
		copy(c, cIn)
	}
	want, bound := referenceGemm(tc, a, lda, b, ldb, cIn, ldc)
	Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)

	// Each element is a sum of k products, accumulated in float32.
	tol := 2 * float64(tc.k+4) * 0x1p-24
	bad := 0
	for i := range tc.m {
		for j := range ldc {
			got := c[i*ldc+j]
			if j >= tc.n {
				if got != sentinel {
					t.Fatalf("%v: padding c[%d,%d] overwritten with %g", tc, i, j, got)
				}
				continue
			}
			w, bd := want[i*tc.n+j], bound[i*tc.n+j]
			if err := math.Abs(float64(got) - w); !(err <= tol*bd) {
				if bad++; bad <= 3 {
					t.Errorf("%v: c[%d,%d] = %g, want %g (bound %g)", tc, i, j, got, w, tol*bd)
				}
			}
		}
	}
	if bad > 3 {
		t.Fatalf("%v: %d wrong elements", tc, bad)
	}
}

func randomFloats(rnd *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rnd.NormFloat64())
	}
	return s
}

// referenceGemm returns alpha*op(A)*op(B) + beta*C in float64, tightly
// packed, and for every element the sum of the magnitudes of its terms,
// which scales the rounding error a float32 computation may make.
func referenceGemm(tc gemmCase, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) (want, bound []float64) {
	want = make([]float64, tc.m*tc.n)
	bound = make([]float64, tc.m*tc.n)
	for i := range tc.m {
		for j := range tc.n {
			var sum, mag float64
			for p := range tc.k {
				ai, bi := i*lda+p, p*ldb+j
				if tc.transA {
					ai = p*lda + i
				}
				if tc.transB {
					bi = j*ldb + p
				}
				av, bv := a[ai], b[bi]
				sum += float64(av) * float64(bv)
				mag += math.Abs(float64(av) * float64(bv))
			}
			w := float64(tc.alpha) * sum
			bd := math.Abs(float64(tc.alpha)) * mag
			if tc.beta != 0 {
				cv := float64(c[i*ldc+j])
				w += float64(tc.beta) * cv
				bd += math.Abs(float64(tc.beta) * cv)
			}
			want[i*tc.n+j] = w
			bound[i*tc.n+j] = bd + 1e-30
		}
	}
	return want, bound
}

// edgeCases covers every combination of sizes around the tile and block
// edges, cycling through the transposes, scalars and paddings.
func edgeCases() []gemmCase {
	dims := []int{1, 2, 5, 7, 17, 63, 65, 129}
	scalars := [][2]float32{{1, 0}, {1, 1}, {-0.5, 0.25}, {0, 2}, {2, 0}, {0.75, -1}}
	var cases []gemmCase
	i := 0
	for _, m := range dims {
		for _, n := range dims {
			for _, k := range []int{1, 5, 17, 65} {
				s := scalars[i%len(scalars)]
				cases = append(cases, gemmCase{
					transA: i%2 == 1, transB: i/2%2 == 1,
					m: m, n: n, k: k, alpha: s[0], beta: s[1], pad: i % 3 * 5,
				})
				i++
			}
		}
	}
	return cases
}

// blockCases cross the kc, mc and nc block boundaries and the parallel
// split, in every transpose combination.
func blockCases() []gemmCase {
	shapes := [][3]int{
		{13, 20, 2*kc + 3},
		{mc + 7, 17, 9},
		{7, nc + 21, 3},
		{mc + mr + 1, nr + 1, kc + 1},
		{0, 5, 5}, {5, 0, 5}, {5, 5, 0}, {1, 1, 1},
	}
	var cases []gemmCase
	for _, s := range shapes {
		for t := range 4 {
			cases = append(cases, gemmCase{
				transA: t&1 != 0, transB: t&2 != 0, m: s[0], n: s[1], k: s[2],
				alpha: 1.5, beta: 0.5, pad: t,
			})
		}
	}
	return cases
}

// runCases checks every stride-th case.
func runCases(t *testing.T, cases []gemmCase, stride int) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(cases); i += stride {
		cases[i].check(t, rnd)
	}
}

// withPaths runs f once for each way Sgemm can compute: the assembly
// kernel where the CPU has one, the driver with the Go micro-kernel, and
// the gonum fallback. The slower paths, whose code the assembly path
// shares or which is tested upstream, get every third case.
func withPaths(t *testing.T, f func(t *testing.T, stride int)) {
	paths := []struct {
		name      string
		useKernel bool
		kernel    microKernel
		rows      rowsKernel
		stride    int
	}{
		{"asm", true, kernel, kernelRows, 1},
		{"generic", true, kernelGeneric, kernelRowsGeneric, 3},
		{"fallback", false, kernel, kernelRows, 3},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			if p.name == "asm" && !haveKernel {
				t.Skip("no AVX2/FMA kernel on this machine")
			}
			saveUse, saveKernel, saveRows := useKernel, kernel, kernelRows
			useKernel, kernel, kernelRows = p.useKernel, p.kernel, p.rows
			defer func() { useKernel, kernel, kernelRows = saveUse, saveKernel, saveRows }()
			f(t, p.stride)
		})
	}
}

func TestSgemmEdges(t *testing.T) {
	withPaths(t, func(t *testing.T, stride int) { runCases(t, edgeCases(), stride) })
}

func TestSgemmBlocks(t *testing.T) {
	withPaths(t, func(t *testing.T, stride int) { runCases(t, blockCases(), stride) })
}

func TestSgemmParallel(t *testing.T) {
	saveMin, saveRows := minParallel, minChunkRows
	minParallel, minChunkRows = 1, 1
	defer func() { minParallel, minChunkRows = saveMin, saveRows; SetThreads(0) }()
	for _, threads := range []int{2, 3, 7} {
		SetThreads(threads)
		t.Run(fmt.Sprint(threads), func(t *testing.T) {
			withPaths(t, func(t *testing.T, _ int) {
				runCases(t, []gemmCase{
					{m: 97, n: 20, k: 50, alpha: 1, beta: 0},
					{transA: true, m: 13, n: 150, k: 30, alpha: -1, beta: 1, pad: 3},
					{m: 12, n: 100, k: 40, alpha: 2, beta: 0.5, pad: 2},
					{transB: true, m: 200, n: 200, k: 20, alpha: 0.5, beta: 2, pad: 1},
					{transA: true, transB: true, m: 5, n: 3, k: 9, alpha: 1, beta: 0},
				}, 1)
			})
		})
	}
}

func TestSgemmPanics(t *testing.T) {
	buf := make([]float32, 100)
	tests := []struct {
		name           string
		transA, transB bool
		m, n, k        int
		lenA, lenB     int
		lda, ldb, ldc  int
		want           string
	}{
		{"m<0", false, false, -1, 2, 2, 100, 100, 2, 2, 2, errMLT0},
		{"n<0", false, false, 2, -1, 2, 100, 100, 2, 2, 2, errNLT0},
		{"k<0", false, false, 2, 2, -1, 100, 100, 2, 2, 2, errKLT0},
		{"lda", false, false, 2, 3, 4, 100, 100, 3, 3, 3, errBadLda},
		{"lda trans", true, false, 5, 3, 4, 100, 100, 4, 3, 3, errBadLda},
		{"ldb", false, false, 2, 3, 4, 100, 100, 4, 2, 3, errBadLdb},
		{"ldb trans", false, true, 2, 3, 4, 100, 100, 4, 3, 3, errBadLdb},
		{"ldc", false, false, 2, 3, 4, 100, 100, 4, 3, 2, errBadLdc},
		{"short a", false, false, 3, 3, 4, 11, 100, 4, 3, 3, errShortA},
		{"short a trans", true, false, 3, 3, 4, 11, 100, 3, 3, 3, errShortA},
		{"short b", false, false, 3, 3, 4, 100, 11, 4, 3, 3, errShortB},
		{"short b trans", false, true, 3, 3, 4, 100, 11, 4, 4, 3, errShortB},
		{"short c", false, false, 3, 3, 4, 100, 100, 4, 3, 5, errShortC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if got := recover(); got != tt.want {
					t.Errorf("panic = %v, want %q", got, tt.want)
				}
			}()
			Sgemm(tt.transA, tt.transB, tt.m, tt.n, tt.k, 1, buf[:tt.lenA], tt.lda,
				buf[:tt.lenB], tt.ldb, 0, buf[:12], tt.ldc)
		})
	}
}
