package verify_test

import (
	"encoding/binary"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"log"
	"math"

	"github.com/pt2conv/pt2conv/verify"
)

// float32Bytes encodes values as torch stores a FloatStorage.
func float32Bytes(vals ...float32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// stateDict builds a one-layer state_dict {"fc.weight", "fc.bias"} whose weight is viewed
// with the given size and stride.
func stateDict(size, stride []int64) *checkpoint.Checkpoint {
	weight := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Location: "cpu", Len: 8}
	bias := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "1", Location: "cpu", Len: 2}
	root := &checkpoint.OrderedDict{Entries: []checkpoint.Entry{
		{Key: "fc.weight", Value: &checkpoint.Tensor{Storage: weight, Size: size, Stride: stride}},
		{Key: "fc.bias", Value: &checkpoint.Tensor{Storage: bias, Size: []int64{2}, Stride: []int64{1}}},
	}}
	c, err := checkpoint.FromBytes(root, map[*checkpoint.Storage][]byte{
		weight: float32Bytes(1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8),
		bias:   float32Bytes(1.9, 2.0),
	})
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// A Linear(4, 2) whose weight becomes a Conv2d(1, 2, kernel 2×2) over the same bytes.
func ExampleCheck() {
	orig := stateDict([]int64{2, 4}, []int64{4, 1})
	conv := stateDict([]int64{2, 1, 2, 2}, []int64{4, 4, 2, 1})

	rep, err := verify.Check(orig, conv, verify.Options{Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range rep.Results {
		fmt.Println(r.Check, r.Layer, r.Outputs, r.Pass)
	}
	fmt.Println("passed:", rep.Passed())

	// The same bytes read with H and W exchanged compute something else.
	swapped := stateDict([]int64{2, 1, 2, 2}, []int64{4, 4, 1, 2})
	rep, err = verify.Check(orig, swapped, verify.Options{Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("swapped passed:", rep.Passed())
	// Output:
	// single fc 4 true
	// sliding fc 36 true
	// passed: true
	// swapped passed: false
}

// The worked example of the FC → CONV identity: relu(linear) = relu(conv 2×2).
func ExampleConv2d() {
	w := &verify.Dense{Shape: []int{2, 1, 2, 2}, Data: []float32{1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8}}
	img := &verify.Dense{Shape: []int{1, 1, 2, 2}, Data: []float32{1, 2, 3, 4}}
	y, err := verify.Conv2d(img, w, []float32{1.9, 2.0}, verify.ConvParams{})
	if err != nil {
		log.Fatal(err)
	}
	verify.ReLU(y)
	fmt.Printf("%v %.1f\n", y.Shape, y.Data)
	// Output: [1 2 1 1] [14.9 19.0]
}
