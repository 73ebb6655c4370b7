package pickle

import (
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// TestDictKeySetTwice: a key set again keeps its first position and takes the last value,
// as in Python, in small dicts (scanned) and large ones (indexed).
func TestDictKeySetTwice(t *testing.T) {
	for _, n := range []int{3, indexFrom - 1, indexFrom, 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var b strings.Builder
			b.WriteString("\x80\x02}(")
			for i := range n {
				fmt.Fprintf(&b, "X\x01\x00\x00\x00%cK%c", 'a'+i, i)
			}
			b.WriteString("u")
			// Set "a" again, then the int key 1 twice, through SETITEM.
			fmt.Fprintf(&b, "X\x01\x00\x00\x00aK\xffsK\x01K\x07sK\x01K\x08s.")
			v, err := decodeRawPickle([]byte(b.String()), DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			d := v.(*checkpoint.Dict)
			if len(d.Entries) != n+1 {
				t.Fatalf("%d entries, want %d", len(d.Entries), n+1)
			}
			if d.Entries[0].Key != "a" || d.Entries[0].Value != int64(255) {
				t.Errorf("first entry %v: %v, want a: 255", d.Entries[0].Key, d.Entries[0].Value)
			}
			if last := d.Entries[n]; last.Key != int64(1) || last.Value != int64(8) {
				t.Errorf("last entry %v: %v, want 1: 8", last.Key, last.Value)
			}
		})
	}
}

// TestLargeDictKeys: many distinct keys, and one set twice, in one dict.
func TestLargeDictKeys(t *testing.T) {
	const n = 1000
	var b strings.Builder
	b.WriteString("\x80\x02}(")
	for i := range n {
		k := fmt.Sprintf("k%04d", i)
		fmt.Fprintf(&b, "X%s%sM%s", le32(len(k)), k, le32(i)[:2])
	}
	b.WriteString("uX\x05\x00\x00\x00k0500K\x01s.")
	v, err := decodeRawPickle([]byte(b.String()), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	d := v.(*checkpoint.Dict)
	if len(d.Entries) != n || d.Entries[500].Value != int64(1) || d.Entries[999].Key != "k0999" {
		t.Errorf("%d entries; entry 500 is %v, entry 999 is %v", len(d.Entries), d.Entries[500], d.Entries[999])
	}
}

func TestDecodeLong(t *testing.T) {
	big65 := new(big.Int).Lsh(big.NewInt(1), 64)
	tests := []struct {
		in   string
		want checkpoint.Value
	}{
		{"", int64(0)},
		{"\xff", int64(-1)},
		{"\x7f", int64(127)},
		{"\x80", int64(-128)},
		{"\x00\x80", int64(-32768)},
		{"\x00\x80\x00", int64(32768)},
		{"\xff\xff\xff\xff\xff\xff\xff\x7f", int64(1<<63 - 1)},
		{"\x00\x00\x00\x00\x00\x00\x00\x80", int64(-1 << 63)},
		{"\x00\x00\x00\x00\x00\x00\x00\x80\x00", new(big.Int).Lsh(big.NewInt(1), 63)},
		{"\x00\x00\x00\x00\x00\x00\x00\x00\x01", big65},
		{"\xff\xff\xff\xff\xff\xff\xff\xff\xff", int64(-1)},
	}
	for _, tt := range tests {
		got := decodeLong([]byte(tt.in))
		if fmt.Sprint(got) != fmt.Sprint(tt.want) || fmt.Sprintf("%T", got) != fmt.Sprintf("%T", tt.want) {
			t.Errorf("decodeLong(%q) = %v (%T), want %v (%T)", tt.in, got, got, tt.want, tt.want)
		}
	}
}

// TestStateDictMetadata: torch BUILDs a state_dict with its _metadata attribute after its
// entries; the attribute becomes the OrderedDict's State.
func TestStateDictMetadata(t *testing.T) {
	pkl := "\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00aK\x01s}X\t\x00\x00\x00_metadataK\x02sb."
	v, err := decodeRawPickle([]byte(pkl), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	od := v.(*checkpoint.OrderedDict)
	st, ok := od.State.(*checkpoint.Dict)
	if len(od.Entries) != 1 || !ok || len(st.Entries) != 1 || st.Entries[0].Key != "_metadata" || st.Entries[0].Value != int64(2) {
		t.Errorf("decoded %+v with state %+v", od, od.State)
	}
}
