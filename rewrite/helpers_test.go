package rewrite

import (
	"github.com/pt2conv/pt2conv/checkpoint"
	"testing"
)

// builder makes small in-memory checkpoints: each tensor gets its own float32 storage
// unless built as a view of another.
type builder struct {
	data map[*checkpoint.Storage][]byte
	n    int
}

func newBuilder() *builder { return &builder{data: map[*checkpoint.Storage][]byte{}} }

func (b *builder) storage(elems int64) *checkpoint.Storage {
	s := &checkpoint.Storage{Kind: checkpoint.Float32, Key: itoa(int64(b.n)), Location: "cpu", Len: elems}
	b.n++
	b.data[s] = make([]byte, 4*elems)
	return s
}

// tensor is a contiguous tensor of the given sizes over a new storage.
func (b *builder) tensor(size ...int64) *checkpoint.Tensor {
	t := &checkpoint.Tensor{Size: size, Stride: checkpoint.ContiguousStrides(size), Hooks: &checkpoint.OrderedDict{}}
	t.Storage = b.storage(t.NumElements())
	return t
}

func (b *builder) checkpoint(t testing.TB, root checkpoint.Value) *checkpoint.Checkpoint {
	t.Helper()
	c, err := checkpoint.FromBytes(root, b.data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newStateDict makes an OrderedDict from key, value pairs, with the _metadata torch BUILDs it with.
func newStateDict(kv ...any) *checkpoint.OrderedDict {
	d := &checkpoint.OrderedDict{State: &checkpoint.Dict{Entries: []checkpoint.Entry{{
		Key:   "_metadata",
		Value: &checkpoint.OrderedDict{Entries: []checkpoint.Entry{{Key: "", Value: &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "version", Value: int64(1)}}}}}},
	}}}}
	for i := 0; i < len(kv); i += 2 {
		d.Entries = append(d.Entries, checkpoint.Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func dict(kv ...any) *checkpoint.Dict {
	d := &checkpoint.Dict{}
	for i := 0; i < len(kv); i += 2 {
		d.Entries = append(d.Entries, checkpoint.Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func list(items ...checkpoint.Value) *checkpoint.List { return &checkpoint.List{Items: items} }

// linear adds "<name>.weight" (out, in) and "<name>.bias" to kv.
func (b *builder) linear(kv []any, name string, out, in int64) []any {
	return append(kv, name+".weight", b.tensor(out, in), name+".bias", b.tensor(out))
}

func (b *builder) conv(kv []any, name string, out, in, k int64) []any {
	return append(kv, name+".weight", b.tensor(out, in, k, k), name+".bias", b.tensor(out))
}

func (b *builder) batchNorm(kv []any, name string, n int64) []any {
	return append(kv, name+".weight", b.tensor(n), name+".bias", b.tensor(n),
		name+".running_mean", b.tensor(n), name+".running_var", b.tensor(n),
		name+".num_batches_tracked", b.tensor())
}

// vgg is a small VGG: features.0/2/5 convs, classifier.0/3/6 Linear after 8×3×3 features.
func (b *builder) vgg(prefix string) *checkpoint.OrderedDict {
	var kv []any
	kv = b.conv(kv, prefix+"features.0", 4, 3, 3)
	kv = b.conv(kv, prefix+"features.2", 4, 4, 3)
	kv = b.conv(kv, prefix+"features.5", 8, 4, 3)
	kv = b.linear(kv, prefix+"classifier.0", 16, 8*3*3)
	kv = b.linear(kv, prefix+"classifier.3", 16, 16)
	kv = b.linear(kv, prefix+"classifier.6", 10, 16)
	return newStateDict(kv...)
}

// alexnet is a small AlexNet: Dropout first in the classifier, so Linear at 1, 4, 6.
func (b *builder) alexnet() *checkpoint.OrderedDict {
	var kv []any
	kv = b.conv(kv, "features.0", 4, 3, 5)
	kv = b.conv(kv, "features.3", 6, 4, 3)
	kv = b.conv(kv, "features.6", 6, 6, 3)
	kv = b.linear(kv, "classifier.1", 20, 6*2*2)
	kv = b.linear(kv, "classifier.4", 20, 20)
	kv = b.linear(kv, "classifier.6", 5, 20)
	return newStateDict(kv...)
}

// mlp is nn.Sequential(Linear, ReLU, Linear, ReLU, Linear).
func (b *builder) mlp() *checkpoint.OrderedDict {
	var kv []any
	kv = b.linear(kv, "0", 32, 48)
	kv = b.linear(kv, "2", 32, 32)
	kv = b.linear(kv, "4", 10, 32)
	return newStateDict(kv...)
}

// bnMLP has BatchNorm1d between its Linear layers.
func (b *builder) bnMLP() *checkpoint.OrderedDict {
	var kv []any
	kv = b.linear(kv, "fc1", 16, 12)
	kv = b.batchNorm(kv, "bn1", 16)
	kv = b.linear(kv, "fc2", 16, 16)
	kv = b.batchNorm(kv, "bn2", 16)
	kv = b.linear(kv, "fc3", 4, 16)
	return newStateDict(kv...)
}

// momentum builds SGD state: a momentum buffer shaped like every parameter of sd.
func (b *builder) sgd(sd *checkpoint.OrderedDict) *checkpoint.Dict {
	state := dict()
	var idx []checkpoint.Value
	i := int64(0)
	for _, e := range sd.Entries {
		k := e.Key.(string)
		if isBuffer(k) {
			continue
		}
		t := e.Value.(*checkpoint.Tensor)
		state.Entries = append(state.Entries, checkpoint.Entry{Key: i, Value: dict("momentum_buffer", b.tensor(t.Size...))})
		idx = append(idx, i)
		i++
	}
	return dict("state", state, "param_groups", list(dict("lr", 0.1, "momentum", 0.9, "params", list(idx...))))
}

// adam builds Adam state (step is a 0-dim tensor as in torch >= 1.12), in groups of sizes
// given by split (one group when empty).
func (b *builder) adam(sd *checkpoint.OrderedDict, split ...int) *checkpoint.Dict {
	state := dict()
	var idx []checkpoint.Value
	i := int64(0)
	for _, e := range sd.Entries {
		k := e.Key.(string)
		if isBuffer(k) {
			continue
		}
		t := e.Value.(*checkpoint.Tensor)
		state.Entries = append(state.Entries, checkpoint.Entry{Key: i, Value: dict(
			"step", b.tensor(), "exp_avg", b.tensor(t.Size...), "exp_avg_sq", b.tensor(t.Size...))})
		idx = append(idx, i)
		i++
	}
	groups := list()
	for _, n := range split {
		groups.Items = append(groups.Items, dict("lr", 0.001, "params", list(idx[:n]...)))
		idx = idx[n:]
	}
	groups.Items = append(groups.Items, dict("lr", 0.001, "params", list(idx...)))
	return dict("state", state, "param_groups", groups)
}

func specs(t testing.TB, ss ...string) []Spec {
	t.Helper()
	out := make([]Spec, len(ss))
	for i, s := range ss {
		sp, err := ParseSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = sp
	}
	return out
}
