package main

import (
	"strings"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/ckptio"
	"github.com/pt2conv/pt2conv/rewrite"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// registerConvertCompletions completes the values of convert's flags: --layer with the specs
// of the first input's Linear layers (what inspect --candidates prints), --optimizer-key and
// --state-dict with the paths it holds, --rename with its module names, and the fixed
// choices of --to and --format.
func registerConvertCompletions(cmd *cobra.Command) {
	fixed := func(values ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return values, cobra.ShellCompDirectiveNoFileComp
		}
	}
	_ = cmd.RegisterFlagCompletionFunc("to", fixed("conv\tLinear to Conv2d", "linear\tConv2d back to Linear"))
	_ = cmd.RegisterFlagCompletionFunc("format", fixed("pt\ttorch's zip format", "safetensors\tsafetensors"))
	_ = cmd.RegisterFlagCompletionFunc("layer", fromInput(func(c *checkpoint.Checkpoint) []string {
		var out []string
		for _, cand := range rewrite.Candidates(c) {
			if cand.NotLinear != "" {
				continue
			}
			out = append(out, cand.Spec+"\t"+completionText(cand.Rule))
		}
		return out
	}))
	_ = cmd.RegisterFlagCompletionFunc("optimizer-key", fromInput(func(c *checkpoint.Checkpoint) []string {
		var out []string
		for _, o := range rewrite.Optimizers(c) {
			out = append(out, o.Path.String()+"\toptimizer state")
		}
		return out
	}))
	_ = cmd.RegisterFlagCompletionFunc("state-dict", fromInput(func(c *checkpoint.Checkpoint) []string {
		var out []string
		for _, p := range rewrite.StateDicts(c) {
			if len(p) > 0 {
				out = append(out, p.String()+"\tstate_dict")
			}
		}
		return out
	}))
	_ = cmd.RegisterFlagCompletionFunc("rename", func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if strings.Contains(toComplete, "=") {
			return nil, cobra.ShellCompDirectiveNoFileComp // NEW is the user's own name
		}
		values, _ := fromInput(func(c *checkpoint.Checkpoint) []string {
			var out []string
			for _, cand := range rewrite.Candidates(c) {
				if cand.Layer != "" {
					out = append(out, cand.Layer+"=")
				}
			}
			return out
		})(cmd, args, toComplete)
		return values, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	})
	_ = cmd.MarkFlagFilename("plan", "yaml", "yml", "json")
	_ = cmd.MarkFlagDirname("out-dir")
}

// fromInput completes a flag's value from the command line's first input file; nothing when
// there is none yet or it cannot be read (completion never prints errors).
func fromInput(values func(*checkpoint.Checkpoint) []string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := ckptio.Open(args[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer c.Close()
		return values(c), cobra.ShellCompDirectiveNoFileComp
	}
}

// completionText makes a description safe for a completion menu: one line of printable text.
func completionText(s string) string {
	return strings.Join(strings.Fields(escapeText(s)), " ")
}

// plainUsage takes the backquotes that name flag placeholders in --help (`FILE`) out of
// the flags' descriptions, which shell completion shows as they are.
func plainUsage(root *cobra.Command) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		strip := func(f *pflag.Flag) { f.Usage = strings.ReplaceAll(f.Usage, "`", "") }
		c.Flags().VisitAll(strip)
		c.PersistentFlags().VisitAll(strip)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
