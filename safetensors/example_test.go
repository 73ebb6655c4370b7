package safetensors_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/safetensors"
)

// A state_dict built in memory, saved as safetensors and read back.
func Example() {
	dir, _ := os.MkdirTemp("", "safetensors-example")
	defer os.RemoveAll(dir)

	w := &checkpoint.Storage{Kind: checkpoint.Float32, Len: 6, Location: "cpu"}
	sd := &checkpoint.OrderedDict{Entries: []checkpoint.Entry{
		// A transposed view: written in row-major order, as safetensors has no strides.
		{Key: "fc.weight", Value: &checkpoint.Tensor{Storage: w, Size: []int64{3, 2}, Stride: []int64{1, 3}}},
	}}
	c, err := checkpoint.FromBytes(sd, map[*checkpoint.Storage][]byte{w: make([]byte, 24)})
	if err != nil {
		fmt.Println(err)
		return
	}
	path := filepath.Join(dir, "model.safetensors")
	if err := safetensors.Save(path, c, nil); err != nil {
		fmt.Println(err)
		return
	}
	back, err := safetensors.Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer back.Close()
	for _, nt := range checkpoint.Tensors(back.Root) {
		fmt.Println(nt.Path, nt.Tensor.Storage.Kind, nt.Tensor.Size, nt.Tensor.Stride)
	}
	fmt.Println(safetensors.HeaderOf(back).Metadata)
	// Output:
	// fc.weight float32 [3 2] [2 1]
	// map[format:pt]
}
