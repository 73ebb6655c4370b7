package rewrite

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"github.com/pt2conv/pt2conv/checkpoint"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// planCase builds a checkpoint and plans a conversion of it.
type planCase struct {
	name  string
	root  func(b *builder) checkpoint.Value
	specs []string
	opts  Options
}

func (pc planCase) plan(t *testing.T) (*checkpoint.Checkpoint, *Plan, error) {
	t.Helper()
	b := newBuilder()
	c := b.checkpoint(t, pc.root(b))
	p, err := NewPlan(c, specs(t, pc.specs...), pc.opts)
	return c, p, err
}

// transposed is a Linear weight (4, 12) stored as the transpose of a (12, 4) tensor.
func (b *builder) transposed() *checkpoint.Tensor {
	t := b.tensor(12, 4)
	return &checkpoint.Tensor{Storage: t.Storage, Size: []int64{4, 12}, Stride: []int64{1, 4}, Hooks: t.Hooks}
}

// offsetWeight is a Linear weight (4, 12) at element 100 of a storage it shares.
func (b *builder) offsetWeights() (*checkpoint.Tensor, *checkpoint.Tensor) {
	s := b.storage(100 + 4*12)
	head := &checkpoint.Tensor{Storage: s, Size: []int64{100}, Stride: []int64{1}, Hooks: &checkpoint.OrderedDict{}}
	w := &checkpoint.Tensor{Storage: s, Offset: 100, Size: []int64{4, 12}, Stride: []int64{12, 1}, Hooks: &checkpoint.OrderedDict{}}
	return head, w
}

// convHead is a small VGG already in conv form.
func (b *builder) convHead() *checkpoint.OrderedDict {
	var kv []any
	kv = b.conv(kv, "features.0", 8, 3, 3)
	kv = append(kv, "classifier.0.weight", b.tensor(16, 8, 3, 3), "classifier.0.bias", b.tensor(16))
	kv = append(kv, "classifier.3.weight", b.tensor(16, 16, 1, 1), "classifier.3.bias", b.tensor(16))
	kv = append(kv, "classifier.6.weight", b.tensor(10, 16, 1, 1), "classifier.6.bias", b.tensor(10))
	return newStateDict(kv...)
}

var planCases = []planCase{
	{name: "vgg_auto", root: func(b *builder) checkpoint.Value { return b.vgg("") },
		specs: []string{"classifier.0=auto", "classifier.3=auto", "classifier.6=auto"}},
	{name: "vgg_explicit", root: func(b *builder) checkpoint.Value { return b.vgg("") },
		specs: []string{"classifier.6", "classifier.0=8x3x3", "classifier.3=16x1x1"}},
	{name: "vgg_hw", root: func(b *builder) checkpoint.Value { return b.vgg("") },
		specs: []string{"classifier.0=3x3", "classifier.3", "classifier.6=1x1"}},
	{name: "alexnet_glob_auto", root: func(b *builder) checkpoint.Value { return b.alexnet() },
		specs: []string{"classifier.*=auto"}},
	{name: "mlp_all", root: func(b *builder) checkpoint.Value { return b.mlp() },
		specs: []string{"*"}},
	{name: "bn_between", root: func(b *builder) checkpoint.Value { return b.bnMLP() },
		specs: []string{"fc1", "fc2=auto", "fc3=auto"}},
	{name: "module_prefix", root: func(b *builder) checkpoint.Value { return b.vgg("module.") },
		specs: []string{"module.classifier.0=auto", "*.classifier.3", "module.classifier.6"}},
	{name: "nested_sgd", root: func(b *builder) checkpoint.Value {
		sd := b.vgg("")
		return dict("epoch", int64(7), "model", sd, "optimizer", b.sgd(sd))
	}, specs: []string{"classifier.*=auto"}, opts: Options{OptimizerKey: "optimizer"}},
	{name: "nested_adam_groups", root: func(b *builder) checkpoint.Value {
		sd := b.bnMLP()
		return dict("state_dict", sd, "opt", b.adam(sd, 3))
	}, specs: []string{"fc1", "fc2=auto"}, opts: Options{OptimizerKey: "opt"}},
	{name: "nested_optimizer_warning", root: func(b *builder) checkpoint.Value {
		sd := b.vgg("")
		return dict("model", sd, "optimizer", b.sgd(sd))
	}, specs: []string{"classifier.0=auto"}},
	{name: "model_and_ema", root: func(b *builder) checkpoint.Value {
		sd := b.mlp()
		return dict("model", sd, "ema", b.mlp(), "train", dict("optimizer", b.adam(sd)))
	}, specs: []string{"0=3x4x4"}, opts: Options{OptimizerKey: "train/optimizer"}},
	{name: "reverse", root: func(b *builder) checkpoint.Value { return b.convHead() },
		specs: []string{"classifier.*"}, opts: Options{Direction: ToLinear}},
	{name: "reverse_sgd", root: func(b *builder) checkpoint.Value {
		sd := b.convHead()
		return dict("model", sd, "optimizer", b.sgd(sd))
	}, specs: []string{"classifier.0", "classifier.3=16x1x1", "classifier.6=1x1"}, opts: Options{Direction: ToLinear, OptimizerKey: "optimizer"}},
	{name: "transposed", root: func(b *builder) checkpoint.Value {
		return newStateDict("fc.weight", b.transposed())
	}, specs: []string{"fc=3x2x2"}},
	{name: "offset", root: func(b *builder) checkpoint.Value {
		head, w := b.offsetWeights()
		return newStateDict("emb.weight_packed", head, "fc.weight", w)
	}, specs: []string{"fc=2x3"}},
	{name: "tied_one_side", root: func(b *builder) checkpoint.Value {
		w := b.tensor(8, 8)
		alias := *w // torch's state_dict detaches: two objects, one storage and view
		return newStateDict("encoder.weight", w, "decoder.weight", &alias, "decoder.bias", b.tensor(8))
	}, specs: []string{"decoder=2x2x2"}},
	{name: "parameters_bias_less", root: func(b *builder) checkpoint.Value {
		w := b.tensor(5, 9)
		return newStateDict("proj.weight", &checkpoint.Parameter{Data: w, RequiresGrad: true})
	}, specs: []string{"proj=1x3x3"}},
	{name: "single_module", root: func(b *builder) checkpoint.Value {
		return newStateDict("weight", b.tensor(3, 4), "bias", b.tensor(3))
	}, specs: []string{"*=2x2"}},
}

func TestNewPlanGolden(t *testing.T) {
	for _, pc := range planCases {
		t.Run(pc.name, func(t *testing.T) {
			_, p, err := pc.plan(t)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", pc.name+".plan.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("plan differs from %s:\n%s", golden, got)
			}
		})
	}
}

func TestNewPlanErrors(t *testing.T) {
	tests := []struct {
		planCase
		err  error
		text string
	}{
		{planCase{name: "no match", root: func(b *builder) checkpoint.Value { return b.vgg("") }, specs: []string{"fc9"}},
			ErrNoMatch, "--layer fc9: no 2-D weight matches; Linear layers here: classifier.0, classifier.3, classifier.6"},
		{planCase{name: "glob matches nothing", root: func(b *builder) checkpoint.Value { return b.mlp() }, specs: []string{"fc*"}},
			ErrNoMatch, "--layer fc*: no 2-D weight matches; Linear layers here: 0, 2, 4"},
		{planCase{name: "meta weight", root: func(b *builder) checkpoint.Value {
			kv := b.linear(nil, "fc", 2, 4)
			meta := &checkpoint.Call{Func: &checkpoint.Global{Module: "torch._utils", Name: "_rebuild_meta_tensor_no_storage"}, Tensor: "meta tensor"}
			return newStateDict(append(kv, "lazy.weight", meta)...)
		}, specs: []string{"lazy"}},
			ErrNoMatch, "--layer lazy: no 2-D weight matches (lazy.weight is a meta tensor, which has no dense data to convert); Linear layers here: fc"},
		{planCase{name: "reverse no match", root: func(b *builder) checkpoint.Value { return b.mlp() }, specs: []string{"*"}, opts: Options{Direction: ToLinear}},
			ErrNoMatch, "--layer *: no 4-D weight matches; Conv2d layers here: none"},
		{planCase{name: "conv named", root: func(b *builder) checkpoint.Value { return b.vgg("") }, specs: []string{"features.0"}},
			ErrRank, "features.0: weight features.0.weight is 4-D (4, 3, 3, 3); a Linear weight is 2-D; already converted? --to linear"},
		{planCase{name: "linear named in reverse", root: func(b *builder) checkpoint.Value { return b.vgg("") }, specs: []string{"classifier.0"}, opts: Options{Direction: ToLinear}},
			ErrRank, "classifier.0: weight classifier.0.weight is 2-D (16, 72); a Conv2d weight is 4-D"},
		{planCase{name: "batchnorm named", root: func(b *builder) checkpoint.Value { return b.bnMLP() }, specs: []string{"bn1"}},
			ErrRank, "bn1: weight bn1.weight is 1-D (16)"},
		{planCase{name: "CxHxW wrong", root: func(b *builder) checkpoint.Value { return b.vgg("") }, specs: []string{"classifier.0=8x3x2"}},
			ErrShape, "classifier.0: 8x3x2 = 48 inputs, the weight has 72"},
		{planCase{name: "CxHxW overflows", root: func(b *builder) checkpoint.Value { return b.vgg("") }, specs: []string{"classifier.0=4611686018427387904x4x1"}},
			ErrShape, "classifier.0: 4611686018427387904x4x1 = 18446744073709551616 inputs, the weight has 72"},
		{planCase{name: "HxW overflows", root: func(b *builder) checkpoint.Value { return b.vgg("") }, specs: []string{"classifier.0=4611686018427387904x4"}},
			ErrShape, "does not divide the weight's 72 inputs"},
		{planCase{name: "HxW does not divide", root: func(b *builder) checkpoint.Value { return b.vgg("") }, specs: []string{"classifier.0=5x5"}},
			ErrShape, "classifier.0: 5x5 = 25 does not divide the weight's 72 inputs"},
		{planCase{name: "auto nothing before", root: func(b *builder) checkpoint.Value { return b.mlp() }, specs: []string{"0=auto"}},
			ErrAuto, "0: auto: nothing before it carries a channel count"},
		{planCase{name: "auto not multiple", root: func(b *builder) checkpoint.Value {
			var kv []any
			kv = b.conv(kv, "conv", 5, 3, 3)
			kv = b.linear(kv, "fc", 4, 72)
			return newStateDict(kv...)
		}, specs: []string{"fc=auto"}},
			ErrAuto, "fc: auto: 72 inputs are not a multiple of the 5 channels of conv.weight"},
		{planCase{name: "auto not square", root: func(b *builder) checkpoint.Value {
			var kv []any
			kv = b.conv(kv, "conv", 8, 3, 3)
			kv = b.linear(kv, "fc", 4, 48)
			return newStateDict(kv...)
		}, specs: []string{"fc=auto"}},
			ErrAuto, "fc: auto: 48 inputs / 8 channels of conv.weight = 6, not a square"},
		{planCase{name: "two specs", root: func(b *builder) checkpoint.Value { return b.vgg("") }, specs: []string{"classifier.*", "classifier.3"}},
			ErrConflict, `classifier.3: selected by two specs, "classifier.*" and "classifier.3"`},
		{planCase{name: "reverse auto", root: func(b *builder) checkpoint.Value { return b.convHead() }, specs: []string{"classifier.0=auto"}, opts: Options{Direction: ToLinear}},
			ErrShape, "classifier.0: auto applies to Linear → Conv2d only"},
		{planCase{name: "reverse wrong shape", root: func(b *builder) checkpoint.Value { return b.convHead() }, specs: []string{"classifier.0=8x1x9"}, opts: Options{Direction: ToLinear}},
			ErrShape, "classifier.0: spec says classifier.0=8x1x9 but the Conv2d weight is (16, 8, 3, 3)"},
		{planCase{name: "reverse channels_last", root: func(b *builder) checkpoint.Value {
			w := b.tensor(16, 8, 3, 3)
			w.Stride = []int64{72, 1, 24, 8} // torch.channels_last
			return newStateDict("classifier.0.weight", w)
		}, specs: []string{"classifier.0"}, opts: Options{Direction: ToLinear}},
			ErrNotViewable, "classifier.0: Conv2d weight (16, 8, 3, 3) with strides (72, 1, 24, 8) cannot be seen as 16x72"},
		{planCase{name: "no state_dict", root: func(b *builder) checkpoint.Value { return dict("epoch", int64(3)) }, specs: []string{"fc"}},
			ErrNoStateDict, "no state_dict found"},
		{planCase{name: "optimizer key missing", root: func(b *builder) checkpoint.Value { return dict("model", b.vgg("")) },
			specs: []string{"classifier.0"}, opts: Options{OptimizerKey: "optimizer"}},
			ErrOptimizer, `optimizer key "optimizer" is not in the checkpoint`},
		{planCase{name: "optimizer not one", root: func(b *builder) checkpoint.Value { return dict("model", b.vgg(""), "optimizer", dict("lr", 0.1)) },
			specs: []string{"classifier.0"}, opts: Options{OptimizerKey: "optimizer"}},
			ErrOptimizer, `"optimizer" has no 'state' and 'param_groups'`},
		{planCase{name: "optimizer count", root: func(b *builder) checkpoint.Value {
			sd := b.vgg("")
			opt := b.sgd(sd)
			sd.Entries = append(sd.Entries, checkpoint.Entry{Key: "extra.weight", Value: b.tensor(3)})
			return dict("model", sd, "optimizer", opt)
		}, specs: []string{"classifier.0"}, opts: Options{OptimizerKey: "optimizer"}},
			ErrOptimizer, `param_groups list 12 parameters, state_dict "model" has 13`},
		{planCase{name: "optimizer shape", root: func(b *builder) checkpoint.Value {
			sd := b.mlp()
			opt := b.sgd(sd)
			sd.Entries[0], sd.Entries[1] = sd.Entries[1], sd.Entries[0] // bias before weight
			return dict("model", sd, "optimizer", opt)
		}, specs: []string{"0"}, opts: Options{OptimizerKey: "optimizer"}},
			ErrOptimizer, `state 0/momentum_buffer is (32, 48) but parameter 0 of state_dict "model" (0.bias) is (32)`},
		{planCase{name: "optimizer two candidates", root: func(b *builder) checkpoint.Value {
			sd := b.mlp()
			other := b.mlp()
			other.Entries[0].Key = "first.weight"
			return dict("model", sd, "teacher", other, "optimizer", b.sgd(sd))
		}, specs: []string{"0"}, opts: Options{OptimizerKey: "optimizer"}},
			ErrOptimizer, `optimizer "optimizer" fits both state_dict "model" and "teacher", which differ`},
		{planCase{name: "optimizer tied converted once", root: func(b *builder) checkpoint.Value {
			w := b.tensor(8, 8)
			alias := *w
			sd := newStateDict("encoder.weight", w, "decoder.weight", &alias, "decoder.bias", b.tensor(8))
			return dict("model", sd, "optimizer", b.sgd(newStateDict("w", w, "b", b.tensor(8))))
		}, specs: []string{"decoder=2x2x2"}, opts: Options{OptimizerKey: "optimizer"}},
			ErrOptimizer, "parameter 0 is tied under decoder.weight and encoder.weight, which are not converted alike"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, p, err := tt.plan(t)
			if !errors.Is(err, tt.err) {
				t.Fatalf("got plan %+v, error %v; want %v", p, err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not say %q", err, tt.text)
			}
			var le *LayerError
			if errors.As(err, &le) && le.Layer == "" {
				t.Errorf("LayerError without a layer: %v", err)
			}
		})
	}
}
