package main

import (
	"errors"
	"fmt"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/pickle"
	"github.com/pt2conv/pt2conv/verify"
	"github.com/spf13/cobra"
)

func newVerifyCommand() *cobra.Command {
	var asJSON bool
	var opts verify.Options
	cmd := &cobra.Command{
		Use:   "verify ORIGINAL CONVERTED",
		Short: "Prove that the converted layers of CONVERTED compute what ORIGINAL's do",
		Long: `verify finds the layers that differ between the two checkpoints only in shape (2-D in one,
4-D in the other, same elements), runs Linear and Conv2d on seeded random inputs, on sliding
windows of a larger input, and through chains of converted layers, and compares the results.
Exit 0 when every check passes, 1 when any fails, 2 on bad input.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			orig, err := pickle.Open(args[0])
			if err != nil {
				return err
			}
			defer orig.Close()
			conv, err := pickle.Open(args[1])
			if err != nil {
				return err
			}
			defer conv.Close()
			mapForVerify(orig, conv)
			rep, err := verify.Check(orig, conv, opts)
			if err != nil {
				return fmt.Errorf("%s: %w", args[1], err)
			}
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else {
				printVerify(cmd.OutOrStdout(), rep)
			}
			if len(rep.Results) == 0 {
				return errors.New(args[1] + ": no converted layers found: no tensor is 2-D in one file and 4-D in the other with the same elements")
			}
			if !rep.Passed() {
				return failed(fmt.Errorf("%s: verification failed", args[1]))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON report")
	cmd.Flags().Uint64Var(&opts.Seed, "seed", 1, "seed of the random inputs")
	cmd.Flags().IntVar(&opts.Samples, "samples", 2, "random inputs per check")
	cmd.Flags().IntVar(&opts.Grow, "grow", 2, "the sliding and chain checks run on a C×(H+`N`)×(W+N) input, (N+1)² windows")
	return cmd
}

// testHookMapped, when set, runs once the checkpoints are mapped, before they are checked.
var testHookMapped func()

// mapForVerify maps both files so that verify uses their weights where they lie instead of
// reading them into memory; a file that cannot be mapped is read as before.
func mapForVerify(orig, conv *checkpoint.Checkpoint) {
	_ = orig.Map()
	_ = conv.Map()
	if testHookMapped != nil {
		testHookMapped()
	}
}
