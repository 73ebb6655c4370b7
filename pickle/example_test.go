package pickle_test

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/pickle"
)

// Open a checkpoint, list its tensors and save it again.
func Example() {
	c, err := pickle.Open("../fixtures/seed2x2.pt")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for _, nt := range checkpoint.Tensors(c.Root) {
		t := nt.Tensor
		fmt.Println(nt.Path, t.Storage.Kind, t.Size, t.Stride)
	}
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	if err := pickle.Save(filepath.Join(dir, "copy.pt"), c, nil); err != nil {
		log.Fatal(err)
	}
	// Output:
	// fc.weight float32 [2 4] [4 1]
	// fc.bias float32 [2] [1]
}

// Build a state_dict in memory and save it as torch would.
func ExampleWrite() {
	w := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Location: "cpu", Len: 4}
	root := &checkpoint.OrderedDict{Entries: []checkpoint.Entry{
		{Key: "fc.weight", Value: &checkpoint.Tensor{Storage: w, Size: []int64{2, 2}, Stride: []int64{2, 1}, Hooks: &checkpoint.OrderedDict{}}},
	}}
	c, err := checkpoint.FromBytes(root, map[*checkpoint.Storage][]byte{w: make([]byte, 16)})
	if err != nil {
		log.Fatal(err)
	}
	n, err := pickle.Write(io.Discard, c, nil)
	fmt.Println(n > 0, err)
	// Output: true <nil>
}
