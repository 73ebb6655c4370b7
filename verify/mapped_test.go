package verify

import (
	"reflect"
	"runtime"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// TestCheckMapped checks that mapped checkpoints give the very report read ones give.
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

	}
}

// TestConvertedWeightFromOriginal checks that the converted form of a layer reads its
// weight from the original's bytes, one read serving both forms, only when the proof found
// that storage's bytes identical, and from the converted file's own bytes otherwise.
func TestConvertedWeightFromOriginal(t *testing.T) {
	for _, tt := range []struct {
		conv   string
		shared bool
	}{{"planted_good.pt", true}, {"planted_bug.pt", false}} {
		orig, conv := openFixture(t, "planted_orig.pt"), openFixture(t, tt.conv)
		layers, err := FindLayers(orig, conv)
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s: layers %v, %v", tt.conv, layers, err)
		}
		_, same, err := prove(orig, conv, layers, 0)
		if err != nil {
			t.Fatal(err)
		}
		d, err := loadLayer(orig, conv, &layers[0], same, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Decode(conv, layers[0].conv())
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.conv.rows(0, d.conv.out, make([]float32, d.conv.out*d.conv.k))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(want.Data, got) || !reflect.DeepEqual(want.Shape, d.conv.shape) {
			t.Errorf("%s: the converted weight differs from the converted file's", tt.conv)
		}
		if !littleEndianHost {
			continue
		}
		if d.lin.sameRows(d.conv) != tt.shared {
			t.Errorf("%s: both forms read the same bytes: %v, want %v", tt.conv, !tt.shared, tt.shared)
		}
		if wantFile := map[bool]*checkpoint.Checkpoint{true: orig, false: conv}[tt.shared]; d.conv.from.file != wantFile {
			t.Errorf("%s: converted weight read from %s, want %s", tt.conv, d.conv.from.file.Name, wantFile.Name)
		}
	}
}
