//go:build unix && amd64 && !purego

package sgemm

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"unsafe"

	"github.com/pt2conv/pt2conv/internal/osfile"
)

// TestSgemmFaultReachesCaller multiplies an operand that lives in a mapped file truncated
// meanwhile: the workers' fault must come back to the caller as a panic it can recover
// (under debug.SetPanicOnFault), not crash the process.
func TestSgemmFaultReachesCaller(t *testing.T) {
	saveMin := minParallel
	minParallel = 1
	SetThreads(2)
	defer func() { minParallel = saveMin; SetThreads(0) }()

	const m, n, k = 256, 64, 256
	path := filepath.Join(t.TempDir(), "a")
	if err := os.WriteFile(path, make([]byte, m*k*4), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mp, err := osfile.Map(f)
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Close()
	a := unsafe.Slice((*float32)(unsafe.Pointer(&mp.Bytes()[0])), m*k)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	b, c := make([]float32, k*n), make([]float32, m*n)

	recovered := func() (r any) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() { r = recover() }()
		Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
		return nil
	}()
	if _, fault := recovered.(interface{ Addr() uintptr }); !fault {
		t.Fatalf("Sgemm on a truncated mapping: recovered %v, want a memory fault", recovered)
	}
}
