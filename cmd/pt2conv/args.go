package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// The argument checks say in the command's own words what it takes, instead of cobra's
// "accepts 2 arg(s), received 1".

func argsInspect(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 1:
		return nil
	case 0:
		return usageError(fmt.Errorf("inspect needs the checkpoint to read: pt2conv inspect FILE (see '%s --help')", cmd.CommandPath()))
	}
	return usageError(fmt.Errorf("inspect reads one file, got %d (%s); run it once per file", len(args), argList(args)))
}

func argsVerify(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 2:
		return nil
	case 0:
		return usageError(fmt.Errorf("verify needs two files: pt2conv verify ORIGINAL CONVERTED (see '%s --help')", cmd.CommandPath()))
	case 1:
		return usageError(fmt.Errorf("verify needs two files, the original and the converted one; got only %s: pt2conv verify ORIGINAL CONVERTED", args[0]))
	}
	return usageError(fmt.Errorf("verify compares two files, got %d (%s): pt2conv verify ORIGINAL CONVERTED", len(args), argList(args)))
}

func argsConvert(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return usageError(fmt.Errorf("convert needs an input: pt2conv convert IN -o OUT, or convert IN... --out-dir DIR (see '%s --help')", cmd.CommandPath()))
	}
	return nil
}

// argList names a few arguments for a message.
func argList(args []string) string {
	const most = 4
	if len(args) <= most {
		return strings.Join(args, ", ")
	}
	return strings.Join(args[:most], ", ") + fmt.Sprintf(", … (%d more)", len(args)-most)
}
