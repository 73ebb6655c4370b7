package osfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteAtomic writes the file path with write, atomically: write fills a new temporary
// file beside path, which is then synced, given path's mode (0644 for a new file), moved
// into place and its directory synced, so that path holds either its old content or the
// complete new file. Without replace an existing path is refused with an error matching
// fs.ErrExist. When write or any later step fails, the temporary file is removed.
// Temporary files that killed writers left for path are removed first.
func WriteAtomic(path string, replace bool, write func(f *os.File) error) (err error) {
	mode := fs.FileMode(0o644)
	switch fi, err := os.Stat(path); {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%s: is a directory; give a file name", path)
	case err == nil && !replace:
		return fmt.Errorf("%s: %w", path, fs.ErrExist)
	case err == nil:
		mode = fi.Mode().Perm()
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	RemoveStaleTemps(dir, base)
	tmp, err := CreateTemp(dir, base)
	if err != nil {
		if pe, ok := err.(*os.PathError); ok {
			err = pe.Err
		}
		return fmt.Errorf("%s: cannot create the output: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if err = write(tmp); err != nil {
		return err
	}
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = Publish(tmpName, path, replace); err != nil {
		return err
	}
	return SyncDir(dir)
}
