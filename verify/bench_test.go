package verify

import (
	"encoding/binary"
	"github.com/pt2conv/pt2conv/checkpoint"
	"math"
	"math/rand/v2"
	"testing"
)

// randomLayer makes a layer out×(C·H·W) with random weights, both forms sharing them.
func randomLayer(rng *rand.Rand, name string, out, c, h, w int) *layerData {
	lin := randomDense(rng, out, c*h*w)
	d := &layerData{
		layer:   &Layer{Name: name, C: c, H: h, W: w},
		lin:     denseWeight(lin),
		conv:    denseWeight(&Dense{Shape: []int{out, c, h, w}, Data: lin.Data}),
		linBias: randomVector(rng, out),
		dtype:   "float32",
	}
	d.convBias = d.linBias
	d.prepare()
	return d
}

// BenchmarkVGGHead runs the sliding-window chain check of VGG16's head (fc6 as a 512×7×7
// conv, fc7 and fc8 as 1×1 convs) on a 512×14×14 input: 64 windows, both forms.
func BenchmarkVGGHead(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	head := []*layerData{
		randomLayer(rng, "fc6", 4096, 512, 7, 7),
		randomLayer(rng, "fc7", 4096, 4096, 1, 1),
		randomLayer(rng, "fc8", 1000, 4096, 1, 1),
	}
	x := randomDense(rng, 1, 512, 14, 14)
	windows := float64(8 * 8)
	var flops float64
	for _, d := range head {
		flops += 2 * 2 * windows * float64(d.lin.out*d.lin.k) // two forms
	}
	b.ResetTimer()
	for b.Loop() {
		o, err := head[0].windowsOf(x)
		for _, d := range head[1:] {
			if err != nil {
				break
			}
			o, err = d.next(o)
		}
		if err != nil {
			b.Fatal(err)
		}
		if r := compare(o); !r.Pass {
			b.Fatalf("head check failed: %v", r)
		}
	}
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}

// BenchmarkCheckVGGHead runs Check on VGG16's classifier converted as a conversion does it
// (fc6 viewed as 512×7×7, fc7 and fc8 as 1×1): decoding included, default options.
func BenchmarkCheckVGGHead(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	dict := &checkpoint.OrderedDict{}
	data := map[*checkpoint.Storage][]byte{}
	shapes := []struct {
		name    string
		out     int64
		c, h, w int64
	}{{"classifier.0", 4096, 512, 7, 7}, {"classifier.3", 4096, 4096, 1, 1}, {"classifier.6", 1000, 4096, 1, 1}}
	var converted []checkpoint.Entry
	var flops float64
	for _, s := range shapes {
		in := s.c * s.h * s.w
		ws := &checkpoint.Storage{Kind: checkpoint.Float32, Key: s.name + "w", Location: "cpu", Len: s.out * in}
		bs := &checkpoint.Storage{Kind: checkpoint.Float32, Key: s.name + "b", Location: "cpu", Len: s.out}
		data[ws], data[bs] = randomBytes(rng, s.out*in), randomBytes(rng, s.out)
		w := &checkpoint.Tensor{Storage: ws, Size: []int64{s.out, in}, Stride: []int64{in, 1}}
		bias := &checkpoint.Tensor{Storage: bs, Size: []int64{s.out}, Stride: []int64{1}}
		view := &checkpoint.Tensor{Storage: ws, Size: []int64{s.out, s.c, s.h, s.w}, Stride: []int64{in, s.h * s.w, s.w, 1}}
		dict.Entries = append(dict.Entries, checkpoint.Entry{Key: s.name + ".weight", Value: w}, checkpoint.Entry{Key: s.name + ".bias", Value: bias})
		converted = append(converted, checkpoint.Entry{Key: s.name + ".weight", Value: view}, checkpoint.Entry{Key: s.name + ".bias", Value: bias})
		flops += 2 * 2 * float64(s.out*in) * (2 + 2*9) // two forms, 2 single + 2×9 sliding rows
	}
	flops += 2 * 2 * 2 * 9 * (4096*4096 + 1000*4096) // the chain's fc7 and fc8 steps
	orig, err := checkpoint.FromBytes(dict, data)
	if err != nil {
		b.Fatal(err)
	}
	conv := orig.WithRoot(&checkpoint.OrderedDict{Entries: converted})
	b.ResetTimer()
	for b.Loop() {
		rep, err := Check(orig, conv, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Passed() {
			b.Fatalf("VGG head failed: %v", rep.Results)
		}
	}
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}

func randomBytes(rng *rand.Rand, n int64) []byte {
	out := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(rng.NormFloat64()*0.01)))
	}
	return out
}

// BenchmarkDecode decodes fc7-sized weights (4096×4096) stored in several layouts.
func BenchmarkDecode(b *testing.B) {
	const n = 4096
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tt := range []struct {
		name   string
		kind   checkpoint.StorageKind
		stride []int64
	}{
		{"float32", checkpoint.Float32, []int64{n, 1}},
		{"float32-transposed", checkpoint.Float32, []int64{1, n}},
		{"float16", checkpoint.Float16, []int64{n, 1}},
		{"bfloat16-transposed", checkpoint.BFloat16, []int64{1, n}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			s := &checkpoint.Storage{Kind: tt.kind, Key: "0", Location: "cpu", Len: n * n}
			raw := make([]byte, s.ByteLen())
			for i := range raw {
				raw[i] = byte(rng.Uint32() & 0x3f) // small finite values in every float kind
			}
			w := &checkpoint.Tensor{Storage: s, Size: []int64{n, n}, Stride: tt.stride}
			c, err := checkpoint.FromBytes(w, map[*checkpoint.Storage][]byte{s: raw})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(s.ByteLen())
			for b.Loop() {
				if _, err := Decode(c, w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
