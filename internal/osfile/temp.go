package osfile

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// TempPrefix is how temporary files for dir/base begin: ".<base>.pt2conv-tmp-". The full
// name is TempPrefix(base) + "<pid>-<random>": the process id lets a later write to the
// same target delete what a killed writer left behind, without touching the temporary file
// of a writer that is still running. The leading dot hides it from ls and shell globs.
func TempPrefix(base string) string { return "." + base + ".pt2conv-tmp-" }

// CreateTemp creates a new temporary file in dir for the target dir/base, opened for
// reading and writing with mode 0600.
func CreateTemp(dir, base string) (*os.File, error) {
	return os.CreateTemp(dir, TempPrefix(base)+strconv.Itoa(os.Getpid())+"-*")
}

// RemoveStaleTemps deletes the temporary files for dir/base whose writer process is gone.
// It is best effort: files it cannot read, judge or remove are left alone.
func RemoveStaleTemps(dir, base string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := TempPrefix(base)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		os.Remove(filepath.Join(dir, e.Name()))
	}
}
