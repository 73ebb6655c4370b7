package pickle

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Save writes into ".<base>.pt2conv-tmp-<pid>-<random>" beside the target. The process id
// in the name lets a later Save of the same target delete what a killed writer left
// behind, without touching the temporary file of a writer that is still running.
func tempPrefix(base string) string { return "." + base + ".pt2conv-tmp-" }

func createTemp(dir, base string) (*os.File, error) {
	return os.CreateTemp(dir, tempPrefix(base)+strconv.Itoa(os.Getpid())+"-*")
}

// removeStaleTemps deletes the temporary files of earlier Saves to dir/base whose
// process is gone.
func removeStaleTemps(dir, base string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := tempPrefix(base)
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

// tempError names the target, not the temporary file, when the temporary cannot be made.
func tempError(path string, err error) error {
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err
	}
	return fmt.Errorf("%s: cannot create the output: %w", path, err)
}
