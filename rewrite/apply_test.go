package rewrite

import (
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"slices"
	"strings"
	"testing"
)

// fingerprint records every value's identity, sizes and strides below root, to prove that
// Apply leaves its input alone.
func fingerprint(root checkpoint.Value) string {
	var b strings.Builder
	_ = checkpoint.Walk(root, func(path checkpoint.Path, v checkpoint.Value) error {
		fmt.Fprintf(&b, "%s %T %p", path, v, v)
		if t, ok := checkpoint.AsTensor(v); ok {
			fmt.Fprintf(&b, " %p %d %v %v", t.Storage, t.Offset, t.Size, t.Stride)
		}
		b.WriteByte('\n')
		return nil
	})
	return b.String()
}

func lookup(t *testing.T, root checkpoint.Value, path ...string) checkpoint.Value {
	t.Helper()
	_, v, ok := checkpoint.Lookup(root, strings.Join(path, "/"))
	if !ok {
		t.Fatalf("%s not found", strings.Join(path, "/"))
	}
	return v
}

func planAndApply(t *testing.T, c *checkpoint.Checkpoint, opts Options, ss ...string) (*Plan, *checkpoint.Checkpoint) {
	t.Helper()
	p, err := NewPlan(c, specs(t, ss...), opts)
	if err != nil {
		t.Fatal(err)
	}
	before := fingerprint(c.Root)
	out, err := Apply(c, p)
	if err != nil {
		t.Fatal(err)
	}
	if fingerprint(c.Root) != before {
		t.Fatal("Apply changed its input")
	}
	return p, out
}

func TestApplyCopyOnWrite(t *testing.T) {
	b := newBuilder()
	sd := b.vgg("")
	opt := b.sgd(sd)
	c := b.checkpoint(t, dict("epoch", int64(7), "model", sd, "optimizer", opt))
	p, out := planAndApply(t, c, Options{OptimizerKey: "optimizer"}, "classifier.*=auto")
	if out.Name != c.Name || out.Format != c.Format || out.Container != c.Container {
		t.Errorf("checkpoint header changed: %+v", out)
	}
	newSD := lookup(t, out.Root, "model").(*checkpoint.OrderedDict)
	if newSD == sd || out.Root == c.Root {
		t.Fatal("changed containers are not new")
	}
	if newSD.State != sd.State {
		t.Error("the state_dict's _metadata is not kept")
	}
	if lookup(t, out.Root, "optimizer", "param_groups") != lookup(t, c.Root, "optimizer", "param_groups") {
		t.Error("unchanged param_groups were copied")
	}
	if lookup(t, out.Root, "optimizer", "state", "0") != lookup(t, c.Root, "optimizer", "state", "0") {
		t.Error("unchanged optimizer state was copied")
	}
	for i, e := range sd.Entries {
		old := e.Value.(*checkpoint.Tensor)
		nt := newSD.Entries[i].Value.(*checkpoint.Tensor)
		if newSD.Entries[i].Key != e.Key {
			t.Fatalf("key order changed at %d", i)
		}
		changed := slices.ContainsFunc(p.Changes, func(ch Change) bool { return ch.Path[1] == e.Key })
		if !changed {
			if nt != old {
				t.Errorf("%s: unchanged tensor was copied", e.Key)
			}
			continue
		}
		if nt == old || nt.Storage != old.Storage || nt.Offset != old.Offset || nt.Hooks != old.Hooks {
			t.Errorf("%s: want a new tensor over the same storage and offset", e.Key)
		}
		if len(nt.Size) != 4 || len(old.Size) != 2 {
			t.Errorf("%s: sizes %v -> %v", e.Key, old.Size, nt.Size)
		}
	}
	for _, ch := range p.Changes {
		nt, _ := checkpoint.AsTensor(lookup(t, out.Root, ch.Path...))
		if !slices.Equal(nt.Size, ch.NewSize) || !slices.Equal(nt.Stride, ch.NewStride) {
			t.Errorf("%s: got %v %v, plan says %v %v", ch.Path, nt.Size, nt.Stride, ch.NewSize, ch.NewStride)
		}
	}
	if got := len(checkpoint.Storages(out.Root)); got != len(checkpoint.Storages(c.Root)) {
		t.Errorf("storages: %d, input has %d", got, len(checkpoint.Storages(c.Root)))
	}
}

func TestApplySharing(t *testing.T) {
	t.Run("tied alias converted on one side", func(t *testing.T) {
		b := newBuilder()
		w := b.tensor(8, 8)
		alias := *w
		sd := newStateDict("encoder.weight", w, "decoder.weight", &alias)
		_, out := planAndApply(t, b.checkpoint(t, sd), Options{}, "decoder=2x2x2")
		enc := lookup(t, out.Root, "encoder.weight").(*checkpoint.Tensor)
		dec := lookup(t, out.Root, "decoder.weight").(*checkpoint.Tensor)
		if enc != w || dec == &alias || dec.Storage != w.Storage || len(dec.Size) != 4 {
			t.Errorf("encoder %p (was %p) %v, decoder %v", enc, w, enc.Size, dec.Size)
		}
	})
	t.Run("one object under two keys, one converted", func(t *testing.T) {
		b := newBuilder()
		w := b.tensor(8, 8)
		sd := newStateDict("encoder.weight", w, "decoder.weight", w)
		_, out := planAndApply(t, b.checkpoint(t, sd), Options{}, "decoder")
		if lookup(t, out.Root, "encoder.weight") != w {
			t.Error("the unconverted path lost its tensor")
		}
		if dec := lookup(t, out.Root, "decoder.weight").(*checkpoint.Tensor); dec == w || dec.Storage != w.Storage {
			t.Error("the converted path should get a new tensor over the same storage")
		}
	})
	t.Run("one object under two keys, both converted", func(t *testing.T) {
		b := newBuilder()
		w := b.tensor(8, 8)
		sd := newStateDict("encoder.weight", w, "decoder.weight", w)
		_, out := planAndApply(t, b.checkpoint(t, sd), Options{}, "*coder")
		if lookup(t, out.Root, "encoder.weight") != lookup(t, out.Root, "decoder.weight") {
			t.Error("a tied tensor converted alike should stay one object")
		}
	})
	t.Run("one state_dict under two keys", func(t *testing.T) {
		b := newBuilder()
		sd := b.mlp()
		p, out := planAndApply(t, b.checkpoint(t, dict("model", sd, "best", sd)), Options{}, "0")
		if len(p.Changes) != 2 {
			t.Errorf("changes: %+v", p.Changes)
		}
		if lookup(t, out.Root, "model") != lookup(t, out.Root, "best") {
			t.Error("a shared state_dict should stay shared")
		}
	})
	t.Run("parameter", func(t *testing.T) {
		b := newBuilder()
		w := b.tensor(5, 9)
		prm := &checkpoint.Parameter{Data: w, RequiresGrad: true}
		_, out := planAndApply(t, b.checkpoint(t, newStateDict("proj.weight", prm)), Options{}, "proj=3x3")
		np, ok := lookup(t, out.Root, "proj.weight").(*checkpoint.Parameter)
		if !ok || np == prm || !np.RequiresGrad || np.Data.Storage != w.Storage || !slices.Equal(np.Data.Size, []int64{5, 1, 3, 3}) {
			t.Errorf("got %#v", lookup(t, out.Root, "proj.weight"))
		}
	})
}

func TestApplyStalePlan(t *testing.T) {
	b := newBuilder()
	c := b.checkpoint(t, dict("model", b.vgg("")))
	p, err := NewPlan(c, specs(t, "classifier.0=auto"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(ch *Change)) *Plan {
		ch := p.Changes[0]
		ch.Path = slices.Clone(ch.Path)
		ch.NewStride = slices.Clone(ch.NewStride)
		f(&ch)
		return &Plan{Changes: []Change{ch}}
	}
	other := newBuilder()
	tests := []struct {
		name string
		c    *checkpoint.Checkpoint
		p    *Plan
	}{
		{"other checkpoint", other.checkpoint(t, dict("model", other.mlp())), p},
		{"missing path", c, edit(func(ch *Change) { ch.Path[0] = "net" })},
		{"not a view", c, edit(func(ch *Change) { ch.NewStride[1] = 1 })},
		{"not a tensor", c, edit(func(ch *Change) { ch.Path = ch.Path[:1] })},
		{"twice", c, &Plan{Changes: []Change{p.Changes[0], p.Changes[0]}}},
		{"through bytes", other.checkpoint(t, dict("model", checkpoint.Bytes("x"))), edit(func(ch *Change) {})},
		{"through a tensor", c, edit(func(ch *Change) { ch.Path = append(ch.Path, "0") })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Apply(tt.c, tt.p); !errors.Is(err, ErrStalePlan) {
				t.Errorf("got %v, want ErrStalePlan", err)
			}
		})
	}
}

// storageIndex is the storage element a tensor's index refers to.
func storageIndex(t *checkpoint.Tensor, idx ...int64) int64 {
	off := t.Offset
	for i, x := range idx {
		off += x * t.Stride[i]
	}
	return off
}

// TestViewSemantics checks element by element that conv weight [o, c, h, w] is Linear
// weight [o, c·H·W + h·W + w], for contiguous, transposed and offset weights, and that
// converting back restores the original view.
func TestViewSemantics(t *testing.T) {
	for _, name := range []string{"vgg_auto", "transposed", "offset", "alexnet_glob_auto", "parameters_bias_less"} {
		i := slices.IndexFunc(planCases, func(pc planCase) bool { return pc.name == name })
		pc := planCases[i]
		t.Run(name, func(t *testing.T) {
			c, p, err := pc.plan(t)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Apply(c, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range p.Changes {
				old, _ := checkpoint.AsTensor(lookup(t, c.Root, ch.Path...))
				nt, _ := checkpoint.AsTensor(lookup(t, out.Root, ch.Path...))
				C, H, W := nt.Size[1], nt.Size[2], nt.Size[3]
				for o := int64(0); o < nt.Size[0]; o++ {
					for ci := int64(0); ci < C; ci++ {
						for h := int64(0); h < H; h++ {
							for w := int64(0); w < W; w++ {
								if a, b := storageIndex(nt, o, ci, h, w), storageIndex(old, o, ci*H*W+h*W+w); a != b {
									t.Fatalf("%s[%d,%d,%d,%d] is element %d, Linear [%d,%d] is %d", ch.Path, o, ci, h, w, a, o, ci*H*W+h*W+w, b)
								}
							}
						}
					}
				}
			}
			back, err := NewPlan(out, []Spec{{Layer: "*"}}, Options{Direction: ToLinear})
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range back.Changes {
				orig := slices.IndexFunc(p.Changes, func(o Change) bool { return slices.Equal(o.Path, ch.Path) })
				if orig < 0 {
					continue // a conv of the features
				}
				if o := p.Changes[orig]; !slices.Equal(ch.NewSize, o.OldSize) || !slices.Equal(ch.NewStride, o.OldStride) {
					t.Errorf("%s: back to %v %v, was %v %v", ch.Path, ch.NewSize, ch.NewStride, o.OldSize, o.OldStride)
				}
			}
		})
	}
}

func TestLinearView(t *testing.T) {
	tests := []struct {
		size, stride []int64
		want         []int64 // new strides; nil: not viewable
	}{
		{[]int64{16, 8, 3, 3}, []int64{72, 9, 3, 1}, []int64{72, 1}},
		{[]int64{16, 8, 1, 1}, []int64{8, 1, 1, 1}, []int64{8, 1}},
		{[]int64{16, 8, 1, 1}, []int64{8, 1, 8, 8}, []int64{8, 1}}, // channels_last 1×1: size-1 dims merge
		{[]int64{16, 8, 3, 3}, []int64{72, 1, 24, 8}, nil},         // channels_last
		{[]int64{4, 3, 2, 2}, []int64{1, 16, 8, 4}, []int64{1, 4}}, // a transposed Linear seen as conv
		{[]int64{4, 1, 1, 1}, []int64{1, 1, 1, 1}, []int64{1, 1}},
		{[]int64{4, 2, 2, 2}, []int64{8, 4, 1, 2}, nil}, // kH and kW swapped
	}
	for _, tt := range tests {
		_, got, ok := linearView(tt.size, tt.stride)
		if ok != (tt.want != nil) || !slices.Equal(got, tt.want) {
			t.Errorf("linearView(%v, %v) = %v, %v; want %v", tt.size, tt.stride, got, ok, tt.want)
		}
	}
}
