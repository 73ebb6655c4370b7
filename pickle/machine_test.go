package pickle

import (
	"bytes"
	"fmt"
	"math/big"
	"slices"
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

// The machine builds a tensor straight from TUPLE when its arguments serve nothing else,
// and through the general REDUCE otherwise; both give the same model.
func TestTensorShortcut(t *testing.T) {
	plain := tensorPickle("FloatStorage", 4)
	ending := []byte("tRs.")
	if !bytes.HasSuffix(plain, ending) {
		t.Fatalf("tensorPickle no longer ends in %q", ending)
	}
	with := func(end string) []byte {
		return append(bytes.Clone(plain[:len(plain)-len(ending)]), end...)
	}
	tests := []struct {
		name    string
		pkl     []byte
		argsKey string // a key whose value is the arguments tuple, read back from the memo
		wantErr string
	}{
		{"as torch writes it", plain, "", ""},
		{"with BINPUTs of slots nothing reads", with("tq\x05Rq\x06s."), "", ""},
		{"with MEMOIZE", with("t\x94R\x94s."), "", ""},
		{"with LONG_BINPUT", with("tr\x05\x00\x00\x00Rs."), "", ""},
		{"arguments read again", with("tq\x05RsX\x01\x00\x00\x00ah\x05s."), "a", ""},
		{"arguments read again after LONG_BINPUT", with("tr\x05\x00\x00\x00RsX\x01\x00\x00\x00aj\x05\x00\x00\x00s."), "a", ""},
		{"built with state", with("tR}bs."), "", "built with extra state"},
		{"built with state after a BINPUT", with("tRq\x06}bs."), "", "built with extra state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := decodeRawPickle(tt.pkl, DefaultLimits)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			od, ok := v.(*checkpoint.OrderedDict)
			if !ok || len(od.Entries) == 0 || od.Entries[0].Key != "w" {
				t.Fatalf("decoded %#v, want an OrderedDict holding w", v)
			}
			tensor, ok := od.Entries[0].Value.(*checkpoint.Tensor)
			if !ok {
				t.Fatalf("w is a %T, want a tensor", od.Entries[0].Value)
			}
			if tensor.Storage == nil || tensor.Storage.Key != "0" || tensor.Storage.Len != 4 ||
				!slices.Equal(tensor.Size, []int64{1}) || !slices.Equal(tensor.Stride, []int64{1}) ||
				tensor.Hooks != nil || tensor.Extra != nil || tensor.RequiresGrad {
				t.Errorf("w = %+v, want a view of the first of 4 elements of storage 0", tensor)
			}
			if tt.argsKey == "" {
				if len(od.Entries) != 1 {
					t.Errorf("%d entries, want 1", len(od.Entries))
				}
				return
			}
			if len(od.Entries) != 2 || od.Entries[1].Key != tt.argsKey {
				t.Fatalf("entries %v, want w and %s", od.Entries, tt.argsKey)
			}
			args, ok := od.Entries[1].Value.(*checkpoint.Tuple)
			if !ok || len(args.Items) != 6 || args.Items[0] != tensor.Storage {
				t.Errorf("%s = %#v, want the 6 arguments that rebuilt w", tt.argsKey, od.Entries[1].Value)
			}
		})
	}
}
