//go:build !unix

package osfile

import (
	"errors"
	"os"
)

// mapFile is not offered here: a mapped view on windows pins the file against renames and
// truncation by others, which Publish relies on, so callers read through a buffer.
func mapFile(f *os.File, size int) ([]byte, error) {
	return nil, errors.ErrUnsupported
}

func unmapFile(data []byte) error { return nil }

func madvisePopulate(b []byte) error { return nil }
