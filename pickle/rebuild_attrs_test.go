package pickle

import (
	"reflect"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// Every tensor kept through torch's other rebuild functions decodes to what was encoded,
// including forms torch's loader accepts but no fixture holds (a Parameter class given to
// _rebuild_from_type_v2, attributes around a meta tensor, tensors shared between them).
func TestRebuildsRoundTrip(t *testing.T) {
	f32 := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Location: "cpu", Len: 8}
	i64 := &checkpoint.Storage{Kind: checkpoint.Int64, Key: "1", Location: "cpu", Len: 4}
	u8 := &checkpoint.Storage{Kind: checkpoint.Uint8, Key: "2", Location: "cpu", Len: 4}
	dense := func(s *checkpoint.Storage, off int64, size ...int64) *checkpoint.Tensor {
		return &checkpoint.Tensor{Storage: s, Offset: off, Size: size, Stride: checkpoint.ContiguousStrides(size)}
	}
	attrs := func(k string, v checkpoint.Value) *checkpoint.Dict {
		return &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: k, Value: v}}}
	}
	meta := &checkpoint.Call{Func: &checkpoint.Global{Module: "torch._utils", Name: "_rebuild_meta_tensor_no_storage"},
		Args: &checkpoint.Tuple{Items: []checkpoint.Value{&checkpoint.Global{Module: "torch", Name: "float16"},
			&checkpoint.Tuple{Items: []checkpoint.Value{int64(2), int64(3)}}, &checkpoint.Tuple{Items: []checkpoint.Value{int64(1), int64(2)}}, true}},
		Tensor: "meta tensor"}
	nested := &checkpoint.Call{Func: &checkpoint.Global{Module: "torch._utils", Name: "_rebuild_nested_tensor"},
		Args:   &checkpoint.Tuple{Items: []checkpoint.Value{dense(f32, 0, 5), dense(i64, 0, 2, 1), dense(i64, 2, 2, 1), dense(i64, 0, 2)}},
		Tensor: "nested tensor"}
	old := &checkpoint.Tensor{Storage: f32, Offset: 2, Size: []int64{2, 3}, Stride: []int64{1, 2}, OldForm: true}
	param := &checkpoint.AttrTensor{Tensor: dense(f32, 0, 2, 4), Class: &checkpoint.Global{Module: "torch.nn.parameter", Name: "Parameter"},
		State: attrs("mask", dense(i64, 0, 4))}
	root := &checkpoint.Dict{Entries: []checkpoint.Entry{
		{Key: "param", Value: param},
		{Key: "param again", Value: param},
		{Key: "meta", Value: &checkpoint.AttrTensor{Tensor: meta, Class: &checkpoint.Global{Module: "torch", Name: "Tensor"}, State: attrs("lazy", true)}},
		{Key: "nested", Value: nested},
		{Key: "old", Value: old},
		{Key: "class", Value: &checkpoint.Global{Module: "torch.storage", Name: "TypedStorage"}},
		{Key: "parameter", Value: &checkpoint.Parameter{Data: dense(f32, 0, 2), WithState: true,
			Extra: []checkpoint.Value{attrs("mask", dense(u8, 0, 4))}}},
	}}
	got, err := decodeRawPickle(encode(t, root), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	d := got.(*checkpoint.Dict)
	if d.Entries[0].Value != d.Entries[1].Value {
		t.Error("a tensor with attributes referenced twice is no longer one object")
	}
	// The decoder makes storages of its own; compare with the originals' fields.
	if n := len(checkpoint.Storages(got)); n != 3 {
		t.Errorf("%d storages, want 3 (those of attributes and of the nested tensor's parts count)", n)
	}
	for _, s := range checkpoint.Storages(got) {
		*s = *map[string]*checkpoint.Storage{"0": f32, "1": i64, "2": u8}[s.Key]
	}
	want := root
	for i := range want.Entries {
		if !reflect.DeepEqual(d.Entries[i].Value, want.Entries[i].Value) {
			t.Errorf("%s: decoded as %#v, encoded %#v", want.Entries[i].Key, d.Entries[i].Value, want.Entries[i].Value)
		}
	}
}
