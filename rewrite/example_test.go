package rewrite_test

import (
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"strings"

	"github.com/pt2conv/pt2conv/rewrite"
)

// vggHead builds a state_dict with a 8-channel conv followed by Linear(72, 16) and
// Linear(16, 10), with zero-filled storages.
func vggHead() *checkpoint.Checkpoint {
	data := map[*checkpoint.Storage][]byte{}
	tensor := func(size ...int64) *checkpoint.Tensor {
		t := &checkpoint.Tensor{Size: size, Stride: checkpoint.ContiguousStrides(size), Hooks: &checkpoint.OrderedDict{}}
		t.Storage = &checkpoint.Storage{Kind: checkpoint.Float32, Key: fmt.Sprint(len(data)), Location: "cpu", Len: t.NumElements()}
		data[t.Storage] = make([]byte, 4*t.NumElements())
		return t
	}
	sd := &checkpoint.OrderedDict{Entries: []checkpoint.Entry{
		{Key: "features.0.weight", Value: tensor(8, 3, 3, 3)},
		{Key: "features.0.bias", Value: tensor(8)},
		{Key: "classifier.0.weight", Value: tensor(16, 72)},
		{Key: "classifier.0.bias", Value: tensor(16)},
		{Key: "classifier.2.weight", Value: tensor(10, 16)},
		{Key: "classifier.2.bias", Value: tensor(10)},
	}}
	c, err := checkpoint.FromBytes(&checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "model", Value: sd}}}, data)
	if err != nil {
		panic(err)
	}
	return c
}

func ExampleParseSpec() {
	for _, s := range []string{"classifier.0=512x7x7", "module.fc6=7x7", "classifier.*=auto", "fc7"} {
		sp, err := rewrite.ParseSpec(s)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%-22s layer %-13s C=%d H=%d W=%d mode %v\n", sp, sp.Layer, sp.C, sp.H, sp.W, sp.Mode)
	}
	// Output:
	// classifier.0=512x7x7   layer classifier.0  C=512 H=7 W=7 mode CxHxW
	// module.fc6=7x7         layer module.fc6    C=0 H=7 W=7 mode HxW
	// classifier.*=auto      layer classifier.*  C=0 H=0 W=0 mode auto
	// fc7                    layer fc7           C=0 H=0 W=0 mode none
}

func ExampleParsePlan() {
	specs, err := rewrite.ParsePlan(strings.NewReader(`
- classifier.0=auto
- {layer: classifier.3, shape: 4096x1x1}
- layer: "classifier.6"
`))
	if err != nil {
		panic(err)
	}
	fmt.Println(specs)
	// Output:
	// [classifier.0=auto classifier.3=4096x1x1 classifier.6]
}

func ExampleReadPlan() {
	plan := "- classifier.0=auto\n- classifier.3\n- classifier.6=7\n"
	_, err := rewrite.ReadPlan(strings.NewReader(plan))
	var pe *rewrite.PlanError
	if errors.As(err, &pe) {
		fmt.Printf("head.yaml:%d: %v\n", pe.Line, pe.Err)
	}
	entries, _ := rewrite.ReadPlan(strings.NewReader("- classifier.0=auto\n- classifier.3\n"))
	for _, e := range entries {
		fmt.Printf("head.yaml:%d: %s\n", e.Line, e.Spec)
	}
	// Output:
	// head.yaml:3: invalid layer spec "classifier.6=7": shape has 1 dimensions (want CxHxW, HxW or auto)
	// head.yaml:1: classifier.0=auto
	// head.yaml:2: classifier.3
}

func ExampleNewPlan() {
	c := vggHead()
	specs := []rewrite.Spec{{Layer: "classifier.*", Mode: rewrite.ShapeAuto}}
	plan, err := rewrite.NewPlan(c, specs, rewrite.Options{})
	if err != nil {
		panic(err)
	}
	for _, ch := range plan.Changes {
		fmt.Println(ch.Path, ch.OldSize, "->", ch.NewSize, "strides", ch.NewStride, "|", ch.Rule)
	}

	_, err = rewrite.NewPlan(c, []rewrite.Spec{{Layer: "classifier.0", Mode: rewrite.ShapeCHW, C: 8, H: 3, W: 2}}, rewrite.Options{})
	fmt.Println(err)
	// Output:
	// model/classifier.0.weight [16 72] -> [16 8 3 3] strides [72 9 3 1] | auto: C=8 from features.0.weight
	// model/classifier.2.weight [10 16] -> [10 16 1 1] strides [16 1 1 1] | auto: after Linear classifier.0
	// classifier.0: 8x3x2 = 48 inputs, the weight has 72
}

func ExampleApply() {
	c := vggHead()
	spec, _ := rewrite.ParseSpec("classifier.0=8x3x3")
	plan, err := rewrite.NewPlan(c, []rewrite.Spec{spec}, rewrite.Options{})
	if err != nil {
		panic(err)
	}
	converted, err := rewrite.Apply(c, plan)
	if err != nil {
		panic(err)
	}
	for _, nt := range checkpoint.Tensors(converted.Root) {
		if strings.HasPrefix(nt.Path[1], "classifier") && strings.HasSuffix(nt.Path[1], "weight") {
			fmt.Println(nt.Path, nt.Tensor.Size, nt.Tensor.Stride, "storage", nt.Tensor.Storage.Key)
		}
	}
	// Output:
	// model/classifier.0.weight [16 8 3 3] [72 9 3 1] storage 2
	// model/classifier.2.weight [10 16] [16 1] storage 4
}

// RenameKeys gives converted layers the names of the conv modules they load into, after
// the plan is applied.
func ExampleRenameKeys() {
	c := vggHead()
	plan, err := rewrite.NewPlan(c, []rewrite.Spec{{Layer: "classifier.0", Mode: rewrite.ShapeAuto}, {Layer: "classifier.2"}}, rewrite.Options{})
	if err != nil {
		panic(err)
	}
	conv, err := rewrite.Apply(c, plan)
	if err != nil {
		panic(err)
	}
	renamed, counts, err := rewrite.RenameKeys(conv, []rewrite.Rename{{Old: "classifier.0", New: "fc6"}, {Old: "classifier.2", New: "score"}})
	if err != nil {
		panic(err)
	}
	for _, nt := range checkpoint.Tensors(renamed.Root) {
		fmt.Println(nt.Path, nt.Tensor.Size)
	}
	fmt.Println(counts)
	// Output:
	// model/features.0.weight [8 3 3 3]
	// model/features.0.bias [8]
	// model/fc6.weight [16 8 3 3]
	// model/fc6.bias [16]
	// model/score.weight [10 16 1 1]
	// model/score.bias [10]
	// [classifier.0 -> fc6 (2 keys) classifier.2 -> score (2 keys)]
}
