package pickle

import (
	"fmt"
	"testing"
)

func TestSeqIndex(t *testing.T) {
	tests := []struct {
		name string
		keys []string
		dup  []bool // add's answer for each key: false for a key seen before
		seq  bool   // still indexed by the slice at the end
	}{
		{"torch's numbering", []string{"0", "1", "2", "3"}, []bool{true, true, true, true}, true},
		{"a number twice", []string{"0", "1", "1"}, []bool{true, true, false}, false},
		{"out of order", []string{"0", "2", "1", "2"}, []bool{true, true, true, false}, false},
		{"names", []string{"a", "b", "a", "0"}, []bool{true, true, false, true}, false},
		{"leading zero is another key", []string{"0", "00", "1", "01"}, []bool{true, true, true, true}, false},
		{"empty key", []string{"", "0", ""}, []bool{true, true, false}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var x seqIndex[int]
			for i, k := range tt.keys {
				if got := x.add(k, i); got != tt.dup[i] {
					t.Fatalf("add(%q) = %v, want %v", k, got, tt.dup[i])
				}
			}
			if (x.m == nil) != tt.seq {
				t.Errorf("indexed by the slice: %v, want %v", x.m == nil, tt.seq)
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
	var x seqIndex[string]
	for i := range 1000 {
		x.add(fmt.Sprint(i), fmt.Sprint("v", i))
	}
	if v, ok := x.get("999"); x.m != nil || !ok || v != "v999" {
		t.Errorf("1,000 keys in sequence: get(999) = %q, %v; map used: %v", v, ok, x.m != nil)
	}
}
