package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestHelp: convert --help explains what a user has to know to write a command (spec forms,
// auto, globs, paths through lists, exit codes), and every command names its placeholders
// in the project's words (FILE, DIR, N, KEY), never Go's types.
func TestHelp(t *testing.T) {
	code, out, _ := pt2conv(t, "convert", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"NAME=CxHxW", "NAME=HxW", "NAME=auto", "in×1×1", "H = W = √(in/C)", "'classifier.*'",
		"shell globs", "optimizer_states/0", "--rename OLD=NEW", "inspect FILE --candidates",
		"Exit codes: 0 done; 1 --verify found a difference; 2 bad input or usage",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("convert --help lacks %q", want)
		}
	}
	typeName := regexp.MustCompile(`(?m)^\s+(-\w, )?--[\w-]+ (string|int|uint|uint64|int64|stringArray|float64)\b`)
	for _, cmd := range [][]string{{"--help"}, {"inspect", "--help"}, {"convert", "--help"}, {"verify", "--help"}} {
		_, out, _ := pt2conv(t, cmd...)
		if m := typeName.FindString(out); m != "" {
			t.Errorf("%s: a Go type as placeholder: %q", strings.Join(cmd, " "), strings.TrimSpace(m))
		}
		if strings.Contains(out, "`") {
			t.Errorf("%s: a backquote in the help", strings.Join(cmd, " "))
		}
	}
}

// TestCompletion: flag values complete from the input file (the Linear layers' specs, its
// optimizers and state_dicts, module names to rename) and from fixed choices, and the
// descriptions shells show carry no backquotes.
func TestCompletion(t *testing.T) {
	lightning := fixture("lightning.pt")
	tests := []struct {
		args []string
		want []string
		not  []string
	}{
		{[]string{"convert", lightning, "--layer", ""},
			[]string{"model.classifier.0=8x3x3\tauto: C=8 from model.features.3.weight", "model.classifier.3\t", "model.classifier.6\t"}, []string{"\nmodel.features"}},
		{[]string{"convert", fixture("shared.pt"), "--layer", ""}, []string{"decoder\t", "proj\t"}, []string{"embed\t"}},
		{[]string{"convert", lightning, "--optimizer-key", ""}, []string{"optimizer_states/0\t"}, nil},
		{[]string{"convert", lightning, "--state-dict", ""}, []string{"state_dict\t"}, nil},
		{[]string{"convert", lightning, "--rename", ""}, []string{"model.classifier.0=\n"}, nil},
		{[]string{"convert", lightning, "--to", ""}, []string{"conv\t", "linear\t"}, nil},
		{[]string{"convert", lightning, "--format", ""}, []string{"pt\t", "safetensors\t"}, nil},
		{[]string{"convert", "--layer", ""}, []string{":4\n"}, []string{"\t"}}, // no input yet: nothing to offer
		{[]string{"convert", "nosuchfile.pt", "--layer", ""}, []string{":4\n"}, []string{"\t"}},
		{[]string{"convert", lightning, "--"}, []string{"--output\twrite the result to FILE (one input)", "--layer\t"}, []string{"`"}},
		{[]string{"verify", "a", "b", "--"}, []string{"--seed\tseed N of the random inputs", "--grow\t"}, []string{"`"}},
	}
	for _, tt := range tests {
		code, out, stderr := pt2conv(t, append([]string{"__complete"}, tt.args...)...)
		if code != 0 {
			t.Errorf("%q: exit %d: %s", tt.args, code, stderr)
		}
		for _, want := range tt.want {
			if !strings.Contains(out, want) {
				t.Errorf("%q: completions lack %q:\n%s", tt.args, want, out)
			}
		}
		for _, not := range tt.not {
			if strings.Contains(out, not) {
				t.Errorf("%q: completions hold %q:\n%s", tt.args, not, out)
			}
		}
	}
}

// The README's synopsis names every flag of every command.
func TestReadmeListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(readme), "## Commands\n\n```\n")
	synopsis, _, _ := strings.Cut(rest, "```")
	if synopsis == "" {
		t.Fatal("README has no synopsis under ## Commands")
	}
	root := newRootCommand(io.Discard, io.Discard)
	for _, name := range []string{"inspect", "convert", "verify"} {
		cmd, _, err := root.Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" && !strings.Contains(synopsis, "--"+f.Name) && (f.Shorthand == "" || !strings.Contains(synopsis, "-"+f.Shorthand+" ")) {
				t.Errorf("README's synopsis lacks %s --%s", name, f.Name)
			}
		})
	}
}
