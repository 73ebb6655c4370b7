package pickle

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/torchtest"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func bigInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 0)
	if !ok {
		panic(s)
	}
	return n
}

// The expected bytes are what Python's pickle.dumps(value, protocol=2) returns.
func TestEncodeValues(t *testing.T) {
	tests := []struct {
		name string
		v    checkpoint.Value
		hex  string
	}{
		{"0", int64(0), "80024b002e"},
		{"255", int64(255), "80024bff2e"},
		{"256", int64(256), "80024d00012e"},
		{"65535", int64(65535), "80024dffff2e"},
		{"65536", int64(65536), "80024a000001002e"},
		{"-1", int64(-1), "80024affffffff2e"},
		{"-128", int64(-128), "80024a80ffffff2e"},
		{"-129", int64(-129), "80024a7fffffff2e"},
		{"MaxInt32", int64(math.MaxInt32), "80024affffff7f2e"},
		{"MinInt32", int64(math.MinInt32), "80024a000000802e"},
		{"2**31", int64(1 << 31), "80028a0500000080002e"},
		{"-2**31-1", int64(math.MinInt32 - 1), "80028a05ffffff7fff2e"},
		{"MaxInt64", int64(math.MaxInt64), "80028a08ffffffffffffff7f2e"},
		{"MinInt64", int64(math.MinInt64), "80028a0800000000000000802e"},
		{"2**64", bigInt("0x10000000000000000"), "80028a090000000000000000012e"},
		{"-2**64", bigInt("-0x10000000000000000"), "80028a090000000000000000ff2e"},
		{"2**70", bigInt("0x400000000000000000"), "80028a090000000000000000402e"},
		{"big small", big.NewInt(-1), "80024affffffff2e"},
		{"1.5", 1.5, "8002473ff80000000000002e"},
		{"-0.0", math.Copysign(0, -1), "80024780000000000000002e"},
		{"empty str", "", "8002580000000071002e"},
		{"str", "héllo", "8002580600000068c3a96c6c6f71002e"},
		{"True", true, "8002882e"},
		{"False", false, "8002892e"},
		{"None", nil, "80024e2e"},
		{"empty bytes", checkpoint.Bytes{}, "8002635f5f6275696c74696e5f5f0a62797465730a7100295271012e"},
		{"bytes", checkpoint.Bytes{0, 0xff, 'a'}, "8002635f636f646563730a656e636f64650a7100580400000000c3bf61710158060000006c6174696e3171028671035271042e"},
		{"()", &checkpoint.Tuple{}, "8002292e"},
		{"(1,)", &checkpoint.Tuple{Items: []checkpoint.Value{int64(1)}}, "80024b018571002e"},
		{"(1, 2)", &checkpoint.Tuple{Items: []checkpoint.Value{int64(1), int64(2)}}, "80024b014b028671002e"},
		{"(1, 2, 3)", &checkpoint.Tuple{Items: []checkpoint.Value{int64(1), int64(2), int64(3)}}, "80024b014b024b038771002e"},
		{"(1, 2, 3, 4)", &checkpoint.Tuple{Items: []checkpoint.Value{int64(1), int64(2), int64(3), int64(4)}}, "8002284b014b024b034b047471002e"},
		{"[]", &checkpoint.List{}, "80025d71002e"},
		{"[1]", &checkpoint.List{Items: []checkpoint.Value{int64(1)}}, "80025d71004b01612e"},
		{"[1, 2]", &checkpoint.List{Items: []checkpoint.Value{int64(1), int64(2)}}, "80025d7100284b014b02652e"},
		{"{}", &checkpoint.Dict{}, "80027d71002e"},
		{"{'a': 1}", &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "a", Value: int64(1)}}}, "80027d710058010000006171014b01732e"},
		{"{'a': 1, 'b': 2}", &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "a", Value: int64(1)}, {Key: "b", Value: int64(2)}}},
			"80027d71002858010000006171014b0158010000006271024b02752e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := encode(t, tt.v)
			if want, _ := hex.DecodeString(tt.hex); !bytes.Equal(got, want) {
				t.Errorf("Encode(%v)\n got %x\nwant %s", tt.v, got, tt.hex)
			}
		})
	}
}

func encode(t *testing.T, v checkpoint.Value) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := NewEncoder(&buf).Encode(v); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return buf.Bytes()
}

// Shared objects are written once and then fetched from the memo; equal but distinct
// tuples are written twice, as Python writes tuples built separately.
func TestEncodeShared(t *testing.T) {
	inner := &checkpoint.List{Items: []checkpoint.Value{"x"}}
	tup := &checkpoint.Tuple{Items: []checkpoint.Value{int64(1), int64(2)}}
	self := &checkpoint.List{}
	self.Items = []checkpoint.Value{self}
	v := &checkpoint.List{Items: []checkpoint.Value{inner, inner, tup, tup, &checkpoint.Tuple{Items: []checkpoint.Value{int64(1), int64(2)}}, "x", self}}
	got := encode(t, v)
	// [ [x], [x], (1,2), (1,2), (1,2)', 'x', self-list ]
	want := "80025d7100" + "28" +
		"5d7101" + "5801000000787102" + "61" + // inner = ['x'] memo 1, 'x' memo 2
		"6801" + // inner again
		"4b014b02867103" + // tup memo 3
		"6803" + // tup again
		"4b014b02867104" + // equal tuple, new object memo 4
		"6802" + // 'x' again
		"5d7105" + "6805" + "61" + // self-referencing list
		"652e"
	if hex.EncodeToString(got) != want {
		t.Errorf("got  %x\nwant %s", got, want)
	}
}

// Equal strings share a memo slot whether the encoder finds them by position (numbers
// below its size hint, as torch's storage keys are) or by hash (the rest).
func TestEncodeStringMemo(t *testing.T) {
	v := &checkpoint.List{Items: []checkpoint.Value{"7", "x", "12", "7", "x", "12", "012"}}
	for _, hint := range []int{0, 8, 100} {
		var buf bytes.Buffer
		e := NewEncoder(&buf)
		e.sizeHint = hint
		if err := e.Encode(v); err != nil {
			t.Fatal(err)
		}
		// ["7" memo 1, "x" memo 2, "12" memo 3, then the three again, "012" memo 4]
		want := "80025d7100" + "28" +
			"5801000000377101" + "5801000000787102" + "580200000031327103" +
			"6801" + "6802" + "6803" + "5803000000303132" + "7104" +
			"652e"
		if got := hex.EncodeToString(buf.Bytes()); got != want {
			t.Errorf("size hint %d:\ngot  %s\nwant %s", hint, got, want)
		}
	}
}

func TestEncodeLongMemo(t *testing.T) {
	items := make([]checkpoint.Value, 300)
	for i := range items {
		items[i] = strings.Repeat("k", i+1)
	}
	items = append(items, items[299])
	got := encode(t, &checkpoint.List{Items: items})
	// The 300th string is memo slot 300 (the list is slot 0): LONG_BINPUT and LONG_BINGET.
	if !bytes.Contains(got, []byte{opLongBinPut, 44, 1, 0, 0, opLongBinGet, 44, 1, 0, 0}) {
		t.Errorf("no LONG_BINPUT/LONG_BINGET 300 in the encoding")
	}
}

// Python batches APPENDS and SETITEMS by 1000, with APPEND/SETITEM for a batch of one.
func TestEncodeBatches(t *testing.T) {
	items := make([]checkpoint.Value, 1001)
	entries := make([]checkpoint.Entry, 1001)
	for i := range items {
		items[i] = int64(0)
		entries[i] = checkpoint.Entry{Key: int64(i), Value: nil}
	}
	got := encode(t, &checkpoint.List{Items: items})
	if n := bytes.Count(got, []byte{opAppends}); n != 1 || got[len(got)-2] != opAppend {
		t.Errorf("list of 1001: %d APPENDS, ends in %q", n, got[len(got)-2])
	}
	got = encode(t, &checkpoint.Dict{Entries: entries})
	if got[len(got)-2] != opSetItem {
		t.Errorf("dict of 1001 ends in %q, want SETITEM", got[len(got)-2])
	}
}

func TestEncodeCycleThroughTuple(t *testing.T) {
	l := &checkpoint.List{}
	tup := &checkpoint.Tuple{Items: []checkpoint.Value{l}}
	l.Items = []checkpoint.Value{tup}
	err := NewEncoder(&bytes.Buffer{}).Encode(tup)
	if !errors.Is(err, ErrCycle) {
		t.Fatalf("Encode(recursive tuple) = %v, want ErrCycle", err)
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, v := range []checkpoint.Value{
		struct{}{},
		&checkpoint.Tensor{Size: []int64{1}, Stride: []int64{1}},
		&checkpoint.Tensor{Storage: &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Location: "cpu", Len: 1}, Size: []int64{1}},
		&checkpoint.Tensor{Storage: &checkpoint.Storage{Key: "0", Location: "cpu", Len: 1}},
		&checkpoint.Call{},
		&checkpoint.Parameter{},
	} {
		if err := NewEncoder(&bytes.Buffer{}).Encode(v); err == nil {
			t.Errorf("Encode(%#v) succeeded", v)
		}
	}
}

func TestEncodeCallAndParameter(t *testing.T) {
	size := &checkpoint.Call{Func: &checkpoint.Global{Module: "torch", Name: "Size"}, Args: &checkpoint.Tuple{Items: []checkpoint.Value{&checkpoint.Tuple{Items: []checkpoint.Value{int64(2), int64(3)}}}}}
	s := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Location: "cpu", Len: 1}
	p := &checkpoint.Parameter{Data: &checkpoint.Tensor{Storage: s, Size: []int64{}, Stride: []int64{}}, RequiresGrad: true}
	got := encode(t, &checkpoint.List{Items: []checkpoint.Value{size, p, p, &checkpoint.Global{Module: "torch", Name: "float32"}}})
	for _, want := range []string{
		"ctorch\nSize\n", "R", "ctorch._utils\n_rebuild_parameter\n", "ctorch\nfloat32\n",
		"ctorch._utils\n_rebuild_tensor_v2\n",
	} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("encoding lacks %q", want)
		}
	}
	if n := bytes.Count(got, []byte("_rebuild_parameter")); n != 1 {
		t.Errorf("shared parameter written %d times", n)
	}
}

// stateDictTree is state_dict() of testdata/write/checkpoint.py.
func stateDictTree() (checkpoint.Value, map[*checkpoint.Storage][]byte) {
	s0 := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Location: "cpu", Len: 3}
	s1 := &checkpoint.Storage{Kind: checkpoint.Float16, Key: "1", Location: "cpu", Len: 4}
	a := &checkpoint.Tensor{Storage: s0, Size: []int64{3}, Stride: []int64{1}}
	sd := &checkpoint.OrderedDict{
		Entries: []checkpoint.Entry{
			{Key: "a", Value: a},
			{Key: "b", Value: &checkpoint.Tensor{Storage: s1, Size: []int64{2, 2}, Stride: []int64{2, 1}}},
			{Key: "c", Value: a},
		},
		State: metadata(),
	}
	return sd, map[*checkpoint.Storage][]byte{s0: f32s(1, 1, 1), s1: make([]byte, 8)}
}

func metadata() *checkpoint.Dict {
	return &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "_metadata", Value: &checkpoint.OrderedDict{Entries: []checkpoint.Entry{
		{Key: "", Value: &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "version", Value: int64(1)}}}},
		{Key: "fc", Value: &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "version", Value: int64(1)}}}},
	}}}}}
}

func f32s(xs ...float32) []byte {
	b := make([]byte, 0, 4*len(xs))
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func u16s(xs ...uint16) []byte {
	b := make([]byte, 0, 2*len(xs))
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint16(b, x)
	}
	return b
}

func i64s(xs ...int64) []byte {
	b := make([]byte, 0, 8*len(xs))
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint64(b, uint64(x))
	}
	return b
}

func tensor(s *checkpoint.Storage, offset int64, size, stride []int64) *checkpoint.Tensor {
	return &checkpoint.Tensor{Storage: s, Offset: offset, Size: size, Stride: stride}
}

// trainingTree is training(plainOnly) of testdata/write/checkpoint.py.
func trainingTree(plainOnly bool) (checkpoint.Value, map[*checkpoint.Storage][]byte) {
	st := func(k checkpoint.StorageKind, key string, n int64) *checkpoint.Storage {
		return &checkpoint.Storage{Kind: k, Key: key, Location: "cpu", Len: n}
	}
	w, half, bf, idx, scalar, mom := st(checkpoint.Float32, "0", 12), st(checkpoint.Float16, "1", 6),
		st(checkpoint.BFloat16, "2", 3), st(checkpoint.Int64, "3", 2), st(checkpoint.Float32, "4", 1), st(checkpoint.Float32, "5", 2)
	weight := tensor(w, 0, []int64{3, 4}, []int64{4, 1})
	model := &checkpoint.OrderedDict{
		Entries: []checkpoint.Entry{
			{Key: "fc.weight", Value: weight},
			{Key: "fc.weight_t", Value: tensor(w, 0, []int64{4, 3}, []int64{1, 4})},
			{Key: "fc.bias", Value: tensor(w, 4, []int64{4}, []int64{1})},
			{Key: "half", Value: tensor(half, 0, []int64{2, 3}, []int64{3, 1})},
			{Key: "bf16", Value: tensor(bf, 0, []int64{3}, []int64{1})},
			{Key: "idx", Value: tensor(idx, 0, []int64{2}, []int64{1})},
			{Key: "scalar", Value: tensor(scalar, 0, []int64{}, []int64{})},
		},
		State: metadata(),
	}
	group := &checkpoint.Dict{Entries: []checkpoint.Entry{
		{Key: "params", Value: &checkpoint.List{Items: []checkpoint.Value{int64(0), int64(1)}}},
		{Key: "nesterov", Value: false},
		{Key: "dampening", Value: int64(0)},
		{Key: "big", Value: bigInt("0x400000000000000000")},
		{Key: "neg", Value: int64(-129)},
		{Key: "i32", Value: int64(-70000)},
		{Key: "i16", Value: int64(60000)},
		{Key: "none", Value: nil},
		{Key: "t", Value: &checkpoint.Tuple{Items: []checkpoint.Value{int64(1), int64(2), int64(3), int64(4)}}},
		{Key: "t1", Value: &checkpoint.Tuple{Items: []checkpoint.Value{"x"}}},
	}}
	ck := &checkpoint.Dict{Entries: []checkpoint.Entry{
		{Key: "epoch", Value: int64(7)},
		{Key: "model", Value: model},
		{Key: "optimizer", Value: &checkpoint.Dict{Entries: []checkpoint.Entry{
			{Key: "state", Value: &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: int64(0), Value: &checkpoint.Dict{Entries: []checkpoint.Entry{
				{Key: "momentum_buffer", Value: tensor(mom, 0, []int64{2}, []int64{1})},
			}}}}}},
			{Key: "param_groups", Value: &checkpoint.List{Items: []checkpoint.Value{group}}},
		}}},
		{Key: "tied", Value: weight},
		{Key: "true", Value: true},
	}}
	if !plainOnly {
		group.Entries = append(group.Entries, checkpoint.Entry{Key: "lr", Value: 0.1})
		ck.Entries = append(ck.Entries, checkpoint.Entry{Key: "bytes", Value: checkpoint.Bytes("\x00\xffab\x80")}, checkpoint.Entry{Key: "empty", Value: checkpoint.Bytes{}})
	}
	data := map[*checkpoint.Storage][]byte{
		w:      f32s(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
		half:   u16s(0x3E00, 0xC000, 0x4280, 0, 0x7BFF, 0xB800),
		bf:     u16s(0x3F80, 0xC060, 0x4480),
		idx:    i64s(-1, 1<<40),
		scalar: f32s(5),
		mom:    f32s(0.5, 0.25),
	}
	return ck, data
}

// The golden pickles are the data.pkl torch.save writes for the same objects
// (testdata/write/checkpoint.py golden).
func TestEncodeGolden(t *testing.T) {
	tests := []struct {
		file string
		tree func() (checkpoint.Value, map[*checkpoint.Storage][]byte)
	}{
		{"state_dict.pkl", stateDictTree},
		{"training.pkl", func() (checkpoint.Value, map[*checkpoint.Storage][]byte) { return trainingTree(false) }},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", "write", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			root, _ := tt.tree()
			if got := encode(t, root); !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				t.Errorf("encoding differs from torch's at byte %d of %d\n got %q\nwant %q",
					i, len(want), got[max(0, i-20):min(len(got), i+40)], want[max(0, i-20):min(len(want), i+40)])
			}
		})
	}
}

// restrictedLoad unpickles each file with a Python Unpickler that resolves only the globals
// plain values need, and prints a normalised repr of each (OrderedDicts as
// ('OrderedDict', items, state), shared objects marked by identity).
const restrictedLoad = `
import codecs, collections, pickle, sys
ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
           ("_codecs", "encode"): codecs.encode, ("__builtin__", "bytes"): bytes}
class Restricted(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError("global %s.%s" % (module, name))
        return ALLOWED[(module, name)]
def norm(v, seen):
    if isinstance(v, (list, dict, tuple)) and v:
        if id(v) in seen:
            return "<same %s>" % type(v).__name__
        seen = seen | {id(v)}
    if isinstance(v, collections.OrderedDict):
        return ("OrderedDict", [(norm(k, seen), norm(x, seen)) for k, x in v.items()], norm(v.__dict__, seen))
    if isinstance(v, dict):
        return {k: norm(x, seen) for k, x in v.items()}
    if isinstance(v, list):
        return [norm(x, seen) for x in v]
    if isinstance(v, tuple):
        return tuple(norm(x, seen) for x in v)
    return v
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        v = Restricted(f).load()
    if isinstance(v, list) and len(v) == 2 and v[0] is v[1]:
        print("shared", repr(norm(v[0], set())))
    else:
        print(repr(norm(v, set())))
`

// Python's own unpickler reads what the Encoder writes back to the same values.
func TestEncodeDecodesInPython(t *testing.T) {
	python, err := exec.LookPath(envOr("PT2CONV_PYTHON", "python3"))
	if err != nil {
		if torchtest.Required() {
			t.Fatalf("python3 not found (%s=1 requires it): %v", torchtest.EnvRequireTorch, err)
		}
		t.Skip("python3 not found")
	}
	shared := &checkpoint.List{Items: []checkpoint.Value{"s"}}
	self := &checkpoint.List{}
	self.Items = []checkpoint.Value{int64(1), self}
	tests := []struct {
		v    checkpoint.Value
		want string
	}{
		{&checkpoint.OrderedDict{Entries: []checkpoint.Entry{{Key: "b", Value: int64(1)}, {Key: "a", Value: nil}}, State: metadata()},
			"('OrderedDict', [('b', 1), ('a', None)], {'_metadata': ('OrderedDict', [('', {'version': 1}), ('fc', {'version': 1})], {})})"},
		{&checkpoint.List{Items: []checkpoint.Value{shared, shared}}, "shared ['s']"},
		{self, "[1, '<same list>']"},
		{&checkpoint.Dict{Entries: []checkpoint.Entry{{Key: int64(-5), Value: bigInt("-0x123456789abcdef0123")}, {Key: true, Value: 2.5}, {Key: "é", Value: checkpoint.Bytes("\x00\xfe")}, {Key: nil, Value: checkpoint.Bytes{}}}},
			"{-5: -5373003642731685151011, True: 2.5, 'é': b'\\x00\\xfe', None: b''}"},
		{&checkpoint.Tuple{Items: []checkpoint.Value{int64(1), &checkpoint.Tuple{}, &checkpoint.Tuple{Items: []checkpoint.Value{"x", "x", "x", "x"}}}}, "(1, (), ('x', 'x', 'x', 'x'))"},
	}
	dir := t.TempDir()
	var paths []string
	for i, tt := range tests {
		p := filepath.Join(dir, fmt.Sprintf("%d.pkl", i))
		if err := os.WriteFile(p, encode(t, tt.v), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(python, append([]string{"-c", restrictedLoad}, paths...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, tt := range tests {
		if i >= len(got) || got[i] != tt.want {
			t.Errorf("value %d loads in Python as\n%s\nwant\n%s", i, got[min(i, len(got)-1)], tt.want)
		}
	}
}

func ExampleEncoder() {
	s := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Location: "cpu", Len: 4}
	sd := &checkpoint.OrderedDict{Entries: []checkpoint.Entry{
		{Key: "fc.weight", Value: &checkpoint.Tensor{Storage: s, Size: []int64{2, 2}, Stride: []int64{2, 1}}},
	}}
	var buf bytes.Buffer
	if err := NewEncoder(&buf).Encode(sd); err != nil {
		panic(err)
	}
	os.Stdout.Write(buf.Bytes()[2:27]) // the first opcode after PROTO
	// Output:
	// ccollections
	// OrderedDict
}
