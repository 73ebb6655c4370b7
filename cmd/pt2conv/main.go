// Command pt2conv turns the nn.Linear layers of PyTorch checkpoints into nn.Conv2d form,
// proves each conversion by running both forms, and writes checkpoints PyTorch loads.
//
// Exit codes: 0 done, 1 a verification failed, 2 bad input or usage.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes scripts depend on.
const (
	exitOK       = 0
	exitFailed   = 1 // a verification failed
	exitBadInput = 2 // bad input or usage
)

// exitError carries the exit code for an error; errors without one are bad input.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func failed(err error) error { return &exitError{code: exitFailed, err: err} }

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

type usageErr struct{ error }

func (u usageErr) Unwrap() error { return u.error }

func usageError(err error) error { return usageErr{err} }

// run executes the command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "pt2conv: %s\n", escapeText(err.Error()))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitBadInput
}

func main() {
	// Tables of 100,000 rows cost a write call per cell unbuffered. Whatever goes to stderr
	// flushes stdout first, so that the two keep their order.
	stdout := bufio.NewWriterSize(os.Stdout, 64<<10)
	code := run(os.Args[1:], stdout, flushingFirst{stdout, os.Stderr})
	if err := stdout.Flush(); err != nil && code == exitOK {
		fmt.Fprintf(os.Stderr, "pt2conv: writing the output: %v\n", err)
		code = exitBadInput
	}
	os.Exit(code)
}

// flushingFirst writes to w after flushing buf.
type flushingFirst struct {
	buf *bufio.Writer
	w   io.Writer
}

func (f flushingFirst) Write(p []byte) (int, error) {
	f.buf.Flush()
	return f.w.Write(p)
}
