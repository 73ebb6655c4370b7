package blockread

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

const blockSize = 64 << 10

// TestBlockReader: every read through the block cache returns what the source holds, for
// reads inside one block, across blocks, at the end, past the end and larger than a block.
func TestBlockReader(t *testing.T) {
	src := make([]byte, 3*blockSize+123)
	for i := range src {
		src[i] = byte(i * 7)
	}
	br := NewReader(bytes.NewReader(src), int64(len(src)), blockSize, blockSize/4)
	ref := bytes.NewReader(src)
	check := func(off int64, n int) {
		t.Helper()
		got, want := make([]byte, n), make([]byte, n)
		gn, gerr := br.ReadAt(got, off)
		wn, werr := ref.ReadAt(want, off)
		if gn != wn || !bytes.Equal(got[:gn], want[:wn]) || (gerr == nil) != (werr == nil) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, %v", n, off, gn, gerr, wn, werr)
		}
	}
	for _, c := range []struct {
		off int64
		n   int
	}{
		{0, 30}, {10, 30}, {blockSize - 10, 30}, {blockSize, 1}, {int64(len(src)) - 30, 30},
		{int64(len(src)) - 10, 30}, {int64(len(src)), 4}, {int64(len(src)) + 100, 4}, {5, blockSize},
		{0, 0},
	} {
		check(c.off, c.n)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		check(rng.Int64N(int64(len(src))+10), rng.IntN(200))
	}
	if _, err := br.ReadAt(make([]byte, 4), int64(len(src))); err != io.EOF {
		t.Errorf("read at the end: %v, want io.EOF", err)
	}
}
