package verify

import (
	"reflect"
	"runtime"
	"testing"
	"unsafe"
)

// TestCheckMapped checks that mapped checkpoints give the very report read ones give, and
// that a contiguous float32 weight is used where it lies in the mapping.
func TestCheckMapped(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("files are not mapped on windows")
	}
	for _, pair := range [][2]string{{"planted_orig.pt", "planted_good.pt"}, {"planted_orig.pt", "planted_bug.pt"}} {
		read, err := Check(openFixture(t, pair[0]), openFixture(t, pair[1]), Options{})
		if err != nil {
			t.Fatal(err)
		}
		orig, conv := openFixture(t, pair[0]), openFixture(t, pair[1])
		if err := orig.Map(); err != nil {
			t.Fatal(err)
		}
		if err := conv.Map(); err != nil {
			t.Fatal(err)
		}
		mapped, err := Check(orig, conv, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(read, mapped) {
			t.Errorf("%s: the report on mapped files differs from the one on read files", pair[1])
		}

		w := tensorAt(t, conv, "head.weight")
		d, err := decodeShared(conv, w)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := conv.MappedBytes(w.Storage)
		start := uintptr(unsafe.Pointer(&b[0]))
		inPlace := func() bool {
			p := uintptr(unsafe.Pointer(&d.Data[0]))
			return p >= start && p < start+uintptr(len(b))
		}()
		if inPlace != weightsInPlace {
			t.Errorf("%s: head.weight used in the mapping: %v, want %v on this platform", pair[1], inPlace, weightsInPlace)
		}
		want, err := Decode(conv, w)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(want, d) {
			t.Errorf("%s: head.weight decoded in place differs from head.weight read", pair[1])
		}
	}
}
