package osfile_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/internal/osfile"
)

// writeTemp makes a finished temporary file for dir/base holding content, as a writer
// would before Publish.
func writeTemp(t *testing.T, dir, base, content string) string {
	t.Helper()
	f, err := osfile.CreateTemp(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	osfile.StartWriteback(f, 0, int64(len(content)))
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func gone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still exists (%v)", path, err)
	}
}

func TestCreateTempName(t *testing.T) {
	dir := t.TempDir()
	tmp := writeTemp(t, dir, "model.pt", "x")
	want := filepath.Join(dir, osfile.TempPrefix("model.pt")+strconv.Itoa(os.Getpid())+"-")
	if !strings.HasPrefix(tmp, want) {
		t.Errorf("temporary file %s, want prefix %s", tmp, want)
	}
}

func TestPublish(t *testing.T) {
	tests := []struct {
		name     string
		existing string // "" for no file at the target
		replace  bool
		want     string // the target's content afterwards
		wantErr  error
	}{
		{name: "new", want: "new"},
		{name: "new with replace", replace: true, want: "new"},
		{name: "replace", existing: "old", replace: true, want: "new"},
		{name: "exists", existing: "old", want: "old", wantErr: fs.ErrExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.pt")
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tmp := writeTemp(t, dir, "out.pt", "new")
			err := osfile.Publish(tmp, path, tt.replace)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Publish: %v, want %v", err, tt.wantErr)
			}
			if got := readFile(t, path); got != tt.want {
				t.Errorf("target holds %q, want %q", got, tt.want)
			}
			if err == nil {
				gone(t, tmp)
				if err := osfile.SyncDir(dir); err != nil {
					t.Errorf("SyncDir: %v", err)
				}
			}
		})
	}
}

// TestPublishOverOpenFile replaces a target another handle holds open. Unix renames over
// it and the reader keeps the old bytes; windows refuses with ErrInUse and keeps the
// target whole.
func TestPublishOverOpenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.pt")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	reader, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	tmp := writeTemp(t, dir, "out.pt", "new")
	err = osfile.Publish(tmp, path, true)

	if runtime.GOOS == "windows" {
		if !errors.Is(err, osfile.ErrInUse) {
			t.Fatalf("Publish over an open file: %v, want ErrInUse", err)
		}
		if got := readFile(t, path); got != "old" {
			t.Errorf("target holds %q after a refused replace, want the old content", got)
		}
		reader.Close()
		if err := osfile.Publish(tmp, path, true); err != nil {
			t.Fatalf("Publish once the file is closed: %v", err)
		}
	} else if err != nil {
		t.Fatalf("Publish over an open file: %v", err)
	}
	if got := readFile(t, path); got != "new" {
		t.Errorf("target holds %q, want the new content", got)
	}
	gone(t, tmp)
}

func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	// A process that has exited. (Not this test binary: under user-mode emulation the
	// kernel could not start it.)
	cmd := exec.Command("true")
	if runtime.GOOS == "windows" {
		cmd = exec.Command(os.Args[0], "-test.run=^$")
	}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	alive := os.Getppid()
	name := func(base string, pid int) string {
		return filepath.Join(dir, osfile.TempPrefix(base)+strconv.Itoa(pid)+"-123")
	}
	files := map[string]bool{ // path: whether RemoveStaleTemps should keep it
		name("out.pt", dead):                                  false,
		name("out.pt", alive):                                 true,
		name("out.pt", os.Getpid()):                           true,
		name("other.pt", dead):                                true, // another target's
		filepath.Join(dir, "out.pt"):                          true,
		name("out.pt", 0):                                     true, // not a pid
		filepath.Join(dir, osfile.TempPrefix("out.pt")+"x-1"): true,
	}
	for path := range files {
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	osfile.RemoveStaleTemps(dir, "out.pt")
	for path, keep := range files {
		_, err := os.Lstat(path)
		if keep && err != nil {
			t.Errorf("%s was removed (%v)", filepath.Base(path), err)
		}
		if !keep && err == nil {
			t.Errorf("%s (pid %d has exited) was kept", filepath.Base(path), dead)
		}
	}
}

func TestSyncDirMissing(t *testing.T) {
	err := osfile.SyncDir(filepath.Join(t.TempDir(), "missing"))
	if runtime.GOOS != "windows" && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncDir of a missing directory: %v, want ErrNotExist", err)
	}
}
