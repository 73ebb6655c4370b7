//go:build unix

package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// writable says why files cannot be made in dir (a read-only directory or file system), as
// access(2) judges it for this process, so that a dry run finds what writing would.
func writable(dir string) error {
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("cannot write in %s: %w", dir, err)
	}
	return nil
}
