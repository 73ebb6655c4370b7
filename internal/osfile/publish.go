//go:build !windows

package osfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Publish moves the finished, synced and closed temporary file tmp to path. With replace
// it renames over whatever is at path; without, it fails with an error matching
// fs.ErrExist when path exists, also when a file appeared there after the caller last
// looked. It links instead of renaming for that, and falls back to rename on file systems
// without hard links. Call SyncDir on path's directory afterwards to make the move durable.
func Publish(tmp, path string, replace bool) error {
	if !replace {
		err := os.Link(tmp, path)
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		if err == nil {
			return os.Remove(tmp)
		}
	}
	return os.Rename(tmp, path)
}

// SyncDir makes the entries of dir, a file's creation or renaming, durable. File systems
// that cannot sync a directory are taken at their word that they need not.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
