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

// TestConvertedWeightFromOriginal checks that the converted form of a layer reads its
// weight from the original's mapping only when the proof found that storage's bytes
// identical, and from the converted file's own bytes otherwise.
func TestConvertedWeightFromOriginal(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("files are not mapped on windows")
	}
	for _, tt := range []struct {
		conv         string
		fromOriginal bool
	}{{"planted_good.pt", true}, {"planted_bug.pt", false}} {
		orig, conv := openFixture(t, "planted_orig.pt"), openFixture(t, tt.conv)
		if err := orig.Map(); err != nil {
			t.Fatal(err)
		}
		if err := conv.Map(); err != nil {
			t.Fatal(err)
		}
		layers, err := FindLayers(orig, conv)
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s: layers %v, %v", tt.conv, layers, err)
		}
		_, same, err := prove(orig, conv, layers)
		if err != nil {
			t.Fatal(err)
		}
		d, err := loadLayer(orig, conv, &layers[0], same)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Decode(conv, layers[0].conv())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(want, d.conv) {
			t.Errorf("%s: the converted weight differs from the converted file's", tt.conv)
		}
		if !weightsInPlace {
			continue
		}
		b, _ := orig.MappedBytes(layers[0].linear().Storage)
		start := uintptr(unsafe.Pointer(&b[0]))
		p := uintptr(unsafe.Pointer(&d.conv.Data[0]))
		if got := p >= start && p < start+uintptr(len(b)); got != tt.fromOriginal {
			t.Errorf("%s: converted weight read from the original: %v, want %v", tt.conv, got, tt.fromOriginal)
		}
	}
}
