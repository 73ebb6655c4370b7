package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pt2conv/pt2conv/internal/torchtest"
)

// TestFCNExample runs the README's VGG16 -> FCN example (examples/fcn_vgg16.sh) under every
// torch: a static pt2conv converts and renames the classifier, torch loads the result into an
// FCN with strict=True, matches VGG16's 224x224 logits and returns a 6x6 score map for a
// 384x384 image. The network is VGG16 with its widths divided by 8, to keep the test quick.
func TestFCNExample(t *testing.T) {
	torches := torchtest.All(t)
	root := torchtest.RepoRoot(t)
	bin := filepath.Join(t.TempDir(), "pt2conv")
	// For the machine itself (not the GOARCH of an emulated test run): it runs beside torch.
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=", "GOARCH=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tr := range torches {
		t.Run(tr.Name, func(t *testing.T) {
			host, inside := tr.TempDir(t)
			for _, f := range []string{"examples/fcn_vgg16.sh", "examples/fcn_vgg16.py", bin} {
				src := f
				if !filepath.IsAbs(f) {
					src = filepath.Join(root, f)
				}
				b, err := os.ReadFile(src)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(host, filepath.Base(f)), b, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := tr.Command(ctx, "sh", filepath.Join(inside, "fcn_vgg16.sh"), inside)
			cmd.Env = append(cmd.Env, "PT2CONV="+filepath.Join(inside, "pt2conv"), "SCALE=8")
			out, err := cmd.CombinedOutput()
			text := torchtest.CleanStderr(string(out))
			if err != nil {
				t.Fatalf("%s: examples/fcn_vgg16.sh: %v\n%s", tr, err, text)
			}
			for _, want := range []string{
				"verify: all 11 checks passed",
				"renamed: classifier.0 -> fc6 (2 keys), classifier.3 -> fc7 (2 keys), classifier.6 -> score (2 keys)",
				"224x224: logits (2, 1000) match VGG16",
				"384x384: score map (1, 1000, 6, 6)",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("%s: output lacks %q:\n%s", tr, want, text)
				}
			}
		})
	}
}

// The README shows the example's conversion as the script runs it.
func TestReadmeFCNCommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("../../examples/fcn_vgg16.sh")
	if err != nil {
		t.Fatal(err)
	}
	flags := func(text []byte) string {
		joined := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(text), "")
		m := regexp.MustCompile(`(?m)convert \S*vgg16\.pth"? -o \S*fcn32s\.pth"? (.*)$`).FindStringSubmatch(joined)
		if m == nil {
			return ""
		}
		return strings.Join(strings.Fields(strings.ReplaceAll(m[1], "--force", "")), " ")
	}
	want := flags(script)
	if want == "" {
		t.Fatal("examples/fcn_vgg16.sh has no convert line")
	}
	if got := flags(readme); got != want {
		t.Errorf("README's FCN conversion is\n  %s\nthe tested script's is\n  %s", got, want)
	}
}
