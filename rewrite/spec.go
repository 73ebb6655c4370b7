package rewrite

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/pt2conv/pt2conv/checkpoint"
	"gopkg.in/yaml.v3"
)

// ShapeMode says how a Spec chooses the convolution shape of a Linear weight.
type ShapeMode uint8

const (
	// ShapeNone: no shape given; the weight becomes in×1×1 (a 1×1 convolution).
	ShapeNone ShapeMode = iota
	// ShapeCHW: C, H and W given.
	ShapeCHW
	// ShapeHW: H and W given; C is in/(H·W).
	ShapeHW
	// ShapeAuto: C from the nearest convolution weight before the layer, H = W = √(in/C).
	ShapeAuto
)

func (m ShapeMode) String() string {
	switch m {
	case ShapeCHW:
		return "CxHxW"
	case ShapeHW:
		return "HxW"
	case ShapeAuto:
		return "auto"
	}
	return "none"
}

// Spec selects layers by module name and says which shape their weights take.
type Spec struct {
	// Layer is the module name as it appears before ".weight" in state_dict keys
	// ("classifier.0", "module.fc6", "1"). A '*' matches any run of characters, dots included.
	Layer   string
	Mode    ShapeMode
	C, H, W int64 // C is set for ShapeCHW only; H and W for ShapeCHW and ShapeHW
}

// ErrSpec is wrapped by every error of ParseSpec and ParsePlan.
var ErrSpec = errors.New("invalid layer spec")

// ParseSpec parses NAME, NAME=CxHxW, NAME=HxW or NAME=auto. NAME is a module name,
// optionally qualified by the path of its state_dict (see LayerSpecName and the package
// documentation of names.go's syntax).
func ParseSpec(s string) (Spec, error) {
	name, shape, hasShape := cutUnescaped(trimSpec(s), '=')
	name = trimSpec(name)
	if name == "" {
		return Spec{}, fmt.Errorf("%w %q: empty layer name", ErrSpec, s)
	}
	if strings.ContainsAny(name, "\t\n\r") {
		return Spec{}, fmt.Errorf("%w %q: layer name contains a tab or line break (write it as \\xHH)", ErrSpec, s)
	}
	if _, err := parseLayerName(name); err != nil {
		return Spec{}, fmt.Errorf("%w %q: %v", ErrSpec, s, err)
	}
	sp := Spec{Layer: name}
	if !hasShape {
		return sp, nil
	}
	shape = strings.TrimSpace(shape)
	if strings.EqualFold(shape, "auto") {
		sp.Mode = ShapeAuto
		return sp, nil
	}
	dims, err := parseDims(strings.Split(strings.ToLower(shape), "x"))
	if err != nil {
		return Spec{}, fmt.Errorf("%w %q: %v", ErrSpec, s, err)
	}
	if err := sp.setDims(dims); err != nil {
		return Spec{}, fmt.Errorf("%w %q: %v", ErrSpec, s, err)
	}
	return sp, nil
}

// cutUnescaped cuts s around the first sep not preceded by a backslash escape.
func cutUnescaped(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// trimSpec trims white space around a spec or its name, keeping an escaped trailing space.
func trimSpec(s string) string {
	s = strings.TrimLeft(s, " \t\n\r")
	for len(s) > 0 && strings.ContainsRune(" \t\n\r", rune(s[len(s)-1])) {
		if n := len(s) - 1; n > 0 && s[n-1] == '\\' {
			// escaped unless the backslash is itself escaped
			k := 0
			for j := n - 1; j >= 0 && s[j] == '\\'; j-- {
				k++
			}
			if k%2 == 1 {
				break
			}
		}
		s = s[:len(s)-1]
	}
	return s
}

func parseDims(parts []string) ([]int64, error) {
	dims := make([]int64, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("shape dimension %q is not a positive integer (want CxHxW, HxW or auto)", p)
		}
		dims[i] = n
	}
	return dims, nil
}

func (sp *Spec) setDims(dims []int64) error {
	switch len(dims) {
	case 3:
		sp.Mode, sp.C, sp.H, sp.W = ShapeCHW, dims[0], dims[1], dims[2]
	case 2:
		sp.Mode, sp.H, sp.W = ShapeHW, dims[0], dims[1]
	default:
		return fmt.Errorf("shape has %d dimensions (want CxHxW, HxW or auto)", len(dims))
	}
	return nil
}

// String formats the spec the way ParseSpec reads it.
func (sp Spec) String() string {
	switch sp.Mode {
	case ShapeCHW:
		return fmt.Sprintf("%s=%dx%dx%d", sp.Layer, sp.C, sp.H, sp.W)
	case ShapeHW:
		return fmt.Sprintf("%s=%dx%d", sp.Layer, sp.H, sp.W)
	case ShapeAuto:
		return sp.Layer + "=auto"
	}
	return sp.Layer
}

// Match reports whether a module name is selected by the spec in a state_dict whose path
// is unknown: true for unqualified names only.
func (sp Spec) Match(module string) bool {
	n, err := parseLayerName(sp.Layer)
	return err == nil && !n.qualified && n.matches(nil, module)
}

// MatchIn reports whether the spec selects the module of the state_dict at dict.
func (sp Spec) MatchIn(dict checkpoint.Path, module string) bool {
	n, err := parseLayerName(sp.Layer)
	return err == nil && n.matches(dict, module)
}

// IsGlob reports whether the spec's Layer is a pattern rather than one name.
func (sp Spec) IsGlob() bool {
	n, err := parseLayerName(sp.Layer)
	return err == nil && n.isGlob()
}

// ParsePlan reads a plan file: a YAML or JSON list whose items are spec strings
// ("classifier.0=512x7x7") or objects {layer: classifier.0, shape: 512x7x7}, where shape is
// a string (CxHxW, HxW, auto) or a list of two or three integers and may be left out.
// A top-level object with a "layers" list is accepted too. Its errors are *PlanError.
func ParsePlan(r io.Reader) ([]Spec, error) {
	entries, err := ReadPlan(r)
	if err != nil {
		return nil, err
	}
	specs := make([]Spec, len(entries))
	for i, e := range entries {
		specs[i] = e.Spec
	}
	return specs, nil
}

// PlanEntry is one spec of a plan file and the line it is on.
type PlanEntry struct {
	Spec
	Line int
}

// PlanError is a mistake in a plan file. It wraps ErrSpec, or the error reading the plan.
type PlanError struct {
	Line int // 1-based; 0 when the mistake has no line
	Err  error
}

func (e *PlanError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return e.Err.Error()
}

func (e *PlanError) Unwrap() error { return e.Err }

// yamlLine finds the line number in a YAML parser's message ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlParserProblems are the messages of yaml.v3's parser, as opposed to its scanner: the
// parser's line numbers count from 0 and the scanner's from 1, and a line of 0 is left out.
var yamlParserProblems = []string{"did not find expected ',' or ']'", "did not find expected ',' or '}'",
	"did not find expected '-' indicator", "did not find expected <document start>", "did not find expected key",
	"did not find expected node content", "found incompatible YAML document", "found undefined tag handle",
	"found duplicate %TAG directive", "found duplicate %YAML directive"}

// yamlErrorLine is the 1-based line of a yaml.v3 syntax error and its message without it.
func yamlErrorLine(msg string) (int, string) {
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return 1, strings.TrimPrefix(msg, "yaml: ")
	}
	line, _ := strconv.Atoi(m[1])
	msg = msg[len(m[0]):]
	for _, p := range yamlParserProblems {
		if msg == p {
			line++
			break
		}
	}
	return line, msg
}

// ReadPlan is ParsePlan keeping each spec's line, so that a spec that later matches nothing
// can be reported where it is written.
func ReadPlan(r io.Reader) ([]PlanEntry, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, &PlanError{Err: fmt.Errorf("reading plan: %w", err)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &PlanError{Err: fmt.Errorf("%w: the plan is empty; list one spec per line (- classifier.0=auto)", ErrSpec)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlErrorLine(err.Error())
		return nil, &PlanError{Line: line, Err: fmt.Errorf("%w: plan is neither YAML nor JSON: %s", ErrSpec, msg)}
	}
	list := &doc
	if list.Kind == yaml.DocumentNode && len(list.Content) == 1 {
		list = list.Content[0]
	}
	if list.Kind == yaml.MappingNode {
		if v := mappingValue(list, "layers"); v != nil {
			list = v
		}
	}
	if list.Kind != yaml.SequenceNode {
		return nil, &PlanError{Line: list.Line, Err: fmt.Errorf("%w: a plan is a list of specs, one per line (- classifier.0=auto)", ErrSpec)}
	}
	entries := make([]PlanEntry, 0, len(list.Content))
	for _, item := range list.Content {
		sp, err := planItem(item)
		if err != nil {
			return nil, &PlanError{Line: item.Line, Err: err}
		}
		entries = append(entries, PlanEntry{Spec: sp, Line: item.Line})
	}
	return entries, nil
}

func planItem(n *yaml.Node) (Spec, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return ParseSpec(n.Value)
	case yaml.MappingNode:
	default:
		return Spec{}, fmt.Errorf("%w: an item is a spec string or {layer, shape}", ErrSpec)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; k != "layer" && k != "shape" {
			return Spec{}, fmt.Errorf("%w: unknown field %q (want layer, shape)", ErrSpec, k)
		}
	}
	layer := mappingValue(n, "layer")
	if layer == nil || layer.Kind != yaml.ScalarNode || hasUnescaped(layer.Value, '=') {
		return Spec{}, fmt.Errorf("%w: item has no layer name", ErrSpec)
	}
	shape := mappingValue(n, "shape")
	switch {
	case shape == nil || shape.Tag == "!!null":
		return ParseSpec(layer.Value)
	case shape.Kind == yaml.ScalarNode:
		return ParseSpec(layer.Value + "=" + shape.Value)
	case shape.Kind == yaml.SequenceNode:
		parts := make([]string, len(shape.Content))
		for i, d := range shape.Content {
			parts[i] = d.Value
		}
		return ParseSpec(layer.Value + "=" + strings.Join(parts, "x"))
	}
	return Spec{}, fmt.Errorf("%w: layer %s: shape is a string or a list of integers", ErrSpec, layer.Value)
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func hasUnescaped(s string, c byte) bool {
	_, _, found := cutUnescaped(s, c)
	return found
}
