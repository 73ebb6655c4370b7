package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/ckptio"
	"github.com/pt2conv/pt2conv/verify"
	"github.com/spf13/cobra"
)

func newVerifyCommand() *cobra.Command {
	var asJSON bool
	var opts verify.Options
	cmd := &cobra.Command{
		Use:   "verify ORIGINAL CONVERTED",
		Short: "Prove that CONVERTED is ORIGINAL with layers reshaped, and that they compute the same",
		Long: `verify proves, exactly, that CONVERTED holds everything ORIGINAL holds bit for bit (values,
key order, _metadata, optimizer state, tensors through their views, shared storages, every
storage byte), except that the converted weights (2-D in one file, 4-D in the other) have new
sizes and strides over the same elements in the same order.

The C×H×W split of each converted Linear is an assumption about the model: verify states it
and compares it with what the original checkpoint says (the nearest conv or norm layer before
it, or a Linear whose outputs feed it); a split that disagrees fails unless --assume.

Then it runs Linear and Conv2d on seeded random inputs, on sliding windows of a larger input,
and through chains of converted layers, and compares the results against a float32
rounding-error tolerance. Either file may be a .pt, a .safetensors file or a sharded
checkpoint's index. Exit 0 when every check passes, 1 when any fails, 2 on bad input.`,
		Example: `  pt2conv verify vgg16.pth fcn.pth
  pt2conv verify vgg16.pth fcn.pth --grow 4 --samples 8 --seed 7 --json`,
		Args: argsVerify,
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := runVerify(args[0], args[1], opts)
			if asJSON {
				if werr := writeJSON(cmd.OutOrStdout(), newVerifyDocument(args[0], args[1], rep, err)); werr != nil && err == nil {
					return withKind(kindIO, werr)
				}
			} else if rep != nil {
				_ = buffered(cmd.OutOrStdout(), func(w io.Writer) error { printVerify(w, rep); return nil })
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON report")
	cmd.Flags().Uint64Var(&opts.Seed, "seed", 1, "seed `N` of the random inputs")
	cmd.Flags().IntVar(&opts.Samples, "samples", 2, "run each check on `N` random inputs")
	cmd.Flags().BoolVar(&opts.Assume, "assume", false, "accept C×H×W splits that disagree with the checkpoint's evidence")
	cmd.Flags().IntVar(&opts.Grow, "grow", 2, "the sliding and chain checks run on a C×(H+`N`)×(W+N) input, (N+1)² windows")
	return cmd
}

// runVerify checks converted against original. The report is nil when the files could not
// be compared at all.
func runVerify(original, converted string, opts verify.Options) (*verify.Report, error) {
	orig, err := ckptio.Open(original)
	if err != nil {
		return nil, inputError(original, err)
	}
	defer orig.Close()
	conv, err := ckptio.Open(converted)
	if err != nil {
		return nil, inputError(converted, err)
	}
	defer conv.Close()
	mapForVerify(orig, conv)
	rep, err := verify.Check(orig, conv, opts)
	if err != nil {
		if msg := err.Error(); strings.HasPrefix(msg, original+": ") || strings.HasPrefix(msg, converted+": ") {
			return nil, err // it names its file already
		}
		return nil, fmt.Errorf("%s: %w", converted, err)
	}
	if len(rep.Results) == 0 {
		return rep, errors.New(converted + ": no converted layers found: no tensor is 2-D in one file and 4-D in the other with the same elements")
	}
	if !rep.Passed() {
		why := "the converted layers do not compute what the originals do"
		for _, l := range rep.Layers {
			if l.Status == verify.EvidenceDisagrees {
				why = fmt.Sprintf("%s assumes its input is %s, but %s; if the model does feed it that, pass --assume to accept the split", l.Name, l.Input, l.Evidence)
			}
		}
		if st := rep.Structure; st != nil && !st.Passed() {
			why = fmt.Sprintf("%d differences from the original, first %s", len(st.Differences)+st.More, st.Differences[0])
		}
		return rep, failed(fmt.Errorf("%s: verification failed: %s", converted, why))
	}
	return rep, nil
}

// testHookMapped, when set, runs once the checkpoints are mapped, before they are checked.
var testHookMapped func()

// maxMappedFile is the largest file verify maps. Mapping saves a system call per small
// tensor read, but every page verify touches then counts in the process's resident memory:
// checking every layer of a checkpoint of many small tensors touches nearly all of the
// file. Larger files are read a block at a time, which costs a little more time and no
// memory.
const maxMappedFile = 32 << 20

// mapForVerify maps both files, when they are small enough, so that verify reads their
// small tensors where they lie; a file that is not mapped is read as before.
func mapForVerify(orig, conv *checkpoint.Checkpoint) {
	for _, c := range []*checkpoint.Checkpoint{orig, conv} {
		if _, size := c.Source(); size <= maxMappedFile {
			_ = c.Map()
		}
	}
	if testHookMapped != nil {
		testHookMapped()
	}
}
