package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/mattn/go-runewidth"
	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/pickle"
)

// vitTraining writes a training checkpoint shaped like torchvision's ViT-B/16 (its key names
// and 12 encoder layers, 153 tensors, with small widths), plus a bias-less token embedding,
// and AdamW state for every parameter: {"epoch", "model", "optimizer", "args"}.
func vitTraining(t *testing.T, path string) {
	t.Helper()
	const hidden, mlp = 8, 16
	data := map[*checkpoint.Storage][]byte{}
	tensor := func(size ...int64) *checkpoint.Tensor {
		t := &checkpoint.Tensor{Size: size, Stride: checkpoint.ContiguousStrides(size), Hooks: &checkpoint.OrderedDict{}}
		t.Storage = &checkpoint.Storage{Kind: checkpoint.Float32, Key: fmt.Sprint(len(data)), Location: "cpu", Len: t.NumElements()}
		data[t.Storage] = make([]byte, 4*t.NumElements())
		return t
	}
	sd := &checkpoint.OrderedDict{}
	add := func(key string, size ...int64) {
		sd.Entries = append(sd.Entries, checkpoint.Entry{Key: key, Value: tensor(size...)})
	}
	add("class_token", 1, 1, hidden)
	add("conv_proj.weight", hidden, 3, 4, 4)
	add("conv_proj.bias", hidden)
	add("token_embedding.weight", 50, hidden)
	add("encoder.pos_embedding", 1, 5, hidden)
	for i := range 12 {
		p := fmt.Sprintf("encoder.layers.encoder_layer_%d.", i)
		add(p+"ln_1.weight", hidden)
		add(p+"ln_1.bias", hidden)
		add(p+"self_attention.in_proj_weight", 3*hidden, hidden)
		add(p+"self_attention.in_proj_bias", 3*hidden)
		add(p+"self_attention.out_proj.weight", hidden, hidden)
		add(p+"self_attention.out_proj.bias", hidden)
		add(p+"ln_2.weight", hidden)
		add(p+"ln_2.bias", hidden)
		add(p+"mlp.0.weight", mlp, hidden)
		add(p+"mlp.0.bias", mlp)
		add(p+"mlp.3.weight", hidden, mlp)
		add(p+"mlp.3.bias", hidden)
	}
	add("encoder.ln.weight", hidden)
	add("encoder.ln.bias", hidden)
	add("heads.head.weight", 10, hidden)
	add("heads.head.bias", 10)
	state := &checkpoint.Dict{}
	var params []checkpoint.Value
	for i, e := range sd.Entries {
		size := e.Value.(*checkpoint.Tensor).Size
		state.Entries = append(state.Entries, checkpoint.Entry{Key: int64(i), Value: &checkpoint.Dict{Entries: []checkpoint.Entry{
			{Key: "step", Value: tensor()}, {Key: "exp_avg", Value: tensor(size...)}, {Key: "exp_avg_sq", Value: tensor(size...)},
		}}})
		params = append(params, int64(i))
	}
	opt := &checkpoint.Dict{Entries: []checkpoint.Entry{
		{Key: "state", Value: state},
		{Key: "param_groups", Value: &checkpoint.List{Items: []checkpoint.Value{&checkpoint.Dict{Entries: []checkpoint.Entry{
			{Key: "lr", Value: 0.001}, {Key: "weight_decay", Value: 0.05}, {Key: "params", Value: &checkpoint.List{Items: params}},
		}}}}},
	}}
	root := &checkpoint.Dict{Entries: []checkpoint.Entry{
		{Key: "epoch", Value: int64(299)},
		{Key: "model", Value: sd},
		{Key: "optimizer", Value: opt},
		{Key: "args", Value: &checkpoint.Dict{Entries: []checkpoint.Entry{{Key: "model", Value: "vit_b_16"}, {Key: "lr", Value: 0.003}}}},
	}}
	c, err := checkpoint.FromBytes(root, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := pickle.Save(path, c, nil); err != nil {
		t.Fatal(err)
	}
}

// pastedCommand returns the arguments of the "To convert them:" command, joined across its
// continuation lines as a shell would, after "pt2conv".
func pastedCommand(t *testing.T, out string) []string {
	t.Helper()
	_, cmd, ok := strings.Cut(out, "To convert them:\n")
	if !ok {
		t.Fatalf("no command to paste:\n%s", out)
	}
	words := strings.Fields(strings.ReplaceAll(cmd, "\\\n", " "))
	if len(words) < 3 || words[0] != "pt2conv" {
		t.Fatalf("command %q", words)
	}
	return words[1:]
}

// TestInspectBigModel: inspect of a 150-layer model fits the terminal, gives sizes people
// read, keeps embedding tables out of the suggestions, says the optimizer is there and which
// flag takes it, and ends with a command that converts every suggested layer when pasted.
func TestInspectBigModel(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "vit_b_16_train.pt")
	vitTraining(t, in)
	const width = 80
	t.Setenv("COLUMNS", fmt.Sprint(width))
	code, out, stderr := pt2conv(t, "inspect", in)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for i, line := range strings.Split(out, "\n") {
		if w := runewidth.StringWidth(line); w > width {
			t.Errorf("line %d is %d columns wide, want at most %d:\n%s", i+1, w, width, line)
		}
	}
	for _, want := range []string{
		"TENSOR  ", " SIZE\n", "model/encoder.la…r_5.ln_1.weight", "1.5 KiB", // middle-truncated paths, human-readable sizes
		"612 tensors in 612 storages",
		"459 of the tensors are optimizer state, not listed",
		"optimizer: state of 153 parameters", "optimizer  --optimizer-key optimizer",
		"model      --state-dict model", "epoch  ", "299", "args  ", "dict of 2 entries",
		"Linear layers that can become Conv2d (37):",
		"Probably not Linear layers, left out of the command below (1):",
		"token_embedding  8   50   bias-less and named like an embedding",
	} {
		if !strings.Contains(out, want) && !strings.Contains(strings.ReplaceAll(out, "\n", " "), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// A table cannot fit 80 columns with every column: the narrow ones go, and it says so.
	if !strings.Contains(strings.ReplaceAll(out, "\n", " "), "OFFSET, STORAGE left out to fit 80 columns (--json has them)") {
		t.Errorf("no word on the columns left out")
	}
	for _, unwanted := range []string{"CONVERT WITH", "BYTES", "optimizer/state/", "--layer token_embedding"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("output holds %q", unwanted)
		}
	}
	if m := regexp.MustCompile(`(?m)^.*\d{4,}\s*$`).FindString(out); m != "" {
		t.Errorf("a raw byte count: %q", m)
	}

	code, only, _ := pt2conv(t, "inspect", "--candidates", in)
	if code != 0 || strings.Contains(only, "TENSOR") || strings.Contains(only, "CONTENTS") || !strings.Contains(only, "(37)") {
		t.Errorf("--candidates: exit %d, want only the Linear layers:\n%s", code, only)
	}
	args := pastedCommand(t, only)
	if fmt.Sprint(args) != fmt.Sprint(pastedCommand(t, out)) {
		t.Errorf("inspect and inspect --candidates suggest different commands")
	}
	for i, a := range args {
		if i > 0 && args[i-1] == "-o" {
			args[i] = filepath.Join(dir, a)
		}
	}
	code, conv, stderr := pt2conv(t, args...)
	if code != 0 {
		t.Fatalf("the pasted command failed: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(conv, "checks passed") || strings.Count(conv, "optimizer state of") != 2*37 {
		t.Errorf("the pasted command did not convert 37 layers with their optimizer state:\n%s", conv)
	}
	if stderr != "" {
		t.Errorf("warnings from the pasted command:\n%s", stderr)
	}
}

func TestTruncateMiddle(t *testing.T) {
	tests := []struct {
		in    string
		width int
		want  string
	}{
		{"encoder.layers.encoder_layer_11.mlp.0.weight", 30, "encoder.layers.…1.mlp.0.weight"},
		{"short", 10, "short"},
		{"abcdef", 5, "ab…ef"},
		{"abcdef", 1, "a"},
		{"日本語のテキスト", 9, "日本…スト"},
	}
	for _, tt := range tests {
		got := truncateMiddle(tt.in, tt.width)
		if got != tt.want || runewidth.StringWidth(got) > tt.width {
			t.Errorf("truncateMiddle(%q, %d) = %q, want %q", tt.in, tt.width, got, tt.want)
		}
	}
}

func TestWriteTableFits(t *testing.T) {
	cols := []column{{title: "PATH", shrink: cutMiddle, min: 8}, {title: "N"}, {title: "WHY", shrink: cutEnd, min: 6}}
	rows := [][]string{{"model/encoder.layers.encoder_layer_0.mlp.0.weight", "12", "a long explanation of the rule"}}
	tests := []struct {
		width int
		want  string
	}{
		{0, "PATH                                               N   WHY\nmodel/encoder.layers.encoder_layer_0.mlp.0.weight  12  a long explanation of the rule\n"},
		{70, "PATH                                               N   WHY\nmodel/encoder.layers.encoder_layer_0.mlp.0.weight  12  a long explana…\n"},
		{40, "PATH                          N   WHY\nmodel/encoder.….mlp.0.weight  12  a lon…\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		if _, err := writeTable(&b, tt.width, cols, rows); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("width %d:\n%s\nwant\n%s", tt.width, b.String(), tt.want)
		}
	}
}

// TestWriteAlignedIsTabwriter: writeAligned lays rows out as text/tabwriter does, for
// cells of any width, wide runes and empty cells included.
func TestWriteAlignedIsTabwriter(t *testing.T) {
	titles := []string{"TENSOR", "DTYPE", "RULE"}
	rows := [][]string{
		{"fc.weight", "float32", "in x 1 x 1"},
		{"", "", ""},
		{"日本語.weight", "bfloat16", ""},
		{"a", "x", "C=8 from features.3.weight"},
	}
	var want strings.Builder
	tw := tabwriter.NewWriter(&want, 0, 0, 2, ' ', 0)
	for _, r := range append([][]string{titles}, rows...) {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	var got strings.Builder
	if err := writeAligned(&got, titles, stringRows(rows)); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("got\n%q\nwant\n%q", got.String(), want.String())
	}
}
