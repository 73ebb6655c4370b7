package verify

import (
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// Layer is a weight that is 2-D ([out, C·H·W], nn.Linear) in one checkpoint and 4-D
// ([out, C, H, W], nn.Conv2d) at the same path in the other.
type Layer struct {
	// Name is the module's path, e.g. "model/classifier.0" for the weight
	// "model/classifier.0.weight".
	Name string `json:"name"`
	// Path is the weight's path in both checkpoints.
	Path checkpoint.Path `json:"weight"`
	// Original and Converted are the weight in each checkpoint.
	Original, Converted *checkpoint.Tensor `json:"-"`
	// Bias is the sibling "<module>.bias" of the original weight, or nil. ConvertedBias is
	// the same key in the converted checkpoint, or nil. Each form runs with its own
	// checkpoint's bias, so a bias lost or changed by the conversion is caught too.
	Bias, ConvertedBias *checkpoint.Tensor `json:"-"`
	// C, H, W are the input geometry of the 4-D form.
	C int `json:"c"`
	H int `json:"h"`
	W int `json:"w"`
	// Reverse is set when the original is the 4-D form (Conv2d converted to Linear).
	Reverse bool `json:"reverse"`
	// Input is the feature map the 4-D form assumes, "CxHxW". The split of in = C·H·W is an
	// assumption about the model: a checkpoint holds no graph, and H and W never show in it.
	Input string `json:"input"`
	// Evidence is what the original checkpoint says about that input (rewrite.Evidence), and
	// Status how the split compares: EvidenceAgrees, EvidenceDisagrees, EvidenceAssumed
	// (disagrees, accepted by Options.Assume) or EvidenceNone.
	Evidence string `json:"evidence"`
	Status   string `json:"evidence_status"`

	// ordinal is the weight's place among the original's weight keys, in key order.
	ordinal int
}

// Values of Layer.Status.
const (
	EvidenceAgrees    = "agrees"
	EvidenceDisagrees = "disagrees"
	EvidenceAssumed   = "assumed"
	EvidenceNone      = "none"
)

// Out is the number of output features.
func (l *Layer) Out() int { return int(l.Original.Size[0]) }

// linear and conv return the layer's 2-D and 4-D weights, whichever checkpoint holds them.
func (l *Layer) linear() *checkpoint.Tensor {
	if l.Reverse {
		return l.Converted
	}
	return l.Original
}

func (l *Layer) conv() *checkpoint.Tensor {
	if l.Reverse {
		return l.Original
	}
	return l.Converted
}

// FindLayers lists the converted layers, in the original's key order: weights ("weight" or
// "<module>.weight" keys) at the same path that are 2-D in orig and 4-D in conv (or 4-D in orig and 2-D in conv, Reverse) with
// the same output count and the same number of elements. A pair whose rank changed between
// 2 and 4 but whose sizes disagree is an error, as is a bias of the wrong shape.
func FindLayers(orig, conv *checkpoint.Checkpoint) ([]Layer, error) {
	layers, _, err := findLayers(orig, conv)
	return layers, err
}

// findLayers is FindLayers that also counts the original's tensors. It indexes the
// tensors as it walks the trees rather than listing them first: for a checkpoint of many
// tensors the lists would double what the indexes hold.
func findLayers(orig, conv *checkpoint.Checkpoint) ([]Layer, int, error) {
	convTensors := tensorsByPath(checkpoint.AllTensors(conv.Root))
	origTensors := make(map[string]*checkpoint.Tensor, len(convTensors))
	// The candidates, in the original's key order: a weight whose rank went from 2 to 4 or
	// back, with every weight key's place in that order (first occurrence).
	var layers []Layer
	ordinal := map[string]int{}
	n := 0
	for nt := range checkpoint.AllTensors(orig.Root) {
		n++
		key := nt.Path.String()
		if origTensors[key] == nil {
			origTensors[key] = nt.Tensor
		}
		if !isWeight(nt.Path) {
			continue
		}
		if _, seen := ordinal[key]; seen {
			continue
		}
		ordinal[key] = len(ordinal)
		ot, ct := nt.Tensor, convTensors[key]
		if ct == nil {
			continue
		}
		l := Layer{Original: ot, Converted: ct, ordinal: ordinal[key]}
		switch {
		case len(ot.Size) == 2 && len(ct.Size) == 4:
		case len(ot.Size) == 4 && len(ct.Size) == 2:
			l.Reverse = true
		default:
			continue
		}
		l.Path = slices.Clone(nt.Path)
		layers = append(layers, l)
	}
	// Biases come after their weights, so they are looked up once the index is whole.
	for i := range layers {
		l := &layers[i]
		ot, ct := l.Original, l.Converted
		flat, full := ot, ct
		if l.Reverse {
			flat, full = ct, ot
		}
		key := l.Path.String()
		if flat.Size[0] != full.Size[0] || flat.Size[1] != full.Size[1]*full.Size[2]*full.Size[3] {
			return nil, 0, fmt.Errorf("%s: %v in %s and %v in %s do not hold the same weights: %w",
				key, ot.Size, orig.Name, ct.Size, conv.Name, ErrShape)
		}
		l.Name = moduleName(l.Path)
		l.C, l.H, l.W = int(full.Size[1]), int(full.Size[2]), int(full.Size[3])
		l.Input = strconv.Itoa(l.C) + "x" + strconv.Itoa(l.H) + "x" + strconv.Itoa(l.W)
		bias := biasKey(l.Path)
		var err error
		if l.Bias, err = lookupBias(origTensors, bias, l.Out(), orig.Name); err != nil {
			return nil, 0, err
		}
		if l.ConvertedBias, err = lookupBias(convTensors, bias, l.Out(), conv.Name); err != nil {
			return nil, 0, err
		}
	}
	if len(layers) == 0 {
		return nil, n, nil
	}
	return slices.Clip(layers), n, nil
}

// tensorsByPath indexes tensors by path; the first of a path wins.
func tensorsByPath(tensors iter.Seq[checkpoint.NamedTensor]) map[string]*checkpoint.Tensor {
	m := map[string]*checkpoint.Tensor{}
	for nt := range tensors {
		if k := nt.Path.String(); m[k] == nil {
			m[k] = nt.Tensor
		}
	}
	return m
}

// moduleName drops the ".weight" suffix of a weight's path.
func moduleName(p checkpoint.Path) string {
	name := p.String()
	if n, ok := strings.CutSuffix(name, ".weight"); ok {
		return n
	}
	return name
}

// isWeight reports whether the path's last key is "weight" or "<module>.weight".
func isWeight(p checkpoint.Path) bool {
	if len(p) == 0 {
		return false
	}
	last, ok := strings.CutSuffix(p[len(p)-1], "weight")
	return ok && (last == "" || strings.HasSuffix(last, "."))
}

// biasKey is the path of the bias beside a weight, or "" when the key is not a weight.
func biasKey(p checkpoint.Path) string {
	if !isWeight(p) {
		return ""
	}
	last := strings.TrimSuffix(p[len(p)-1], "weight") + "bias"
	if len(p) == 1 {
		return last
	}
	return checkpoint.Path(p[:len(p)-1]).String() + "/" + last
}

func lookupBias(tensors map[string]*checkpoint.Tensor, key string, out int, file string) (*checkpoint.Tensor, error) {
	t := tensors[key]
	if t == nil {
		return nil, nil
	}
	if len(t.Size) != 1 || int(t.Size[0]) != out {
		return nil, fmt.Errorf("%s in %s has size %s, want (%d): %w", key, file, shapeText(t.Size), out, ErrShape)
	}
	return t, nil
}

// chains groups consecutive layers into heads that can run one after another: a layer
// joins the previous one's chain when both are weights of the same dict, no other weight of
// that dict sits between them in the original's key order, its input is 1×1 and its
// channel count equals the previous layer's output count.
// The layers are FindLayers' (which numbers the weight keys); the chains are slices of one
// list of the layers' indices.
func chains(layers []Layer) [][]int {
	all := make([]int, len(layers))
	var out [][]int
	start := 0
	for i := range layers {
		all[i] = i
		if i > 0 && !follows(&layers[i-1], &layers[i]) {
			out = append(out, all[start:i:i])
			start = i
		}
	}
	if len(layers) > 0 {
		out = append(out, all[start:])
	}
	return out
}

func follows(prev, next *Layer) bool {
	return next.ordinal == prev.ordinal+1 && sameParent(prev.Path, next.Path) &&
		next.H == 1 && next.W == 1 && next.C == prev.Out()
}

func sameParent(a, b checkpoint.Path) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for i := range a[:len(a)-1] {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
