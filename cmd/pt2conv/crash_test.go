package main

import (
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pt2conv/pt2conv/pickle"
)

// Crash safety: the built binary is killed, interrupted and starved while it writes. The
// output path must always hold nothing or a complete checkpoint. Save writes its data to
// a temporary file beside the output named ".<base>.pt2conv-tmp-<pid>-<random>" and renames
// it into place; a process killed with SIGKILL leaves that file behind until the next save
// to the same output removes it (its pid is gone); any other failure removes it at once.

// bigRows x bigCols float32 is a ~50 MB weight: large enough that a kill lands mid-write.
const bigRows, bigCols = 3200, 4096

// tempPrefix is how Save names its temporary files: "." + base + tempPrefix + pid-random.
const tempPrefix = ".pt2conv-tmp-"

// buildBinary compiles pt2conv into dir.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "pt2conv")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// binaryCommand runs the binary buildBinary made. When the tests run for another
// architecture under user-mode emulation (go test -exec qemu-aarch64-static), the kernel
// cannot start that binary by itself: PT2CONV_TEST_EXEC names the emulator to run it with.
func binaryCommand(bin string, args ...string) *exec.Cmd {
	if emu := strings.Fields(os.Getenv("PT2CONV_TEST_EXEC")); len(emu) > 0 {
		return exec.Command(emu[0], append(append(emu[1:], bin), args...)...)
	}
	return exec.Command(bin, args...)
}

// writeBigCheckpoint saves a state_dict {"fc.weight", "fc.bias"} of about 50 MB.
func writeBigCheckpoint(t *testing.T, path string) {
	t.Helper()
	w := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Location: "cpu", Len: bigRows * bigCols}
	b := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "1", Location: "cpu", Len: bigRows}
	tensor := func(s *checkpoint.Storage, size, stride []int64) *checkpoint.Tensor {
		return &checkpoint.Tensor{Storage: s, Size: size, Stride: stride, Hooks: &checkpoint.OrderedDict{}}
	}
	root := &checkpoint.OrderedDict{Entries: []checkpoint.Entry{
		{Key: "fc.weight", Value: tensor(w, []int64{bigRows, bigCols}, []int64{bigCols, 1})},
		{Key: "fc.bias", Value: tensor(b, []int64{bigRows}, []int64{1})},
	}}
	wb := make([]byte, w.ByteLen())
	for i := range wb {
		wb[i] = byte(i * 31)
	}
	c, err := checkpoint.FromBytes(root, map[*checkpoint.Storage][]byte{w: wb, b: make([]byte, b.ByteLen())})
	if err != nil {
		t.Fatal(err)
	}
	if err := pickle.Save(path, c, nil); err != nil {
		t.Fatal(err)
	}
}

// checkComplete opens path and checks that it is the converted big checkpoint.
func checkComplete(t *testing.T, path string) {
	t.Helper()
	c, err := pickle.Open(path)
	if err != nil {
		t.Fatalf("the output is not a complete checkpoint: %v", err)
	}
	defer c.Close()
	ts := checkpoint.Tensors(c.Root)
	if len(ts) != 2 || ts[0].Path.String() != "fc.weight" || len(ts[0].Tensor.Size) != 4 || ts[0].Tensor.Size[0] != bigRows {
		t.Fatalf("the output holds unexpected tensors: %+v", ts)
	}
	if st, err := os.Stat(path); err != nil || st.Size() < bigRows*bigCols*4 {
		t.Fatalf("the output is too short: %v %v", st, err)
	}
}

// tempFiles lists the files in dir other than keep, failing on any that is not one of
// Save's temporary files.
func tempFiles(t *testing.T, dir string, keep ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var temps []string
outer:
	for _, e := range entries {
		for _, k := range keep {
			if e.Name() == k {
				continue outer
			}
		}
		if !strings.HasPrefix(e.Name(), ".") || !strings.Contains(e.Name(), tempPrefix) {
			t.Fatalf("unexpected file %s in the output directory", e.Name())
		}
		temps = append(temps, filepath.Join(dir, e.Name()))
	}
	return temps
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and writes hundreds of megabytes")
	}
	if runtime.GOOS != "linux" {
		t.Skip("uses Linux signals and resource limits")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	in := filepath.Join(dir, "big.pt")
	writeBigCheckpoint(t, in)
	outDir := filepath.Join(dir, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(outDir, "big_conv.pt")
	convert := func(extra ...string) *exec.Cmd {
		args := append([]string{"convert", in, "-o", out, "--layer", "fc=16x16x16", "--force"}, extra...)
		return binaryCommand(bin, args...)
	}

	// A full run gives the typical runtime and the "previous complete file".
	start := time.Now()
	if b, err := convert().CombinedOutput(); err != nil {
		t.Fatalf("convert: %v\n%s", err, b)
	}
	typical := time.Since(start)
	checkComplete(t, out)
	t.Logf("a %d MB conversion takes %v", bigRows*bigCols*4>>20, typical)

	t.Run("SIGKILL", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		leftovers, midWrite, kills := 0, 0, 0
		// 20 kills at random moments; more (up to 60) until one has landed mid-write, which a
		// temporary file left behind shows, so that the property is tested, not assumed.
		for i := 0; i < 20 || midWrite == 0 && i < 60; i++ {
			kills++
			cmd := convert()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(rng.Int64N(int64(typical) + 1)))
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if _, err := os.Stat(out); err == nil {
				checkComplete(t, out)
			} else if !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			temps := tempFiles(t, outDir, "big_conv.pt")
			leftovers = max(leftovers, len(temps))
			if len(temps) > 0 {
				midWrite++
			}
			for _, tmp := range temps {
				if !strings.HasPrefix(filepath.Base(tmp), ".big_conv.pt"+tempPrefix) {
					t.Errorf("temporary file %s is not named after its output", tmp)
				}
			}
			if len(temps) > 1 {
				t.Errorf("%d temporary files after kill %d: earlier runs' files were not cleaned", len(temps), i+1)
			}
		}
		t.Logf("at most %d temporary file left at a time by %d kills, %d of them mid-write", leftovers, kills, midWrite)
		if midWrite == 0 {
			t.Errorf("none of %d kills landed while the output was being written", kills)
		}
		if b, err := convert().CombinedOutput(); err != nil {
			t.Fatalf("convert: %v\n%s", err, b)
		}
		checkComplete(t, out)
		if temps := tempFiles(t, outDir, "big_conv.pt"); len(temps) != 0 {
			t.Errorf("a complete run left temporary files %v", temps)
		}
	})

	t.Run("StaleTempFiles", func(t *testing.T) {
		// A temporary file left by a killed process is not the output's business: the next
		// run must still succeed and leave it alone or remove it, never publish it.
		dead := exec.Command("true")
		if err := dead.Run(); err != nil {
			t.Fatal(err)
		}
		stale := filepath.Join(outDir, fmt.Sprintf(".big_conv.pt%s%d-123456", tempPrefix, dead.Process.Pid))
		live := filepath.Join(outDir, fmt.Sprintf(".big_conv.pt%s%d-654321", tempPrefix, os.Getpid()))
		for _, p := range []string{stale, live} {
			if err := os.WriteFile(p, []byte("half a file"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if b, err := convert().CombinedOutput(); err != nil {
			t.Fatalf("convert: %v\n%s", err, b)
		}
		checkComplete(t, out)
		if _, err := os.Stat(stale); err == nil {
			t.Errorf("the temporary file of a dead process was not removed")
		}
		if _, err := os.Stat(live); err != nil {
			t.Errorf("the temporary file of a live process was removed")
		}
		os.Remove(live)
	})

	t.Run("WriteErrors", func(t *testing.T) {
		// Each of these fails for root too.
		notDir := filepath.Join(dir, "file")
		if err := os.WriteFile(notDir, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		asDir := filepath.Join(outDir, "a_directory.pt")
		if err := os.Mkdir(asDir, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(asDir)
		cases := []struct {
			name string
			cmd  *exec.Cmd
			dir  string // where no temporary file may be left
		}{
			{"output under a regular file", binaryCommand(bin, "convert", in, "-o", filepath.Join(notDir, "out.pt")), dir},
			{"output in /proc", binaryCommand(bin, "convert", in, "-o", "/proc/pt2conv-test.pt"), outDir},
			{"output is a directory", binaryCommand(bin, "convert", in, "-o", asDir, "--force"), outDir},
			// The file size limit (RLIMIT_FSIZE) stops the write half way with EFBIG.
			{"file size limit", exec.Command("sh", "-c", `ulimit -f 4096 && exec $PT2CONV_TEST_EXEC "$0" "$@"`, bin, "convert", in, "-o", filepath.Join(outDir, "limited.pt")), outDir},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var stderr strings.Builder
				c.cmd.Stderr = &stderr
				err := c.cmd.Run()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != exitBadInput {
					t.Fatalf("exit %v, want 2; stderr %q", err, stderr.String())
				}
				t.Logf("stderr: %s", stderr.String())
				if s := stderr.String(); strings.Count(s, "\n") != 1 {
					t.Errorf("stderr %q is not one line", s)
				}
				tempFiles(t, c.dir, "big_conv.pt", "big.pt", "pt2conv", "file", "out", "a_directory.pt")
				if _, err := os.Stat(filepath.Join(outDir, "limited.pt")); err == nil {
					t.Errorf("a partial output was published")
				}
			})
		}
	})

	t.Run("SIGINT batch", func(t *testing.T) {
		inDir, batchOut := filepath.Join(dir, "batch_in"), filepath.Join(dir, "batch_out")
		for _, d := range []string{inDir, batchOut} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		args := []string{"convert", "--out-dir", batchOut, "-j", "2", "--layer", "fc=16x16x16"}
		const files = 10
		for i := range files {
			n := string(rune('a' + i))
			p := filepath.Join(inDir, n+".pt")
			if err := os.Link(in, p); err != nil {
				t.Fatal(err)
			}
			args = append(args, p)
		}
		cmd := binaryCommand(bin, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Interrupt once a file is being written: the handler is installed by then, also
		// where starting the binary takes long (under emulation).
		for deadline := time.Now().Add(4*typical + 10*time.Second); ; time.Sleep(time.Millisecond) {
			entries, _ := os.ReadDir(batchOut)
			if slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.Contains(e.Name(), tempPrefix) }) {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("no temporary file in %s after %v", batchOut, 4*typical+10*time.Second)
			}
		}
		sent := time.Now()
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(2*typical + 5*time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("still running %v after SIGINT", time.Since(sent))
		}
		t.Logf("exited %v after SIGINT: %v, stderr %q", time.Since(sent), err, stderr.String())
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitBadInput {
			t.Errorf("exit %v after SIGINT, want 2", err)
		}
		entries, _ := os.ReadDir(batchOut)
		for _, e := range entries {
			if strings.Contains(e.Name(), tempPrefix) {
				t.Errorf("temporary file %s left after SIGINT", e.Name())
				continue
			}
			checkComplete(t, filepath.Join(batchOut, e.Name()))
		}
		if len(entries) == files {
			t.Errorf("all %d files converted: the interrupt came too late to test anything", files)
		}
	})
}
