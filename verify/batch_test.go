package verify

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// TestRunAllBatches checks that running several batches through one pass over the weights
// gives exactly what running each alone gives, whether the weights are held in memory or
// read from a checkpoint a block of rows at a time (blocks smaller than the weight).
func TestRunAllBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const out, c, h, w = 45, 3, 2, 2
	dense := randomLayer(rng, "fc", out, c, h, w)
	read := readLayer(t, dense)
	defer func(n int) { blockBytes = n }(blockBytes)
	blockBytes = 4 * c * h * w * 7 // blocks of 6 rows (whole tiles), the last of 3
	for _, d := range []*layerData{dense, read} {
		single := d.windows(randomDense(rng, 2, c, h, w))
		sliding := d.windows(randomDense(rng, 2, c, h+2, w+1))
		together, err := d.runAll([]batch{single, sliding})
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range []batch{single, sliding} {
			alone, err := d.runAll([]batch{b})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(alone[0], together[i]) {
				t.Errorf("weights in memory %v: batch %d differs when run with the other", d.lin.src == nil, i)
			}
			if r := compare(together[i]); !r.Pass {
				t.Errorf("batch %d: the forms disagree: %v", i, r)
			}
		}
	}
	if !reflect.DeepEqual(dense.lin.shape, read.lin.shape) || read.lin.src == nil {
		t.Fatalf("the read layer is not read: %+v", read.lin)
	}
}

// readLayer writes d's weight and bias into a checkpoint and loads the layer from it, with
// blocks of rows smaller than the weight.
func readLayer(t *testing.T, d *layerData) *layerData {
	t.Helper()
	out, k := d.lin.out, d.lin.k
	ws := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "w", Location: "cpu", Len: int64(out * k)}
	raw := make([]byte, 4*out*k)
	for i, v := range d.lin.data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	lin := &checkpoint.Tensor{Storage: ws, Size: []int64{int64(out), int64(k)}, Stride: []int64{int64(k), 1}}
	s := d.conv.shape
	conv := &checkpoint.Tensor{Storage: ws, Size: []int64{int64(s[0]), int64(s[1]), int64(s[2]), int64(s[3])},
		Stride: []int64{int64(k), int64(s[2] * s[3]), int64(s[3]), 1}}
	ck, err := checkpoint.FromBytes(&checkpoint.List{Items: []checkpoint.Value{lin}}, map[*checkpoint.Storage][]byte{ws: raw})
	if err != nil {
		t.Fatal(err)
	}
	defer func(n int64) { wholeWeight = n }(wholeWeight)
	wholeWeight = 0 // read by rows, however small
	r := &layerData{layer: d.layer, linBias: d.linBias, convBias: d.convBias, dtype: d.dtype}
	if r.lin, err = loadWeight(ck, lin, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if r.conv, err = loadWeight(ck, conv, nil, nil, r.lin); err != nil {
		t.Fatal(err)
	}
	r.prepare()
	return r
}

// TestWeightRowsShortRead: a weight whose file is shorter than it says is an error, not
// rows of zeros.
func TestWeightRowsShortRead(t *testing.T) {
	w := &weight{shape: []int{4, 3}, out: 4, k: 3, src: io.NewSectionReader(shortReader{}, 0, 48)}
	if _, err := w.rows(2, 2, make([]float32, 6)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("got %v, want io.ErrUnexpectedEOF", err)
	}
}

type shortReader struct{}

func (shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= 30 {
		return 0, io.EOF
	}
	n := copy(p, make([]byte, 30-off))
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
