// Package manytensors builds checkpoints of many small tensors in memory and measures how
// an operation's allocations grow with their number. Tests use it to keep every pass over a
// checkpoint linear (or n log n) in its tensors: a pass that rescans per tensor shows up as
// allocations per tensor that grow with n, without timing anything.
package manytensors

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// Features is the width of every expert's Linear and LayerNorm.
const Features = 4

// ExpertsPerLayer is how many experts share one "model.layers.L" prefix.
const ExpertsPerLayer = 100

// Key names the i-th expert's tensor, e.g. Key(0, "w1.weight") is
// "model.layers.0.experts.0.w1.weight".
func Key(i int, param string) string {
	return fmt.Sprintf("model.layers.%d.experts.%d.%s", i/ExpertsPerLayer, i%ExpertsPerLayer, param)
}

// params are each expert's tensors in state_dict order with their sizes: an
// nn.Linear(Features, Features) "w1" and an nn.LayerNorm(Features) "norm".
var params = []struct {
	name string
	size []int64
}{
	{"w1.weight", []int64{Features, Features}},
	{"w1.bias", []int64{Features}},
	{"norm.weight", []int64{Features}},
	{"norm.bias", []int64{Features}},
}

// TensorsPerExpert is the number of tensors each expert adds.
var TensorsPerExpert = len(params)

// StateDict returns a mixture-of-experts shaped state_dict of n tensors (n/4 experts, each a
// Linear and a LayerNorm, every tensor in its own float32 storage), laid out as torch.save
// writes one, with storage bytes in memory. Glob "model.layers.*.w1" selects every Linear.
func StateDict(n int) (*checkpoint.Checkpoint, error) {
	if n <= 0 || n%TensorsPerExpert != 0 {
		return nil, fmt.Errorf("manytensors: %d tensors is not a positive multiple of %d", n, TensorsPerExpert)
	}
	sd := &checkpoint.OrderedDict{Entries: make([]checkpoint.Entry, 0, n)}
	data := make(map[*checkpoint.Storage][]byte, n)
	for i := range n / TensorsPerExpert {
		for _, p := range params {
			numel := int64(1)
			for _, s := range p.size {
				numel *= s
			}
			s := &checkpoint.Storage{Kind: checkpoint.Float32, Key: fmt.Sprint(len(sd.Entries)), Location: "cpu", Len: numel}
			stride := make([]int64, len(p.size))
			for d, step := len(p.size)-1, int64(1); d >= 0; d-- {
				stride[d] = step
				step *= p.size[d]
			}
			t := &checkpoint.Tensor{Storage: s, Size: p.size, Stride: stride}
			sd.Entries = append(sd.Entries, checkpoint.Entry{Key: Key(i, p.name), Value: t})
			data[s] = make([]byte, s.ByteLen())
		}
	}
	return checkpoint.FromBytes(sd, data)
}

// Counts are the tensor counts the allocation checks compare: 1,000 to 100,000. Under the
// race detector, which makes every allocation many times dearer, they are 500 and 5,000,
// still a tenfold range in which a pass that rescans per tensor allocates ten times as much
// per tensor; scripts/test.sh runs the full range without it. PT2CONV_SMALL_SCALE=1 asks
// for the small range too, for runs under user-mode emulation, where every instruction is
// dearer as well.
func Counts() []int {
	if raceEnabled || os.Getenv("PT2CONV_SMALL_SCALE") == "1" {
		return []int{500, 5_000}
	}
	return []int{1_000, 10_000, 100_000}
}

var (
	cacheMu sync.Mutex
	cache   = map[int]*checkpoint.Checkpoint{}
)

// Shared returns StateDict(n), built once per process: the operations measured must not
// change it.
func Shared(t testing.TB, n int) *checkpoint.Checkpoint {
	t.Helper()
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if c := cache[n]; c != nil {
		return c
	}
	c, err := StateDict(n)
	if err != nil {
		t.Fatal(err)
	}
	cache[n] = c
	return c
}

// CheckFlat measures, for each of Counts in increasing order, the allocations that the
// operation prepare(n) returns makes per tensor, and fails t when they exceed those at the
// smallest count by more than the factor limit (plus one allocation): a linear pass stays
// flat, one that rescans per tensor grows with the count. It stops at the first count that
// fails, so a quadratic regression fails fast instead of running for minutes. prepare's own
// work is not counted.
func CheckFlat(t testing.TB, name string, limit float64, prepare func(n int) func()) {
	t.Helper()
	counts := Counts()
	msg := ""
	var first float64
	for i, n := range counts {
		op := prepare(n)
		per := float64(allocs(op)) / float64(n)
		msg += fmt.Sprintf(" %d tensors: %.2f;", n, per)
		if i == 0 {
			first = per
			continue
		}
		if per > limit*first+1 {
			t.Errorf("%s: allocations per tensor grow with the number of tensors (%s want at most %.1f× the first)", name, msg, limit)
			return
		}
	}
	t.Logf("%s: allocations per tensor:%s", name, msg)
}

// allocs counts the heap allocations of one run of op, as testing.AllocsPerRun does but
// without its warm-up run, which would double the cost of the largest counts; one-time
// allocations are a vanishing share of a run over thousands of tensors.
func allocs(op func()) uint64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	op()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}
