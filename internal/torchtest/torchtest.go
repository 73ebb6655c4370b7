// Package torchtest lets Go tests run real PyTorch: the host's torch 1.x and torch 2.x inside a
// Debian chroot (made by scripts/torch-chroot.sh). PyTorch is the judge of whether a checkpoint
// pt2conv wrote loads and holds what it should.
//
// Where torch lives comes from the environment:
//
//	PT2CONV_TORCH113       the host's python3 with torch 1.x (default /usr/bin/python3)
//	PT2CONV_TORCH26_ROOT   the chroot with torch 2.x (default /opt/torch26)
//	PT2CONV_REQUIRE_TORCH  1: a missing torch fails the test instead of skipping it
//	CI                     true: the same as PT2CONV_REQUIRE_TORCH=1
//
// Setting a location variable to the empty string turns that torch off.
package torchtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables that say where torch is.
const (
	EnvTorch113     = "PT2CONV_TORCH113"
	EnvTorch26Root  = "PT2CONV_TORCH26_ROOT"
	EnvRequireTorch = "PT2CONV_REQUIRE_TORCH"
)

const (
	defaultTorch113    = "/usr/bin/python3"
	defaultTorch26Root = "/opt/torch26"
	// runTimeout bounds one python run so that a wedged interpreter fails a test instead of
	// hanging the whole go test binary.
	runTimeout = 5 * time.Minute
)

// A Torch is one Python interpreter with PyTorch, on the host or inside a chroot.
type Torch struct {
	// Name says which it is: "torch113" (host) or "torch26" (chroot).
	Name string
	// Version is torch.__version__, such as "1.13.0a0" or "2.6.0+debian".
	Version string

	python string // interpreter; inside the chroot when root is set
	root   string // chroot directory, or "" for the host
}

func (tr *Torch) String() string {
	if tr.root != "" {
		return fmt.Sprintf("torch %s (chroot %s)", tr.Version, tr.root)
	}
	return fmt.Sprintf("torch %s (%s)", tr.Version, tr.python)
}

// Chrooted reports whether the interpreter runs inside a chroot, where host paths need Share.
func (tr *Torch) Chrooted() bool { return tr.root != "" }

type probe struct {
	torches []*Torch
	missing []string // why each absent torch is absent
}

var (
	probeOnce   sync.Once
	probeResult probe
)

// All returns every torch this machine has, 1.x first. If one is missing, All fails the test
// when PT2CONV_REQUIRE_TORCH=1 or CI=true, and otherwise returns the others, skipping the test
// when there are none.
func All(t testing.TB) []*Torch {
	t.Helper()
	probeOnce.Do(func() { probeResult = discover() })
	p := probeResult
	if len(p.missing) > 0 {
		msg := "torch unavailable: " + strings.Join(p.missing, "; ")
		switch {
		case Required():
			t.Fatal(msg)
		case len(p.torches) == 0:
			t.Skip(msg)
		default:
			t.Log(msg)
		}
	}
	return p.torches
}

// Required reports whether tests must fail, not skip, when torch is missing.
func Required() bool {
	return os.Getenv(EnvRequireTorch) == "1" || os.Getenv("CI") == "true"
}

func discover() probe {
	var p probe
	candidates := []*Torch{}
	if python := envOr(EnvTorch113, defaultTorch113); python != "" {
		candidates = append(candidates, &Torch{Name: "torch113", python: python})
	} else {
		p.missing = append(p.missing, EnvTorch113+" is empty")
	}
	if root := envOr(EnvTorch26Root, defaultTorch26Root); root != "" {
		candidates = append(candidates, &Torch{Name: "torch26", python: "python3", root: root})
	} else {
		p.missing = append(p.missing, EnvTorch26Root+" is empty")
	}
	for _, tr := range candidates {
		out, err := tr.Output(versionProbe)
		if err != nil {
			p.missing = append(p.missing, fmt.Sprintf("%s: %v", tr.Name, err))
			continue
		}
		tr.Version = strings.TrimSpace(string(out))
		p.torches = append(p.torches, tr)
	}
	return p
}

// versionProbe prints torch's version without importing torch, which takes seconds.
const versionProbe = `import importlib.util, os
spec = importlib.util.find_spec("torch")
if spec is None:
    raise SystemExit("torch is not installed")
ns = {}
exec(open(os.path.join(os.path.dirname(spec.origin), "version.py")).read(), ns)
print(ns["__version__"])`

func envOr(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return fallback
}

// Run runs script with args and returns its standard output, failing the test if it exits
// non-zero. script is either a path ending in ".py" (absolute, or relative to the repository
// root, like "scripts/torchcheck.py"), which Run shares with the interpreter itself, or Python
// source code. Paths among args must already be as the interpreter sees them: see Share.
func (tr *Torch) Run(t testing.TB, script string, args ...string) []byte {
	t.Helper()
	if isScriptFile(script) {
		script = tr.Share(t, repoPath(t, script))
	}
	out, err := tr.Output(script, args...)
	if err != nil {
		t.Fatalf("%s: %v", tr, err)
	}
	return out
}

// A RunError is a python run that failed. Stderr holds what it printed, without the
// interpreter's start-up noise.
type RunError struct {
	Args   []string
	Err    error
	Stderr string
}

func (e *RunError) Error() string {
	msg := fmt.Sprintf("%s: %v", strings.Join(e.Args, " "), e.Err)
	if e.Stderr != "" {
		msg += "\n" + e.Stderr
	}
	return msg
}

func (e *RunError) Unwrap() error { return e.Err }

// Output runs script as Run does, but returns the failure as a *RunError instead of ending the
// test, for checks that expect torch to refuse something. A script path must already be one
// the interpreter sees.
func (tr *Torch) Output(script string, args ...string) ([]byte, error) {
	var argv []string
	if isScriptFile(script) {
		argv = append([]string{tr.python, script}, args...)
	} else {
		argv = append([]string{tr.python, "-c", script}, args...)
	}
	if tr.root != "" {
		argv = append([]string{"chroot", tr.root}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// UCX, loaded by torch 2.x, complains about the chroot on stdout unless told to keep quiet,
	// and stdout must stay clean for scripts that print JSON. Scripts run from the repository
	// must not leave __pycache__ there.
	cmd.Env = append(os.Environ(), "UCX_LOG_LEVEL=fatal", "PYTHONDONTWRITEBYTECODE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := dropNoise(stdout.Bytes())
	if err != nil {
		shown := argv
		if !isScriptFile(script) {
			shown = append(append([]string{}, argv[:len(argv)-len(args)-1]...), "<code>")
			shown = append(shown, args...)
		}
		return out, &RunError{Args: shown, Err: err, Stderr: CleanStderr(stderr.String())}
	}
	return out, nil
}

// Command returns a command that runs program with args where this torch's interpreter runs
// (inside its chroot, when it has one), with PYTHON naming the interpreter, for scripts that
// drive python themselves. program and the paths among args must be as the interpreter sees
// them (see TempDir).
func (tr *Torch) Command(ctx context.Context, program string, args ...string) *exec.Cmd {
	argv := append([]string{program}, args...)
	if tr.root != "" {
		argv = append([]string{"chroot", tr.root}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "PYTHON="+tr.python, "UCX_LOG_LEVEL=fatal", "PYTHONDONTWRITEBYTECODE=1")
	return cmd
}

// dropNoise removes start-up noise lines from a script's standard output.
func dropNoise(out []byte) []byte {
	if !bytes.Contains(out, []byte("UCX")) && !bytes.Contains(out, []byte("cpuinfo")) {
		return out
	}
	var kept [][]byte
	for _, line := range bytes.SplitAfter(out, []byte("\n")) {
		if !isNoise(string(line)) {
			kept = append(kept, line)
		}
	}
	return bytes.Join(kept, nil)
}

func isNoise(line string) bool {
	return strings.Contains(line, "UCX  ERROR") || strings.Contains(line, "UCX  WARN") ||
		strings.HasPrefix(line, "Error in cpuinfo")
}

// CleanStderr drops the lines PyTorch's libraries print on start-up in containers and chroots
// ("Error in cpuinfo", "UCX ERROR"), which say nothing about the test.
func CleanStderr(s string) string {
	var kept []string
	for _, line := range strings.Split(s, "\n") {
		if isNoise(line) {
			continue
		}
		kept = append(kept, line)
	}
	return strings.TrimSpace(strings.Join(kept, "\n"))
}

func isScriptFile(script string) bool {
	return strings.HasSuffix(script, ".py") && !strings.ContainsAny(script, "\n;")
}

// Share makes the file at hostPath readable by the interpreter and returns the path it sees.
// On the host that is hostPath itself (made absolute); for a chroot, Share copies the file into
// a fresh directory under the chroot's /tmp, removed when the test ends.
func (tr *Torch) Share(t testing.TB, hostPath string) string {
	t.Helper()
	abs, err := filepath.Abs(hostPath)
	if err != nil {
		t.Fatal(err)
	}
	if tr.root == "" {
		return abs
	}
	host, inside := tr.TempDir(t)
	dst := filepath.Join(host, filepath.Base(abs))
	if err := copyFile(dst, abs); err != nil {
		t.Fatalf("share %s with %s: %v", hostPath, tr, err)
	}
	return filepath.Join(inside, filepath.Base(abs))
}

// TempDir returns a new directory that both the test and the interpreter can use, as the host
// sees it and as the interpreter sees it, for files torch writes. It is removed when the test
// ends.
func (tr *Torch) TempDir(t testing.TB) (host, inside string) {
	t.Helper()
	if tr.root == "" {
		dir := t.TempDir()
		return dir, dir
	}
	tmp := filepath.Join(tr.root, "tmp")
	host, err := os.MkdirTemp(tmp, "pt2conv-test-")
	if err != nil {
		t.Fatalf("temp dir in %s: %v", tr, err)
	}
	t.Cleanup(func() { os.RemoveAll(host) })
	return host, "/tmp/" + filepath.Base(host)
}

// CopyDir copies the regular files of directory src into dst, for example between two
// interpreters' TempDirs.
func CopyDir(t testing.TB, dst, src string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(dst, e.Name()), filepath.Join(src, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// RepoRoot returns the repository's root directory: the nearest parent with go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func repoPath(t testing.TB, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(RepoRoot(t), path)
}

// Fixture returns the host path of a file under the repository's fixtures/ directory.
func Fixture(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(RepoRoot(t), "fixtures", name)
}

// ErrDiffer is wrapped by the error Same returns when torch finds the checkpoints different.
var ErrDiffer = errors.New("checkpoints differ")
