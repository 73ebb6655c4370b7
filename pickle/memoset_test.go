package pickle

import "testing"

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
