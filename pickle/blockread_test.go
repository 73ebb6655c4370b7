package pickle

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// TestBlockReader: every read through the block cache returns what the source holds, for
// reads inside one block, across blocks, at the end, past the end and larger than a block.
func TestBlockReader(t *testing.T) {
	src := make([]byte, 3*readBlockSize+123)
	for i := range src {
		src[i] = byte(i * 7)
	}
	br := newBlockReader(bytes.NewReader(src), int64(len(src)))
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
		{0, 30}, {10, 30}, {readBlockSize - 10, 30}, {readBlockSize, 1}, {int64(len(src)) - 30, 30},
		{int64(len(src)) - 10, 30}, {int64(len(src)), 4}, {int64(len(src)) + 100, 4}, {5, readBlockSize},
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

// TestMemoSet: slots are found once added, a far slot goes to the map, and the count is of
// distinct slots.
func TestMemoSet(t *testing.T) {
	var m memoSet
	slots := []uint64{0, 1, 2, 63, 64, 5000, 1 << 40, 1<<32 - 1, 3, 2}
	for _, s := range slots {
		m.add(s)
	}
	for _, s := range slots {
		if !m.has(s) {
			t.Errorf("slot %d not found", s)
		}
	}
	for _, s := range []uint64{4, 62, 65, 4999, 1<<40 + 1} {
		if m.has(s) {
			t.Errorf("slot %d found but never added", s)
		}
	}
	if m.n != len(slots)-1 {
		t.Errorf("%d distinct slots counted, want %d", m.n, len(slots)-1)
	}
	if len(m.bits) > 2 {
		t.Errorf("far slots made the bitset %d words long", len(m.bits))
	}
}
