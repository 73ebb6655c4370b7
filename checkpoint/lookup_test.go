package checkpoint

import (
	"fmt"
	"testing"
)

func TestLookup(t *testing.T) {
	opt := &Dict{Entries: []Entry{{Key: "state", Value: &Dict{}}}}
	root := &Dict{Entries: []Entry{
		{Key: "state_dict", Value: &OrderedDict{Entries: []Entry{{Key: "fc.weight", Value: int64(1)}}}},
		{Key: "optimizer_states", Value: &List{Items: []Value{opt, &Tuple{Items: []Value{"a", "b"}}}}},
		{Key: "a/b", Value: "slash"},
		{Key: int64(7), Value: "seven"},
	}}
	tests := []struct {
		key      string
		wantPath string
		want     Value
	}{
		{"state_dict", "state_dict", root.Entries[0].Value},
		{"state_dict/fc.weight", "state_dict/fc.weight", int64(1)},
		{"optimizer_states/0", "optimizer_states/0", opt},
		{"optimizer_states/0/state", "optimizer_states/0/state", opt.Entries[0].Value},
		{"optimizer_states/1/1", "optimizer_states/1/1", "b"},
		{"a/b", "a/b", "slash"},
		{"7", "7", "seven"},
		{"optimizer_states/2", "", nil},
		{"optimizer_states/-1", "", nil},
		{"optimizer_states/00", "", nil},
		{"optimizer_states/x", "", nil},
		{"state_dict/fc.weight/more", "", nil},
		{"missing", "", nil},
	}
	for _, tt := range tests {
		path, v, ok := Lookup(root, tt.key)
		if ok != (tt.want != nil) {
			t.Errorf("Lookup(%q): found %v, want %v", tt.key, ok, tt.want != nil)
			continue
		}
		if !ok {
			continue
		}
		if path.String() != tt.wantPath || fmt.Sprint(v) != fmt.Sprint(tt.want) {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tt.key, path, v, tt.wantPath, tt.want)
		}
	}
}

// Every path Walk reports leads Lookup back to the same value.
func TestLookupWalkRoundTrip(t *testing.T) {
	root := &Dict{Entries: []Entry{
		{Key: "l", Value: &List{Items: []Value{&Dict{Entries: []Entry{{Key: int64(3), Value: "x"}}}, &Tuple{Items: []Value{true}}}}},
	}}
	n := 0
	_ = Walk(root, func(path Path, v Value) error {
		if len(path) == 0 {
			return nil
		}
		n++
		_, got, ok := Lookup(root, path.String())
		if !ok || fmt.Sprintf("%p%v", got, got) != fmt.Sprintf("%p%v", v, v) {
			t.Errorf("Lookup(%q) = %v, %v; Walk saw %v", path, got, ok, v)
		}
		return nil
	})
	if n != 5 {
		t.Errorf("walked %d values, want 5", n)
	}
}
