package osfile

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/windows"
)

// publishRetry is how long Publish keeps retrying a target that is in use: virus scanners
// and search indexers open new files for a moment, and that should not fail a write.
const publishRetry = 2 * time.Second

// Publish moves the finished, synced and closed temporary file tmp to path with MoveFileEx,
// written through to the disk before it returns. With replace it replaces whatever is at
// path; without, it fails with an error matching fs.ErrExist when path exists. A target
// held open by another program is retried for a moment, then reported as ErrInUse; path
// keeps its old content and tmp is left for the caller to remove.
func Publish(tmp, path string, replace bool) error {
	from, err := windows.UTF16PtrFromString(tmp)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: path, Err: err}
	}
	to, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: path, Err: err}
	}
	flags := uint32(windows.MOVEFILE_WRITE_THROUGH)
	if replace {
		flags |= windows.MOVEFILE_REPLACE_EXISTING
	}
	deadline := time.Now().Add(publishRetry)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err = windows.MoveFileEx(from, to, flags)
		if err == nil {
			return nil
		}
		if !inUse(err) {
			return &os.LinkError{Op: "rename", Old: tmp, New: path, Err: err}
		}
		if time.Now().After(deadline) {
			return &os.PathError{Op: "replace", Path: path, Err: errInUse{err}}
		}
		time.Sleep(wait)
	}
}

func inUse(err error) bool {
	return errors.Is(err, windows.ERROR_ACCESS_DENIED) ||
		errors.Is(err, windows.ERROR_SHARING_VIOLATION) ||
		errors.Is(err, windows.ERROR_LOCK_VIOLATION)
}

// errInUse is ErrInUse with the system's own words behind it.
type errInUse struct{ sys error }

func (e errInUse) Error() string   { return ErrInUse.Error() + " (" + e.sys.Error() + ")" }
func (e errInUse) Unwrap() []error { return []error{ErrInUse, e.sys} }

// SyncDir does nothing on windows: a directory cannot be opened for syncing there, and
// Publish wrote the move through to the disk already.
func SyncDir(dir string) error { return nil }
