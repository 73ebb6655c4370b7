package verify

import (
	"fmt"
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
	return findLayers(orig, conv, checkpoint.Tensors(orig.Root), checkpoint.Tensors(conv.Root))
}

// findLayers is FindLayers on the checkpoints' tensors, listed once by the caller.
func findLayers(orig, conv *checkpoint.Checkpoint, origList, convList []checkpoint.NamedTensor) ([]Layer, error) {
	origTensors := tensorsByPath(origList)
	convTensors := tensorsByPath(convList)
	most := 0 // weights of a layer's rank: room for every layer, without growing
	for _, nt := range origList {
		if r := len(nt.Tensor.Size); (r == 2 || r == 4) && isWeight(nt.Path) {
			most++
		}
	}
	layers := make([]Layer, 0, most)
	// Every weight key of the original, first occurrence, with its place in key order.
	ordinal := map[string]int{}
	for _, nt := range origList {
		if !isWeight(nt.Path) {
			continue
		}
		key := nt.Path.String()
		if _, seen := ordinal[key]; seen {
			continue
		}
		ordinal[key] = len(ordinal)
		ct := convTensors[key]
		if ct == nil {
			continue
		}
		ot := nt.Tensor
		l := Layer{Name: moduleName(nt.Path), Path: nt.Path, Original: ot, Converted: ct, ordinal: ordinal[key]}
		var flat, full *checkpoint.Tensor
		switch {
		case len(ot.Size) == 2 && len(ct.Size) == 4:
			flat, full = ot, ct
		case len(ot.Size) == 4 && len(ct.Size) == 2:
			flat, full = ct, ot
			l.Reverse = true
		default:
			continue
		}
		if flat.Size[0] != full.Size[0] || flat.Size[1] != full.Size[1]*full.Size[2]*full.Size[3] {
			return nil, fmt.Errorf("%s: %v in %s and %v in %s do not hold the same weights: %w",
				key, ot.Size, orig.Name, ct.Size, conv.Name, ErrShape)
		}
		l.C, l.H, l.W = int(full.Size[1]), int(full.Size[2]), int(full.Size[3])
		l.Input = strconv.Itoa(l.C) + "x" + strconv.Itoa(l.H) + "x" + strconv.Itoa(l.W)
		bias := biasKey(nt.Path)
		var err error
		if l.Bias, err = lookupBias(origTensors, bias, l.Out(), orig.Name); err != nil {
			return nil, err
		}
		if l.ConvertedBias, err = lookupBias(convTensors, bias, l.Out(), conv.Name); err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	if len(layers) == 0 {
		return nil, nil
	}
	return layers, nil
}

// tensorsByPath indexes tensors by path; the first of a path wins.
func tensorsByPath(list []checkpoint.NamedTensor) map[string]*checkpoint.Tensor {
	m := make(map[string]*checkpoint.Tensor, len(list))
	for _, nt := range list {
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
