package pickle_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/torchtest"
	"github.com/pt2conv/pt2conv/pickle"
)

// A storage of a dtype without a torch storage class (as another format's reader makes it)
// is written the way torch 2 writes such tensors: an UntypedStorage sized in bytes and
// _rebuild_tensor_v3 with the dtype. It reads back as that, and torch 2 loads it with
// weights_only=True as the dtype and bytes it was given.
func TestClasslessDTypeIsWrittenAsTorch2Does(t *testing.T) {
	s := &checkpoint.Storage{Kind: checkpoint.Float8E5M2, Key: "0", Location: "cpu", Len: 6}
	u := &checkpoint.Storage{Kind: checkpoint.UInt16, Key: "1", Location: "cpu", Len: 3}
	root := &checkpoint.Dict{Entries: []checkpoint.Entry{
		{Key: "f8", Value: &checkpoint.Tensor{Storage: s, Offset: 1, Size: []int64{2, 2}, Stride: []int64{1, 2}}},
		{Key: "u16", Value: &checkpoint.Tensor{Storage: u, Size: []int64{3}, Stride: []int64{1}}},
	}}
	c, err := checkpoint.FromBytes(root, map[*checkpoint.Storage][]byte{
		s: {0x3c, 0x40, 0xbc, 0x7c, 0x01, 0x7d}, u: {1, 0, 0xff, 0xff, 0, 0x80},
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "f8.pt")
	if err := pickle.Save(path, c, nil); err != nil {
		t.Fatal(err)
	}
	back, err := pickle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	ts := checkpoint.Tensors(back.Root)
	if len(ts) != 2 || ts[0].Tensor.Kind() != checkpoint.Float8E5M2 || ts[0].Tensor.Storage.Kind != checkpoint.Untyped ||
		ts[0].Tensor.Storage.ByteLen() != 6 || ts[1].Tensor.Kind() != checkpoint.UInt16 || ts[1].Tensor.Storage.ByteLen() != 6 {
		t.Fatalf("read back %+v", ts)
	}
	const script = `
import sys, torch
d = torch.load(sys.argv[1], weights_only=True)
print(d["f8"].dtype, d["f8"].float().tolist(), d["f8"].stride(), d["f8"].storage_offset(), d["u16"].dtype, d["u16"].tolist())
`
	for _, tr := range torchtest.All(t) {
		if strings.HasPrefix(tr.Version, "1.") {
			continue
		}
		got := strings.TrimSpace(string(tr.Run(t, script, tr.Share(t, path))))
		want := "torch.float8_e5m2 [[2.0, inf], [-1.0, 1.52587890625e-05]] (1, 2) 1 torch.uint16 [1, 65535, 32768]"
		if got != want {
			t.Errorf("%s loads %s, want %s", tr, got, want)
		}
	}
}
