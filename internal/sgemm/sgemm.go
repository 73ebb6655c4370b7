package sgemm

import (
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Panic messages for invalid arguments, in the manner of the BLAS reference.
const (
	errMLT0   = "sgemm: m < 0"
	errNLT0   = "sgemm: n < 0"
	errKLT0   = "sgemm: k < 0"
	errBadLda = "sgemm: bad leading dimension of a"
	errBadLdb = "sgemm: bad leading dimension of b"
	errBadLdc = "sgemm: bad leading dimension of c"
	errShortA = "sgemm: insufficient length of a"
	errShortB = "sgemm: insufficient length of b"
	errShortC = "sgemm: insufficient length of c"
)

// minParallel is the number of multiply-adds each goroutine must get for a
// split to pay off; tests lower it to exercise the split on small inputs.
var minParallel = 1 << 22

// minChunkRows is the fewest rows of C a goroutine takes when the work is split by rows;
// tests lower it to exercise the split on small inputs.
var minChunkRows = mc

// useKernel selects the assembly path; tests clear it to exercise the
// fallback.
var useKernel = haveKernel

var threads atomic.Int32

// SetThreads sets how many goroutines Sgemm may use. n <= 0 restores the
// default, runtime.GOMAXPROCS(0).
func SetThreads(n int) {
	if n < 0 {
		n = 0
	}
	threads.Store(int32(n))
}

func maxThreads() int {
	if n := int(threads.Load()); n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices,
// where op(X) is X or its transpose as transA and transB say, op(A) is
// m x k, op(B) is k x n and C is m x n. lda, ldb and ldc are the row strides.
// As in BLAS, C is not read when beta is zero. Sgemm panics on negative
// dimensions, leading dimensions smaller than a row, or slices too short
// for the dimensions.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if !useKernel {
		tA, tB := blas.NoTrans, blas.NoTrans
		if transA {
			tA = blas.Trans
		}
		if transB {
			tB = blas.Trans
		}
		gonum.Implementation{}.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	p := problem{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
		a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc}
	p.runParallel(maxThreads())
}

func checkArgs(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	switch {
	case m < 0:
		panic(errMLT0)
	case n < 0:
		panic(errNLT0)
	case k < 0:
		panic(errKLT0)
	}
	rowsA, colsA := m, k
	if transA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if transB {
		rowsB, colsB = n, k
	}
	switch {
	case lda < max(1, colsA):
		panic(errBadLda)
	case ldb < max(1, colsB):
		panic(errBadLdb)
	case ldc < max(1, n):
		panic(errBadLdc)
	}
	if m == 0 || n == 0 {
		return
	}
	if k > 0 {
		if len(a) < lda*(rowsA-1)+colsA {
			panic(errShortA)
		}
		if len(b) < ldb*(rowsB-1)+colsB {
			panic(errShortB)
		}
	}
	if len(c) < ldc*(m-1)+n {
		panic(errShortC)
	}
}

// problem is one call's arguments; runParallel cuts it into sub-problems
// that share no part of C.
type problem struct {
	transA, transB bool
	m, n, k        int
	alpha          float32
	a              []float32
	lda            int
	b              []float32
	ldb            int
	beta           float32
	c              []float32
	ldc            int
}

// chunksPerThread sets how finely runParallel cuts the work. Goroutines
// take chunks as they finish the previous one, so a core shared with
// another process does less of the work instead of holding up the result.
const chunksPerThread = 4

func (p problem) runParallel(nThreads int) {
	work := p.m * p.n * p.k
	if nThreads > work/minParallel {
		nThreads = max(1, work/minParallel)
	}
	splitM := p.m >= p.n
	unit, extent := nr, p.n
	if splitM {
		unit, extent = mr, p.m
	}
	units := (extent + unit - 1) / unit
	chunks := min(units, nThreads*chunksPerThread)
	if splitM {
		// Each chunk packs the whole of B again: a chunk of fewer rows than a packed A
		// block would spend more on that copy than on multiplying.
		chunks = min(chunks, max(1, p.m/minChunkRows))
	}
	nThreads = min(nThreads, chunks)
	if nThreads <= 1 {
		p.run()
		return
	}
	p.share(nThreads, chunks, units, unit, extent, splitM)
}

// share runs p on nThreads goroutines, cut into chunks of whole units (of rows when
// splitM, of columns otherwise). It is apart from runParallel so that a problem run on the
// caller's goroutine is not moved to the heap for the workers' sake: callers with many
// small products would pay an allocation for each.
func (p problem) share(nThreads, chunks, units, unit, extent int, splitM bool) {
	var taken atomic.Int64
	var wg sync.WaitGroup
	// A panic in a worker, a memory fault included, is raised again in the caller's
	// goroutine, where the caller can recover it: operands may be memory-mapped files, and
	// a file truncated meanwhile makes reading them fault. Workers fault as a panic rather
	// than crash when the caller asked for that with debug.SetPanicOnFault.
	var failed atomic.Pointer[any]
	panicOnFault := debug.SetPanicOnFault(false)
	debug.SetPanicOnFault(panicOnFault)
	for range nThreads {
		wg.Go(func() {
			debug.SetPanicOnFault(panicOnFault)
			defer func() {
				if r := recover(); r != nil {
					failed.CompareAndSwap(nil, &r)
					taken.Store(int64(chunks)) // the others stop at their next chunk
				}
			}()
			for {
				i := int(taken.Add(1) - 1)
				if i >= chunks {
					return
				}
				lo := units * i / chunks * unit
				hi := min(extent, units*(i+1)/chunks*unit)
				if splitM {
					p.rows(lo, hi).run()
				} else {
					p.cols(lo, hi).run()
				}
			}
		})
	}
	wg.Wait()
	if r := failed.Load(); r != nil {
		panic(*r)
	}
}

// rows restricts p to rows [lo, hi) of C.
func (p problem) rows(lo, hi int) problem {
	p.m = hi - lo
	p.c = p.c[lo*p.ldc:]
	if p.k > 0 {
		if p.transA {
			p.a = p.a[lo:]
		} else {
			p.a = p.a[lo*p.lda:]
		}
	}
	return p
}

// cols restricts p to columns [lo, hi) of C.
func (p problem) cols(lo, hi int) problem {
	p.n = hi - lo
	p.c = p.c[lo:]
	if p.k > 0 {
		if p.transB {
			p.b = p.b[lo*p.ldb:]
		} else {
			p.b = p.b[lo:]
		}
	}
	return p
}
