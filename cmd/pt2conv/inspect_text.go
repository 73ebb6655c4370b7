package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// inspectView is how the text report is laid out.
type inspectView struct {
	candidatesOnly bool
	width          int // columns to fit in; 0: no limit
}

// contentRow is one line of the report's CONTENTS table: a state_dict, an optimizer or a
// value of the checkpoint's top-level dict, and the flag that uses it.
type contentRow struct{ key, what, flag string }

// mostPlainValues bounds the top-level values listed, for checkpoints that keep logs.
const mostPlainValues = 12

// commandWidth is where the suggested command wraps when the output has no width limit.
const commandWidth = 100

func printInspect(w io.Writer, rep *inspectReport, v inspectView) error {
	var kind string
	switch {
	case rep.PickleProtocol > 0:
		kind = fmt.Sprintf(": %s checkpoint, pickle protocol %d", rep.Format, rep.PickleProtocol)
	case len(rep.Shards) > 0:
		kind = fmt.Sprintf(": %s checkpoint, %d shards", rep.Format, len(rep.Shards))
	default:
		kind = fmt.Sprintf(": %s checkpoint", rep.Format)
	}
	name := escapeText(rep.File)
	if v.width > 0 {
		name = truncateMiddle(name, max(v.width-len(kind), 16))
	}
	fmt.Fprintf(w, "%s%s\n", name, kind)
	if !v.candidatesOnly {
		if err := printTensors(w, rep, v); err != nil {
			return err
		}
	}
	return printCandidates(w, rep, v)
}

// printTensors lists the tensors (optimizer state summarized, not listed), the totals and
// what else the checkpoint holds.
func printTensors(w io.Writer, rep *inspectReport, v inspectView) error {
	if len(rep.Metadata) > 0 {
		b, _ := json.Marshal(rep.Metadata)
		fmt.Fprintf(w, "\nmetadata: %s\n", fitCell(escapeText(string(b)), max(v.width-len("metadata: "), 0), cutEnd))
	}
	cols := []column{
		{title: "TENSOR", shrink: cutMiddle, min: 24}, {title: "DTYPE"}, {title: "SHAPE"},
		{title: "STRIDE", drop: 3}, {title: "OFFSET", drop: 1}, {title: "STORAGE", shrink: cutMiddle, min: 8, drop: 2}, {title: "SIZE"},
	}
	if len(rep.Shards) > 0 {
		cols = append(cols, column{title: "SHARD", shrink: cutMiddle, min: 12, drop: 4})
	}
	var rows [][]string
	hidden := 0
	for _, t := range rep.Tensors {
		if underOptimizer(t.Path, rep.Optimizers) {
			hidden++
			continue
		}
		row := []string{escapeText(t.Path), t.DType, dims(t.Shape), dims(t.Stride), fmt.Sprint(t.Offset), escapeText(t.Storage), humanBytes(t.Bytes)}
		if len(rep.Shards) > 0 {
			row = append(row, escapeText(t.Shard))
		}
		rows = append(rows, row)
	}
	fmt.Fprintln(w)
	var dropped []string
	if len(rows) > 0 {
		var err error
		if dropped, err = writeTable(w, v.width, cols, rows); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	summary := fmt.Sprintf("%s in %s, %s", count(len(rep.Tensors), "tensor"), count(rep.Storages, "storage"), humanBytes(rep.StorageBytes))
	if hidden > 0 {
		summary += fmt.Sprintf(" (%d of the tensors are optimizer state, not listed: --json lists them)", hidden)
	}
	if len(dropped) > 0 {
		summary += fmt.Sprintf("; %s left out to fit %d columns (--json has them)", strings.Join(dropped, ", "), v.width)
	}
	fmt.Fprintln(w, wrapText(summary, v.width))
	contents := contentRows(rep)
	if len(contents) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	rows = rows[:0]
	for _, c := range contents {
		rows = append(rows, []string{c.key, c.flag, c.what})
	}
	if _, err := writeTable(w, v.width, []column{
		{title: "CONTENTS", shrink: cutMiddle, min: 16}, {title: "USE WITH"}, {title: "WHAT", shrink: cutEnd, min: 20},
	}, rows); err != nil {
		return err
	}
	var notes []string
	if len(rep.StateDicts) > 0 && rep.StateDicts[0] != "" {
		notes = append(notes, "--state-dict KEY writes only that state_dict (a safetensors output needs one).")
	}
	if len(rep.Optimizers) > 0 {
		notes = append(notes, "--optimizer-key KEY reshapes that optimizer's state with the converted weights, so training resumes in conv form.")
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\n%s\n", wrapText(strings.Join(notes, " "), v.width))
	}
	return nil
}

func count(n int, what string) string {
	switch {
	case n == 1:
		return "1 " + what
	case strings.HasSuffix(what, "y"):
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(what, "y"))
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func underOptimizer(path string, opts []optimizerInfo) bool {
	for _, o := range opts {
		if strings.HasPrefix(path, o.Path+"/") || (o.Path == "" && path != "") {
			return true
		}
	}
	return false
}

// contentRows lists the state_dicts and optimizers with the flags that take their paths,
// then the top-level values, when the checkpoint is more than one state_dict.
func contentRows(rep *inspectReport) []contentRow {
	if len(rep.StateDicts) == 1 && rep.StateDicts[0] == "" && len(rep.Optimizers) == 0 {
		return nil // a bare state_dict: the tensor table is all there is
	}
	var rows []contentRow
	for _, p := range rep.StateDicts {
		n, bytes := 0, int64(0)
		for _, t := range rep.Tensors {
			if p == "" || strings.HasPrefix(t.Path, p+"/") {
				n++
				bytes += t.Bytes
			}
		}
		key := p
		if key == "" {
			key = "(the whole file)"
		}
		flag := "--state-dict " + shellQuote(p)
		if p == "" {
			flag = ""
		}
		rows = append(rows, contentRow{escapeText(key), fmt.Sprintf("state_dict: %s, %s", count(n, "tensor"), humanBytes(bytes)), escapeText(flag)})
	}
	for _, o := range rep.Optimizers {
		what := fmt.Sprintf("optimizer: state of %s", count(o.Params, "parameter"))
		if len(o.State) > 0 {
			what += " (" + strings.Join(o.State, ", ") + ")"
		}
		rows = append(rows, contentRow{escapeText(o.Path), escapeText(what), escapeText("--optimizer-key " + shellQuote(o.Path))})
	}
	return append(rows, rep.other...)
}

// otherContents describes the entries of the root dict that hold no state_dict and no
// optimizer: epochs, hyper-parameters, scheduler state.
func otherContents(root checkpoint.Value, rep *inspectReport) []contentRow {
	entries, _, ok := checkpoint.Children(root)
	if !ok || len(entries) == 0 {
		return nil
	}
	covered := map[string]bool{}
	for _, p := range rep.StateDicts {
		top, _, _ := strings.Cut(p, "/")
		covered[top] = true
	}
	for _, o := range rep.Optimizers {
		top, _, _ := strings.Cut(o.Path, "/")
		covered[top] = true
	}
	if covered[""] { // the root is itself a state_dict or an optimizer
		return nil
	}
	var rows []contentRow
	skipped := 0
	for _, e := range entries {
		key := checkpoint.KeyString(e.Key)
		if covered[key] {
			continue
		}
		if len(rows) == mostPlainValues {
			skipped++
			continue
		}
		rows = append(rows, contentRow{key: escapeText(key), what: escapeText(describeValue(e.Value))})
	}
	if skipped > 0 {
		rows = append(rows, contentRow{key: "…", what: count(skipped, "more entry")})
	}
	return rows
}

// describeValue is a short description of a value: plain values as Python writes them,
// containers by their size.
func describeValue(v checkpoint.Value) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		if len(x) > 60 {
			x = x[:57] + "..."
		}
		return "'" + x + "'"
	case checkpoint.Bytes:
		return fmt.Sprintf("bytes (%d)", len(x))
	case *checkpoint.Dict, *checkpoint.OrderedDict:
		entries, _, _ := checkpoint.Children(x)
		return withTensors(fmt.Sprintf("dict of %s", count(len(entries), "entry")), x)
	case *checkpoint.List:
		return withTensors(fmt.Sprintf("list of %s", count(len(x.Items), "item")), x)
	case *checkpoint.Tuple:
		return withTensors(fmt.Sprintf("tuple of %s", count(len(x.Items), "item")), x)
	}
	if t, ok := checkpoint.AsTensor(v); ok {
		return fmt.Sprintf("tensor %s %s", t.Kind().DType(), dims(t.Size))
	}
	if k := checkpoint.KeyString(v); !strings.HasPrefix(k, "<") {
		return k
	}
	return checkpoint.TypeName(v)
}

func withTensors(what string, v checkpoint.Value) string {
	if n := len(checkpoint.Tensors(v)); n > 0 {
		return what + ", " + count(n, "tensor")
	}
	return what
}

// shapeSuffix is the "=CxHxW" a candidate's spec ends with when auto found its split.
var shapeSuffix = regexp.MustCompile(`=(\d+)x(\d+)x(\d+)$`)

// printCandidates lists the Linear layers, the weights that are probably not Linears, and a
// convert command for the former.
func printCandidates(w io.Writer, rep *inspectReport, v inspectView) error {
	var linears, others []candidateInfo
	for _, c := range rep.Candidates {
		if c.NotLinear == "" {
			linears = append(linears, c)
		} else {
			others = append(others, c)
		}
	}
	if len(rep.Candidates) == 0 {
		_, err := fmt.Fprintln(w, "\nNo Linear layers (2-D .weight tensors) found.")
		return err
	}
	if len(linears) > 0 {
		fmt.Fprintf(w, "\nLinear layers that can become Conv2d (%d):\n", len(linears))
		var rows [][]string
		for _, c := range linears {
			name, input := shapeSuffix.ReplaceAllString(c.Spec, ""), fmt.Sprintf("%d×1×1", c.In)
			if m := shapeSuffix.FindStringSubmatch(c.Spec); m != nil {
				input = m[1] + "×" + m[2] + "×" + m[3]
			}
			bias := "yes"
			if !c.Bias {
				bias = "no"
			}
			rows = append(rows, []string{escapeText(name), fmt.Sprint(c.In), fmt.Sprint(c.Out), bias, input, escapeText(c.Rule)})
		}
		if _, err := writeTable(w, v.width, []column{
			{title: "LAYER", shrink: cutMiddle, min: 20}, {title: "IN"}, {title: "OUT"}, {title: "BIAS"}, {title: "INPUT"},
			{title: "WHY", shrink: cutEnd, min: 20},
		}, rows); err != nil {
			return err
		}
	}
	if len(others) > 0 {
		fmt.Fprintf(w, "\nProbably not Linear layers, left out of the command below (%d):\n", len(others))
		var rows [][]string
		for _, c := range others {
			rows = append(rows, []string{escapeText(shapeSuffix.ReplaceAllString(c.Spec, "")), fmt.Sprint(c.In), fmt.Sprint(c.Out), escapeText(c.NotLinear)})
		}
		if _, err := writeTable(w, v.width, []column{
			{title: "WEIGHT", shrink: cutMiddle, min: 20}, {title: "IN"}, {title: "OUT"}, {title: "WHY", shrink: cutEnd, min: 20},
		}, rows); err != nil {
			return err
		}
	}
	if len(linears) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\n%s\n", wrapText("INPUT is the C×H×W each layer's input is assumed to have: a checkpoint holds no graph, "+
		"so C comes from the tensors before the layer (WHY) and H = W is assumed; in×1×1 without evidence.", v.width))
	fmt.Fprintf(w, "\nTo convert them:\n  %s\n", suggestedCommand(rep, linears, v.width))
	return nil
}

// suggestedCommand is a pt2conv convert line that converts the layers, wrapped to fit.
func suggestedCommand(rep *inspectReport, linears []candidateInfo, width int) string {
	words := []string{"pt2conv", "convert", shellQuote(escapeText(rep.File))}
	if len(rep.Shards) > 0 {
		words = append(words, "--out-dir", "converted")
	} else {
		ext := filepath.Ext(rep.File)
		words = append(words, "-o", shellQuote(escapeText(strings.TrimSuffix(filepath.Base(rep.File), ext)+"_conv"+ext)))
	}
	if len(rep.Optimizers) == 1 {
		words = append(words, "--optimizer-key", shellQuote(escapeText(rep.Optimizers[0].Path)))
	}
	for _, c := range linears {
		words = append(words, "--layer", shellQuote(escapeText(c.Spec)))
	}
	words = append(words, "--verify")
	if width <= 0 || width > commandWidth {
		width = commandWidth
	}
	// "--layer SPEC" stays on one line
	var joined []string
	for i := 0; i < len(words); i++ {
		if strings.HasPrefix(words[i], "-") && i+1 < len(words) && !strings.HasPrefix(words[i+1], "-") {
			joined = append(joined, words[i]+" "+words[i+1])
			i++
			continue
		}
		joined = append(joined, words[i])
	}
	return wrapWords(joined, width-2, "      ")
}
