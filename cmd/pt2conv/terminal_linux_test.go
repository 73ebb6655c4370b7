package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: what the program writes to tty, the test reads from pt.
func openPTY(t *testing.T) (pt, tty *os.File) {
	t.Helper()
	pt, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(pt.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(pt.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the terminal: %v", err)
	}
	t.Cleanup(func() { tty.Close(); pt.Close() })
	return pt, tty
}

// TestBatchOnATerminal: with progress bars on the terminal, every file's line and the
// summary still reach it, and the bars name each file's stage.
func TestBatchOnATerminal(t *testing.T) {
	pt, tty := openPTY(t)
	var screen bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&screen, pt); close(done) }()

	ins := copies(t, "train_sgd.pt", 3)
	out := filepath.Join(t.TempDir(), "out")
	code := run(append([]string{"convert", "--out-dir", out, "-j", "2", "--layer", "classifier.6", "--verify"}, ins...), tty, tty)
	tty.Close()
	<-done
	got := screen.String()
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, got)
	}
	for _, in := range ins {
		if !strings.Contains(got, "ok    "+in+" -> ") || !strings.Contains(got, "pt2conv: warning: "+in+": optimizer state") {
			t.Errorf("no line or warning for %s on the terminal:\n%q", in, got)
		}
	}
	if !strings.Contains(got, "3 of 3 files converted, 0 failed") {
		t.Errorf("no summary on the terminal:\n%q", got)
	}
	if !strings.Contains(got, "3 files") {
		t.Errorf("no overall bar:\n%q", got)
	}
}
