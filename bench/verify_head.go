//go:build ignore

// Command verify_head is the Go side of the verification benchmark: the same computation as
// torch_verify.py, written with the verify package's public API. It decodes the VGG16 head
// (classifier.0, .3, .6) from the original and the converted checkpoint, runs the Linear
// form on each 7×7 window of one random 512×S×S input and the Conv2d form on the whole
// input, ReLU between layers, and compares every output position.
//
//	go run verify_head.go [-size 14] ORIGINAL CONVERTED
package main

import (
	"flag"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/pt2conv/pt2conv/pickle"
	"github.com/pt2conv/pt2conv/verify"
)

var head = []string{"classifier.0", "classifier.3", "classifier.6"}

const kernel = 7

type layer struct {
	lin, conv         *verify.Dense
	linBias, convBias []float32
}

func main() {
	size := flag.Int("size", 14, "input height and width")
	seed := flag.Uint64("seed", 1, "seed of the random input")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: verify_head [-size N] ORIGINAL CONVERTED")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *size, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "verify_head:", err)
		os.Exit(2)
	}
}

func run(origPath, convPath string, size int, seed uint64) error {
	start := time.Now()
	orig, err := pickle.Open(origPath)
	if err != nil {
		return err
	}
	defer orig.Close()
	conv, err := pickle.Open(convPath)
	if err != nil {
		return err
	}
	defer conv.Close()
	layers, err := loadHead(orig, conv)
	if err != nil {
		return err
	}
	loaded := time.Now()

	rng := rand.New(rand.NewPCG(seed, 0))
	x := verify.NewDense(1, 512, size, size)
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	t0 := time.Now()
	yConv := x
	for i, l := range layers {
		if i > 0 {
			verify.ReLU(yConv)
		}
		if yConv, err = verify.Conv2d(yConv, l.conv, l.convBias, verify.ConvParams{}); err != nil {
			return err
		}
	}
	t1 := time.Now()
	positions := size - kernel + 1
	yLin := windows(x, positions)
	for i, l := range layers {
		if i > 0 {
			verify.ReLU(yLin)
		}
		if yLin, err = verify.Linear(yLin, l.lin, l.linBias); err != nil {
			return err
		}
	}
	computed := time.Now()

	// Row p of yLin is output position p of yConv, whose planes are [out][positions²].
	out, plane := yConv.Shape[1], positions*positions
	var diff, scale float64
	for p := range plane {
		for o := range out {
			want := float64(yLin.Data[p*out+o])
			diff = max(diff, math.Abs(float64(yConv.Data[o*plane+p])-want))
			scale = max(scale, math.Abs(want))
		}
	}
	tol := 1e-4 * max(scale, 1)
	verdict := "ok"
	if !(diff <= tol) {
		verdict = "FAIL"
	}
	fmt.Printf("pt2conv verify: %dx%d windows, load %.3f s, compute %.3f s (conv %.3f s, linear %.3f s), "+
		"max abs diff %.3g (tol %.3g) %s\n", positions, positions, loaded.Sub(start).Seconds(),
		computed.Sub(loaded).Seconds(), t1.Sub(t0).Seconds(), computed.Sub(t1).Seconds(), diff, tol, verdict)
	if verdict != "ok" {
		os.Exit(1)
	}
	return nil
}

// loadHead decodes the head's weights: the 2-D form from orig, the 4-D form from conv.
func loadHead(orig, conv *checkpoint.Checkpoint) ([]layer, error) {
	found, err := verify.FindLayers(orig, conv)
	if err != nil {
		return nil, err
	}
	byName := map[string]verify.Layer{}
	for _, l := range found {
		byName[l.Name] = l
	}
	var layers []layer
	for _, name := range head {
		l, ok := byName[name]
		if !ok || l.Reverse {
			return nil, fmt.Errorf("%s is not a converted Linear layer in %s", name, conv.Name)
		}
		var d layer
		if d.lin, err = verify.Decode(orig, l.Original); err != nil {
			return nil, err
		}
		if d.conv, err = verify.Decode(conv, l.Converted); err != nil {
			return nil, err
		}
		if (l.Bias == nil) != (l.ConvertedBias == nil) {
			return nil, fmt.Errorf("%s: the bias is in one file and not in the other", name)
		}
		bias := l.ConvertedBias
		if l.Bias != nil {
			b, err := verify.Decode(orig, l.Bias)
			if err != nil {
				return nil, err
			}
			d.linBias = b.Data
			if b, err = verify.Decode(conv, bias); err != nil {
				return nil, err
			}
			d.convBias = b.Data
		}
		layers = append(layers, d)
	}
	return layers, nil
}

// windows lays out the 512×7×7 windows of x as rows, flattened the way nn.Flatten does.
func windows(x *verify.Dense, positions int) *verify.Dense {
	c, h, w := x.Shape[1], x.Shape[2], x.Shape[3]
	k := c * kernel * kernel
	rows := verify.NewDense(positions*positions, k)
	for i := range positions {
		for j := range positions {
			dst := rows.Data[(i*positions+j)*k:]
			for ch := range c {
				for y := range kernel {
					src := x.Data[(ch*h+i+y)*w+j:]
					copy(dst[(ch*kernel+y)*kernel:][:kernel], src[:kernel])
				}
			}
		}
	}
	return rows
}
