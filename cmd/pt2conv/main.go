// Command pt2conv turns the nn.Linear layers of PyTorch checkpoints into nn.Conv2d form,
// proves each conversion by running both forms, and writes checkpoints PyTorch loads.
//
// Exit codes: 0 done, 1 a verification failed, 2 bad input or usage.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pt2conv/pt2conv/internal/memlimit"
)

// Exit codes scripts depend on.
const (
	exitOK       = 0
	exitFailed   = 1 // a verification failed
	exitBadInput = 2 // bad input or usage
)

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "pt2conv",
		Short: "Turn the Linear layers of PyTorch checkpoints into Conv2d form, and prove it",
		Long: `pt2conv opens PyTorch checkpoints (.pt/.pth/.bin: state_dicts and training checkpoints that
nest them), safetensors files and sharded checkpoints (*.index.json), rewrites chosen nn.Linear
weights into nn.Conv2d form, runs both forms to prove each conversion, and writes a checkpoint
that PyTorch loads, in torch's format or as safetensors. Storage bytes are copied untouched.`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("pt2conv {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError(fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath()))
	})
	root.AddCommand(newInspectCommand(), newConvertCommand(), newVerifyCommand())
	return root
}

// run executes the command line and returns the process exit code. A failure is one line
// on stderr; with --json or --json-lines, a command that failed before it could print its
// document prints one that carries the error, so that stdout always holds exactly one.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(&writeCounter{w: stdout}, stderr)
	out := root.OutOrStdout().(*writeCounter)
	if len(args) > 0 && strings.HasPrefix(args[0], cobra.ShellCompRequestCmd) {
		plainUsage(root)
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "pt2conv: %s\n", escapeText(err.Error()))
	if asJSON, lines := jsonRequested(args); (asJSON || lines) && out.n == 0 && cmd != nil {
		name := ""
		if cmd != root {
			name = cmd.Name()
		}
		dryRun, _ := cmd.Flags().GetBool("dry-run")
		doc := errorDocument(name, cmd.Flags().Args(), dryRun, err)
		if lines && name == "convert" {
			_ = writeJSONLine(stdout, summaryLine{SchemaVersion: schemaVersion, Command: name, Type: "summary",
				DryRun: dryRun, Files: 0, ExitCode: exitCodeOf(err), Error: errorInfoOf(err)})
		} else {
			_ = writeJSON(stdout, doc)
		}
	}
	return exitCodeOf(err)
}

// writeCounter counts what is written through it.
type writeCounter struct {
	w io.Writer
	n int64
}

func (c *writeCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func main() {
	memlimit.Start(memlimit.DefaultBudget)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
