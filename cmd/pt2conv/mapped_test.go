package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyFileTruncatedWhileMapped truncates the converted file once verify has mapped
// it: verify must end with one clear error and exit 2, not crash on the fault.
func TestVerifyFileTruncatedWhileMapped(t *testing.T) {
	for _, size := range []int64{0, 2000} {
		dir := t.TempDir()
		conv := filepath.Join(dir, "conv.pt")
		args := []string{"convert", fixture("vgg_tiny.pt"), "-o", conv, "--layer", "classifier.0=auto", "--layer", "classifier.3"}
		if code, stdout, stderr := pt2conv(t, args...); code != 0 {
			t.Fatalf("convert: exit %d\n%s%s", code, stdout, stderr)
		}
		testHookMapped = func() {
			if err := os.Truncate(conv, size); err != nil {
				t.Error(err)
			}
		}
		code, stdout, stderr := pt2conv(t, "verify", fixture("vgg_tiny.pt"), conv)
		testHookMapped = nil
		t.Logf("truncated to %d bytes: %s", size, strings.TrimSpace(stderr))
		if code != 2 || !strings.Contains(stderr, "changed while it was being read") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("verify of a file truncated to %d bytes while mapped: exit %d, stderr %q, stdout %q; want exit 2 and one line saying the file changed", size, code, stderr, stdout)
		}
	}
}
