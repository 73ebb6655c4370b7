package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pt2conv/pt2conv/internal/ckptio"
)

// checkOutput makes, before the input is read, every check on where a file goes that
// writing it would make, so that a dry run fails where the real run would and an error
// about the output does not come after the whole plan. skip is true when the output exists
// and --skip-existing leaves it alone.
func checkOutput(j job, o *convertOptions) (skip bool, err error) {
	if j.out == "" {
		return false, nil
	}
	st, err := os.Stat(j.out)
	switch {
	case err == nil:
		if in, err := os.Stat(j.in); err == nil && os.SameFile(in, st) {
			other := "give another output"
			if o.outDir != "" {
				other = "write to another --out-dir"
			}
			return false, usageError(fmt.Errorf("%s: the output is the input file; pt2conv never changes its input: %s", j.in, other))
		}
		if st.IsDir() {
			if o.outDir != "" {
				return false, withKind(kindIO, fmt.Errorf("%s: the output %s is a directory; remove it or use another --out-dir", j.in, j.out))
			}
			return false, usageError(fmt.Errorf("%s: the output %s is a directory; give a file name (-o %s)", j.in, j.out, filepath.Join(j.out, filepath.Base(j.in))))
		}
		if o.skipExisting {
			return true, nil
		}
		if !o.force {
			return false, withKind(kindExists, fmt.Errorf("%s: %w", j.in, existsError(j.out)))
		}
		if err := writable(filepath.Dir(j.out)); err != nil { // the new file is moved in beside it
			return false, withKind(kindIO, fmt.Errorf("%s: cannot replace %s: %w", j.in, j.out, err))
		}
		return false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return false, withKind(kindIO, fmt.Errorf("%s: output %w", j.in, err))
	}
	dir := filepath.Dir(j.out)
	if o.dryRun && o.outDir != "" && filepath.Clean(o.outDir) == dir || ckptio.IsIndex(j.out) {
		// A sharded set's directory is made with it, as --out-dir is: it needs a place to be made.
		if err := creatable(dir); err != nil {
			return false, withKind(kindIO, fmt.Errorf("%s: cannot write %s: %w", j.in, j.out, err))
		}
		return false, nil
	}
	if err := checkDir(dir); err != nil {
		return false, withKind(kindIO, fmt.Errorf("%s: cannot write %s: %w", j.in, j.out, err))
	}
	return false, nil
}

// existsError is the message for an output in the way.
func existsError(out string) error {
	return fmt.Errorf("%s exists; pass --force to replace it, or --skip-existing to keep it", out)
}

// checkDir says what is wrong when dir is not an existing directory.
func checkDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("directory %s does not exist; create it first (mkdir -p %s)", dir, shellQuote(dir))
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	return writable(dir)
}

// prepareOutDir makes --out-dir and its parents; a dry run only checks that they can be
// made.
func prepareOutDir(dir string, dryRun bool) error {
	if err := creatable(dir); err != nil {
		return withKind(kindIO, fmt.Errorf("--out-dir %s: %w", dir, err))
	}
	if dryRun {
		return nil
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return withKind(kindIO, fmt.Errorf("--out-dir %s: %w", dir, unwrapPath(err)))
	}
	return nil
}

// creatable says what is wrong when dir neither is a directory nor can be made one: the
// nearest existing ancestor must be a directory.
func creatable(dir string) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		switch {
		case err == nil && st.IsDir():
			return writable(d)
		case err == nil:
			return fmt.Errorf("%s is a file, not a directory", d)
		case !errors.Is(err, fs.ErrNotExist):
			return unwrapPath(err)
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

// unwrapPath is the message of a *fs.PathError without its operation, when the path is
// said already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}
