package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/pt2conv/pt2conv/internal/ckptio"
	"github.com/pt2conv/pt2conv/pickle"
	"github.com/pt2conv/pt2conv/safetensors"
)

// errKind is the category of a failure. Scripts read it from the JSON documents' error
// objects; it also decides the exit code.
type errKind string

const (
	kindUsage        errKind = "usage"         // the command line is wrong
	kindBadInput     errKind = "bad_input"     // an input file cannot be read or converted as asked
	kindExists       errKind = "exists"        // the output exists and neither --force nor --skip-existing was given
	kindVerifyFailed errKind = "verify_failed" // a verification failed
	kindIO           errKind = "io"            // writing the output failed
)

// exitCode is the process exit code of a failure of this kind.
func (k errKind) exitCode() int {
	if k == kindVerifyFailed {
		return exitFailed
	}
	return exitBadInput
}

// kindError carries the category of an error.
type kindError struct {
	kind errKind
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

func withKind(k errKind, err error) error {
	if err == nil {
		return nil
	}
	return &kindError{kind: k, err: err}
}

func usageError(err error) error { return withKind(kindUsage, err) }

func failed(err error) error { return withKind(kindVerifyFailed, err) }

// kindOf is the category of err: the one it carries, else exists or bad input by what it
// wraps.
func kindOf(err error) errKind {
	var ke *kindError
	switch {
	case errors.As(err, &ke):
		return ke.kind
	case errors.Is(err, ckptio.ErrExists), errors.Is(err, pickle.ErrExists), errors.Is(err, safetensors.ErrExists):
		return kindExists
	}
	return kindBadInput
}

// saveErrorKind tells a failed save that found the input broken (a storage that ends early)
// from one that could not write.
func saveErrorKind(err error) errKind {
	for _, bad := range []error{pickle.ErrNotCheckpoint, pickle.ErrTruncated, pickle.ErrCorrupt, pickle.ErrLimit,
		pickle.ErrUnsupported, pickle.ErrSameFile, safetensors.ErrSameFile, safetensors.ErrTruncated,
		safetensors.ErrCorrupt, safetensors.ErrUnsupported, safetensors.ErrNotStateDict} {
		if errors.Is(err, bad) {
			return kindBadInput
		}
	}
	return kindOf(withKind(kindIO, err))
}

// inputError rewrites an error opening an input so that it says what to do: a name the
// shell left unexpanded because nothing matched, or a file that is not there.
func inputError(path string, err error) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != path || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if strings.ContainsAny(path, "*?[") {
		return fmt.Errorf("%s: no file matches this pattern (the shell passed it on unexpanded); check the directory and the pattern", path)
	}
	return fmt.Errorf("%s: no such file", path)
}

// reworded is an error said in other words, still wrapping the original.
type reworded struct {
	msg string
	err error
}

func (e *reworded) Error() string { return e.msg }
func (e *reworded) Unwrap() error { return e.err }
