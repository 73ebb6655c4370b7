package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
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

func printInspect(w io.Writer, rep *inspection, v inspectView) error {
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
func printTensors(w io.Writer, rep *inspection, v inspectView) error {
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
	under := optimizerPrefixes(rep.Optimizers)
	var joined []byte // a tensor's path, to compare with the optimizers'
	rows := func(r *tableRow) error {
		return eachTensor(rep.root, func(path checkpoint.Path, t *checkpoint.Tensor, _ bool) error {
			if len(under) > 0 {
				if joined = appendPath(joined[:0], path); under.match(joined) {
					return nil
				}
			}
			r.path(path).raw(t.Kind().DType()).dims(t.Size).dims(t.Stride).int(t.Offset).text(t.Storage.Key).bytes(tensorBytes(t))
			if len(rep.Shards) > 0 {
				r.text(rep.sharded.ShardOf(path.String()))
			}
			return r.done()
		})
	}
	listed := rep.tensors
	if len(under) > 0 {
		listed = 0
		_ = eachTensor(rep.root, func(path checkpoint.Path, _ *checkpoint.Tensor, _ bool) error {
			if joined = appendPath(joined[:0], path); !under.match(joined) {
				listed++
			}
			return nil
		})
	}
	hidden := rep.tensors - listed
	fmt.Fprintln(w)
	var dropped []string
	if listed > 0 {
		var err error
		if dropped, err = writeRows(w, v.width, cols, rows); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	summary := fmt.Sprintf("%s in %s, %s", count(rep.tensors, "tensor"), count(rep.Storages, "storage"), humanBytes(rep.StorageBytes))
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
	var table [][]string
	for _, c := range contents {
		table = append(table, []string{c.key, c.flag, c.what})
	}
	if _, err := writeTable(w, v.width, []column{
		{title: "CONTENTS", shrink: cutMiddle, min: 16}, {title: "USE WITH"}, {title: "WHAT", shrink: cutEnd, min: 20},
	}, table); err != nil {
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

// appendPath appends p.String().
func appendPath(b []byte, p checkpoint.Path) []byte {
	for i, k := range p {
		if i > 0 {
			b = append(b, '/')
		}
		b = append(b, k...)
	}
	return b
}

// pathPrefixes match the paths below any of a set of paths (all of them for "").
type pathPrefixes [][]byte

func optimizerPrefixes(opts []optimizerInfo) pathPrefixes {
	var out pathPrefixes
	for _, o := range opts {
		out = append(out, []byte(o.Path+"/"))
	}
	return out
}

// match reports whether the joined path is below one of the prefixes.
func (pp pathPrefixes) match(path []byte) bool {
	for _, p := range pp {
		if bytes.HasPrefix(path, p) || len(p) == 1 && len(path) > 0 {
			return true
		}
	}
	return false
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

// contentRows lists the state_dicts and optimizers with the flags that take their paths,
// then the top-level values, when the checkpoint is more than one state_dict.
func contentRows(rep *inspection) []contentRow {
	if len(rep.StateDicts) == 1 && rep.StateDicts[0] == "" && len(rep.Optimizers) == 0 {
		return nil // a bare state_dict: the tensor table is all there is
	}
	// The tensors and bytes of each state_dict, in one pass over the tensors.
	counts := make([]struct {
		n     int
		bytes int64
	}, len(rep.StateDicts))
	prefixes := make([][]byte, len(rep.StateDicts))
	for i, p := range rep.StateDicts {
		prefixes[i] = []byte(p + "/")
	}
	var joined []byte
	_ = eachTensor(rep.root, func(path checkpoint.Path, t *checkpoint.Tensor, _ bool) error {
		joined = appendPath(joined[:0], path)
		for i, p := range prefixes {
			if len(p) == 1 || bytes.HasPrefix(joined, p) {
				counts[i].n++
				counts[i].bytes += tensorBytes(t)
			}
		}
		return nil
	})
	var rows []contentRow
	for i, p := range rep.StateDicts {
		n, bytes := counts[i].n, counts[i].bytes
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

// splitShape splits a candidate's spec into its layer name and the C, H and W of the
// "=CxHxW" it ends with when auto found its split (ok false, and the spec whole, when not).
func splitShape(spec string) (name, c, h, w string, ok bool) {
	name, shape, found := cutLast(spec, '=')
	if !found {
		return spec, "", "", "", false
	}
	c, rest, ok1 := strings.Cut(shape, "x")
	h, w, ok2 := strings.Cut(rest, "x")
	if !ok1 || !ok2 || !allDigits(c) || !allDigits(h) || !allDigits(w) {
		return spec, "", "", "", false
	}
	return name, c, h, w, true
}

func cutLast(s string, sep byte) (before, after string, found bool) {
	if i := strings.LastIndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// printCandidates lists the Linear layers, the weights that are probably not Linears, and a
// convert command for the former.
func printCandidates(w io.Writer, rep *inspection, v inspectView) error {
	linears := 0
	for i := range rep.candidates {
		if rep.candidates[i].NotLinear == "" {
			linears++
		}
	}
	others := len(rep.candidates) - linears
	if len(rep.candidates) == 0 {
		_, err := fmt.Fprintln(w, "\nNo Linear layers (2-D .weight tensors) found.")
		return err
	}
	if linears > 0 {
		fmt.Fprintf(w, "\nLinear layers that can become Conv2d (%d):\n", linears)
		if _, err := writeRows(w, v.width, []column{
			{title: "LAYER", shrink: cutMiddle, min: 20}, {title: "IN"}, {title: "OUT"}, {title: "BIAS"}, {title: "INPUT"},
			{title: "WHY", shrink: cutEnd, min: 20},
		}, func(r *tableRow) error {
			for i := range rep.candidates {
				c := &rep.candidates[i]
				if c.NotLinear != "" {
					continue
				}
				name, ch, h, wd, ok := splitShape(c.Spec)
				r.text(name).int(c.In).int(c.Out)
				if c.HasBias {
					r.raw("yes")
				} else {
					r.raw("no")
				}
				if ok {
					r.buf = append(append(append(append(append(r.buf, ch...), "×"...), h...), "×"...), wd...)
				} else {
					r.buf = append(strconv.AppendInt(r.buf, c.In, 10), "×1×1"...)
				}
				if err := r.endCell().text(c.Rule).done(); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if others > 0 {
		fmt.Fprintf(w, "\nProbably not Linear layers, left out of the command below (%d):\n", others)
		if _, err := writeRows(w, v.width, []column{
			{title: "WEIGHT", shrink: cutMiddle, min: 20}, {title: "IN"}, {title: "OUT"}, {title: "WHY", shrink: cutEnd, min: 20},
		}, func(r *tableRow) error {
			for i := range rep.candidates {
				c := &rep.candidates[i]
				if c.NotLinear == "" {
					continue
				}
				name, _, _, _, _ := splitShape(c.Spec)
				if err := r.text(name).int(c.In).int(c.Out).text(c.NotLinear).done(); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if linears == 0 {
		return nil
	}
	fmt.Fprintf(w, "\n%s\n", wrapText("INPUT is the C×H×W each layer's input is assumed to have: a checkpoint holds no graph, "+
		"so C comes from the tensors before the layer (WHY) and H = W is assumed; in×1×1 without evidence.", v.width))
	fmt.Fprint(w, "\nTo convert them:\n  ")
	if err := writeSuggestedCommand(w, rep, v.width); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}

// writeSuggestedCommand writes a pt2conv convert line that converts the Linear candidates,
// wrapped to fit.
func writeSuggestedCommand(w io.Writer, rep *inspection, width int) error {
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
	// The words: the head above, "--layer SPEC" for each Linear, "--verify".
	var layers []int
	for i := range rep.candidates {
		if rep.candidates[i].NotLinear == "" {
			layers = append(layers, i)
		}
	}
	n := len(words) + 2*len(layers) + 1
	word := func(i int) string {
		switch {
		case i < len(words):
			return words[i]
		case i == n-1:
			return "--verify"
		case (i-len(words))%2 == 0:
			return "--layer"
		}
		return shellQuote(escapeText(rep.candidates[layers[(i-len(words))/2]].Spec))
	}
	if width <= 0 || width > commandWidth {
		width = commandWidth
	}
	ww := wordWrapper{w: w, width: width - 2, indent: "      "}
	// "--layer SPEC" stays on one line
	for i := 0; i < n; i++ {
		a, value := word(i), ""
		if strings.HasPrefix(a, "-") && i+1 < n {
			if next := word(i + 1); !strings.HasPrefix(next, "-") {
				value = next
				i++
			}
		}
		ww.word(a, value)
	}
	return ww.end()
}
