package pickle

import (
	"fmt"
	"testing"
)

func TestSeqIndex(t *testing.T) {
	tests := []struct {
		name   string
		room   int // newSeqIndex's n
		keys   []string
		fresh  []bool // add's answer for each key: false for a key seen before
		hashed int    // keys that went to the map
	}{
		{"torch's numbering", 4, []string{"0", "1", "2", "3"}, []bool{true, true, true, true}, 0},
		{"sorted as text", 12, []string{"0", "1", "10", "11", "2", "3"}, []bool{true, true, true, true, true, true}, 0},
		{"a number twice", 4, []string{"0", "1", "1"}, []bool{true, true, false}, 0},
		{"beyond the room", 2, []string{"0", "1", "2", "2"}, []bool{true, true, true, false}, 1},
		{"names", 4, []string{"a", "b", "a", "0"}, []bool{true, true, false, true}, 2},
		{"leading zero is another key", 4, []string{"0", "00", "1", "01"}, []bool{true, true, true, true}, 2},
		{"empty key", 4, []string{"", "0", ""}, []bool{true, true, false}, 1},
		{"zero value hashes all", 0, []string{"0", "1", "0"}, []bool{true, true, false}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newSeqIndex[int](tt.room)
			for i, k := range tt.keys {
				if got := x.add(k, i); got != tt.fresh[i] {
					t.Fatalf("add(%q) = %v, want %v", k, got, tt.fresh[i])
				}
			}
			if len(x.m) != tt.hashed {
				t.Errorf("%d keys hashed, want %d", len(x.m), tt.hashed)
			}
			// Every key finds the value of its first add.
			for i, k := range tt.keys {
				first := i
				for j := range i {
					if tt.keys[j] == k {
						first = j
						break
					}
				}
				if v, ok := x.get(k); !ok || v != first {
					t.Errorf("get(%q) = %d, %v, want %d", k, v, ok, first)
				}
			}
			for _, k := range []string{"7", "x", "-1", "1000000000"} {
				if _, ok := x.get(k); ok {
					t.Errorf("get(%q) found a key never added", k)
				}
			}
		})
	}
	x := newSeqIndex[string](1000)
	for i := range 1000 {
		x.add(fmt.Sprint(i), fmt.Sprint("v", i))
	}
	if v, ok := x.get("999"); x.m != nil || !ok || v != "v999" {
		t.Errorf("1,000 numbered keys: get(999) = %q, %v; map used: %v", v, ok, x.m != nil)
	}
}
