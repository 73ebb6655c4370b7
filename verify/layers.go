package verify

import (
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"strings"
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
	origTensors := tensorsByPath(orig.Root)
	convTensors := tensorsByPath(conv.Root)
	var layers []Layer
	seen := map[string]bool{}
	for _, nt := range checkpoint.Tensors(orig.Root) {
		key := nt.Path.String()
		ct := convTensors[key]
		if ct == nil || seen[key] || biasKey(nt.Path) == "" {
			continue
		}
		seen[key] = true
		ot := nt.Tensor
		l := Layer{Name: moduleName(nt.Path), Path: nt.Path, Original: ot, Converted: ct}
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
		l.Input = fmt.Sprintf("%dx%dx%d", l.C, l.H, l.W)
		if bias := biasKey(nt.Path); bias != "" {
			var err error
			if l.Bias, err = lookupBias(origTensors, bias, l.Out(), orig.Name); err != nil {
				return nil, err
			}
			if l.ConvertedBias, err = lookupBias(convTensors, bias, l.Out(), conv.Name); err != nil {
				return nil, err
			}
		}
		layers = append(layers, l)
	}
	return layers, nil
}

func tensorsByPath(root checkpoint.Value) map[string]*checkpoint.Tensor {
	m := map[string]*checkpoint.Tensor{}
	for _, nt := range checkpoint.Tensors(root) {
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

// biasKey is the path of the bias beside a weight, or "" when the key is not a weight.
func biasKey(p checkpoint.Path) string {
	if len(p) == 0 {
		return ""
	}
	last, ok := strings.CutSuffix(p[len(p)-1], "weight")
	if !ok || (last != "" && !strings.HasSuffix(last, ".")) {
		return ""
	}
	q := append(checkpoint.Path(nil), p...)
	q[len(q)-1] = last + "bias"
	return q.String()
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
func chains(orig checkpoint.Value, layers []Layer) [][]int {
	order := map[string]int{}
	var weights []checkpoint.Path // every weight key of the original, in key order
	for _, nt := range checkpoint.Tensors(orig) {
		k := nt.Path.String()
		if _, ok := order[k]; ok || biasKey(nt.Path) == "" {
			continue
		}
		order[k] = len(weights)
		weights = append(weights, nt.Path)
	}
	var out [][]int
	for i := range layers {
		if i > 0 && follows(&layers[i-1], &layers[i], order) {
			out[len(out)-1] = append(out[len(out)-1], i)
			continue
		}
		out = append(out, []int{i})
	}
	return out
}

func follows(prev, next *Layer, order map[string]int) bool {
	a, okA := order[prev.Path.String()]
	b, okB := order[next.Path.String()]
	return okA && okB && b == a+1 && sameParent(prev.Path, next.Path) &&
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
