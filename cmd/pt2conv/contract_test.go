package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/rewrite"
)

// copies writes n copies of a fixture into a new directory and returns their paths.
func copies(t *testing.T, name string, n int) []string {
	t.Helper()
	src, err := os.ReadFile(fixture(name))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, string(rune('a'+i))+"_"+name)
		if err := os.WriteFile(p, src, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// TestWarningsInEveryMode: the optimizer warning of a training checkpoint reaches stderr in
// batch text mode, and in JSON modes too, once per file and naming it.
func TestWarningsInEveryMode(t *testing.T) {
	ins := copies(t, "train_sgd.pt", 2)
	for _, mode := range [][]string{nil, {"--json"}, {"--json-lines"}} {
		out := t.TempDir()
		args := append(append([]string{"convert", "--out-dir", out, "--layer", "classifier.6"}, ins...), mode...)
		code, _, stderr := pt2conv(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", mode, code, stderr)
		}
		for _, in := range ins {
			if !strings.Contains(stderr, "pt2conv: warning: "+in+": optimizer state") {
				t.Errorf("%v: no warning for %s on stderr:\n%s", mode, in, stderr)
			}
		}
	}
	// one file: the same warning
	code, _, stderr := pt2conv(t, "convert", ins[0], "-o", filepath.Join(t.TempDir(), "x.pt"), "--layer", "classifier.6")
	if code != 0 || !strings.Contains(stderr, "warning: ") {
		t.Errorf("single file: exit %d, stderr %q", code, stderr)
	}
}

// TestDryRunFailsLikeTheRealRun: every check a real run makes but writing, with the same
// exit code and error, and no plan or "nothing written" before the error.
func TestDryRunFailsLikeTheRealRun(t *testing.T) {
	dir := t.TempDir()
	exists := filepath.Join(dir, "exists.pt")
	os.WriteFile(exists, []byte("keep"), 0o644)
	in := copies(t, "vgg_tiny.pt", 1)[0]
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"output exists", []string{in, "-o", exists}, "pass --force"},
		{"no such directory", []string{in, "-o", filepath.Join(dir, "nodir", "x.pt")}, "does not exist; create it first"},
		{"output is input", []string{in, "-o", in, "--force"}, "the output is the input file"},
		{"output is a directory", []string{in, "-o", dir}, "is a directory"},
		{"out-dir is a file", []string{in, "--out-dir", exists}, "is a file, not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := append([]string{"convert"}, append(tt.args, "--layer", "classifier.3")...)
			realCode, _, realErr := pt2conv(t, base...)
			dryCode, dryOut, dryErr := pt2conv(t, append(base, "--dry-run")...)
			if realCode != exitBadInput || dryCode != realCode {
				t.Fatalf("real run exit %d, dry run exit %d; want both 2", realCode, dryCode)
			}
			if !strings.Contains(dryErr, tt.want) || dryErr != realErr {
				t.Errorf("dry run says %q, real run %q; want the same, saying %q", dryErr, realErr, tt.want)
			}
			if dryOut != "" {
				t.Errorf("stdout before the error: %q", dryOut)
			}
			if b, _ := os.ReadFile(exists); string(b) != "keep" {
				t.Fatal("the existing file was changed")
			}
		})
	}
	// --force makes the existing output fine for a dry run too
	if code, _, stderr := pt2conv(t, "convert", in, "-o", exists, "--layer", "classifier.3", "--dry-run", "--force"); code != 0 {
		t.Errorf("--dry-run --force: exit %d: %s", code, stderr)
	}
}

// TestUsageErrors: flags that contradict each other or do nothing in their mode are refused
// in the command's words; argument counts too.
func TestUsageErrors(t *testing.T) {
	in := fixture("vgg_tiny.pt")
	out := filepath.Join(t.TempDir(), "x.pt")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"convert", in, "-o", out, "-j", "4"}, "-j 4 does nothing with -o"},
		{[]string{"convert", in, "-o", out, "--seed", "3"}, "add --verify or drop --seed"},
		{[]string{"convert", in, "-o", out, "--to", "linear"}, "add --layer SPEC or drop them"},
		{[]string{"convert", in, "-o", out, "--optimizer-key", "optimizer"}, "add --layer SPEC or drop them"},
		{[]string{"convert", in, "-o", out, "--dry-run", "--verify"}, "--dry-run writes none"},
		{[]string{"convert", in, "--out-dir", out, "--force", "--skip-existing"}, "give one"},
		{[]string{"convert", in, "-o", out, "--json", "--json-lines"}, "give one"},
		{[]string{"convert"}, "convert needs an input"},
		{[]string{"verify", in}, "verify needs two files, the original and the converted one; got only " + in},
		{[]string{"verify"}, "verify needs two files"},
		{[]string{"verify", in, in, in}, "verify compares two files, got 3"},
		{[]string{"inspect"}, "inspect needs the checkpoint to read"},
		{[]string{"inspect", in, in}, "inspect reads one file, got 2"},
	}
	for _, tt := range tests {
		code, stdout, stderr := pt2conv(t, tt.args...)
		if code != exitBadInput || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line saying %q", tt.args, code, stderr, tt.want)
		}
		if strings.Contains(stderr, "arg(s)") || stdout != "" && !slices.Contains(tt.args, "--json") {
			t.Errorf("%v: cobra's words or output: %q %q", tt.args, stderr, stdout)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%v wrote %s", tt.args, out)
		}
	}
}

// TestJSONOnFailure: every command with --json prints exactly one document on stdout,
// whatever fails, and its error says the kind.
func TestJSONOnFailure(t *testing.T) {
	dir := t.TempDir()
	notCkpt := filepath.Join(dir, "notes.pt")
	os.WriteFile(notCkpt, []byte("text"), 0o644)
	tests := []struct {
		args []string
		kind errKind
		code int
	}{
		{[]string{"inspect", "--json", notCkpt}, kindBadInput, 2},
		{[]string{"inspect", "--json", "--nope", notCkpt}, kindUsage, 2},
		{[]string{"inspect", "--json"}, kindUsage, 2},
		{[]string{"verify", "--json", notCkpt, notCkpt}, kindBadInput, 2},
		{[]string{"verify", "--json", fixture("planted_orig.pt")}, kindUsage, 2},
		{[]string{"verify", "--json", fixture("planted_orig.pt"), fixture("planted_bug.pt")}, kindVerifyFailed, 1},
		{[]string{"convert", "--json", notCkpt, "-o", filepath.Join(dir, "x.pt")}, kindBadInput, 2},
		{[]string{"convert", "--json", fixture("vgg_tiny.pt"), "-o", filepath.Join(dir, "x.pt"), "--to", "sideways"}, kindUsage, 2},
		{[]string{"convert", "--json", fixture("vgg_tiny.pt"), "-o", notCkpt}, kindExists, 2},
		{[]string{"convert", "--json=true", "--bogus"}, kindUsage, 2},
	}
	for _, tt := range tests {
		code, stdout, stderr := pt2conv(t, tt.args...)
		var doc struct {
			Command  string     `json:"command"`
			ExitCode int        `json:"exit_code"`
			Error    *errorInfo `json:"error"`
		}
		dec := json.NewDecoder(strings.NewReader(stdout))
		if err := dec.Decode(&doc); err != nil {
			t.Errorf("%v: stdout is not a JSON document: %v: %q", tt.args, err, stdout)
			continue
		}
		if dec.More() {
			t.Errorf("%v: more than one document: %q", tt.args, stdout)
		}
		if code != tt.code || doc.ExitCode != code || doc.Error == nil || doc.Error.Kind != tt.kind || doc.Command != tt.args[0] {
			t.Errorf("%v: exit %d, document %+v; want exit %d and kind %s", tt.args, code, doc, tt.code, tt.kind)
		}
		if doc.Error != nil && !strings.Contains(stderr, doc.Error.Message) {
			t.Errorf("%v: stderr %q and the document's message %q differ", tt.args, stderr, doc.Error.Message)
		}
	}
}

// TestJSONClaimsOnlyWhatIsWritten: a failed file names no output and lists no changes,
// unless it was written and its verification failed.
func TestJSONClaimsOnlyWhatIsWritten(t *testing.T) {
	ins := copies(t, "vgg_tiny.pt", 2)
	out := t.TempDir()
	os.WriteFile(filepath.Join(out, filepath.Base(ins[0])), []byte("in the way"), 0o644)
	code, stdout, _ := pt2conv(t, append([]string{"convert", "--json", "--out-dir", out, "--layer", "classifier.3"}, ins...)...)
	var doc convertDocument
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || code != 2 {
		t.Fatalf("exit %d: %v", code, err)
	}
	exists, ok := doc.Files[0], doc.Files[1]
	if exists.Status != statusFailed || exists.Output != nil || len(exists.Changes) != 0 || exists.Error.Kind != kindExists {
		t.Errorf("the existing output: %+v, error %+v", exists, exists.Error)
	}
	if !strings.HasPrefix(exists.Error.Message, ins[0]+": ") {
		t.Errorf("the error does not name the input first: %s", exists.Error.Message)
	}
	if ok.Status != statusConverted || ok.Output == nil || *ok.Output != filepath.Join(out, filepath.Base(ins[1])) || len(ok.Changes) != 1 {
		t.Errorf("the converted file: %+v", ok)
	}
	if doc.Converted != 1 || doc.Failed != 1 || doc.Error.Kind != kindExists {
		t.Errorf("counts %+v, error %+v", doc.convertCounts, doc.Error)
	}
}

// TestJSONLines: --json-lines prints one line per file, in input order, then a summary.
func TestJSONLines(t *testing.T) {
	ins := copies(t, "vgg_tiny.pt", 3)
	broken := filepath.Join(filepath.Dir(ins[0]), "broken.pt")
	os.WriteFile(broken, []byte("not a checkpoint"), 0o644)
	ins = append(ins, broken)
	code, stdout, _ := pt2conv(t, append([]string{"convert", "--json-lines", "-j", "2", "--out-dir", t.TempDir(), "--layer", "classifier.3"}, ins...)...)
	if code != 2 {
		t.Fatalf("exit %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != len(ins)+1 {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(ins)+1, stdout)
	}
	for i, in := range ins {
		if lines[i]["type"] != "file" || lines[i]["input"] != in || lines[i]["schema_version"] != float64(schemaVersion) {
			t.Errorf("line %d: %v", i, lines[i])
		}
	}
	last := lines[len(ins)]
	if last["type"] != "summary" || last["converted"] != float64(3) || last["failed"] != float64(1) || last["exit_code"] != float64(2) {
		t.Errorf("summary: %v", last)
	}
}

// TestBatchLinesAsFilesFinish: a file's line is printed as soon as it and the files before it
// are done, not when the batch ends.
func TestBatchLinesAsFilesFinish(t *testing.T) {
	var stdout, stderr bytes.Buffer
	o := &convertOptions{}
	rep := &reporter{o: o, stdout: &stdout, stderr: &stderr, results: make([]*fileResult, 3)}
	out := func(s string) *string { return &s }
	size := int64(10)
	result := func(in string) *fileResult {
		return &fileResult{Input: in, Output: out(in + ".out"), Target: out(in + ".out"), Status: statusConverted, Bytes: &size, Warnings: []string{"w " + in}}
	}
	rep.done(1, result("b"))
	if stdout.Len() != 0 {
		t.Fatalf("b printed before a: %q", stdout.String())
	}
	rep.done(0, result("a"))
	if got := stdout.String(); !strings.HasPrefix(got, "ok    a -> a.out") || !strings.Contains(got, "\nok    b -> b.out") {
		t.Fatalf("after a and b: %q", got)
	}
	if !strings.Contains(stderr.String(), "pt2conv: warning: a: w a\npt2conv: warning: b: w b\n") {
		t.Errorf("warnings: %q", stderr.String())
	}
	rep.done(2, &fileResult{Input: "c", Status: statusFailed, err: withKind(kindBadInput, os.ErrNotExist), Error: &errorInfo{Kind: kindBadInput, Message: "no such file"}})
	if !strings.HasSuffix(stdout.String(), "FAIL  c: no such file\n") {
		t.Errorf("the failure line does not name the input first: %q", stdout.String())
	}
}

// TestBatchText: summaries say what happened (a dry run converts nothing), counts are
// singular for one, and failures are named by input.
func TestBatchText(t *testing.T) {
	ins := copies(t, "vgg_tiny.pt", 2)
	out := filepath.Join(t.TempDir(), "new", "nested")
	base := append([]string{"convert", "--out-dir", out, "--layer", "classifier.3"}, ins...)
	code, stdout, stderr := pt2conv(t, append(base, "--dry-run")...)
	if code != 0 || !strings.Contains(stdout, "dry run: 2 of 2 files would be converted, 0 failed; nothing written") || strings.Contains(stdout, "files converted") {
		t.Errorf("dry run: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "1 tensor would change") {
		t.Errorf("dry run lines: %s", stdout)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the dry run made --out-dir")
	}
	// --out-dir is made, parents included
	if code, stdout, stderr = pt2conv(t, base...); code != 0 || !strings.Contains(stdout, "(1 tensor changed,") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	// again: every output exists, each failure named by its input
	code, stdout, _ = pt2conv(t, base...)
	for _, in := range ins {
		if !strings.Contains(stdout, "FAIL  "+in+": "+filepath.Join(out, filepath.Base(in))+" exists; pass --force") {
			t.Errorf("re-run does not name %s first:\n%s", in, stdout)
		}
	}
	if code != 2 {
		t.Errorf("re-run: exit %d", code)
	}
	// --skip-existing: nothing to do, exit 0
	code, stdout, stderr = pt2conv(t, append(base, "--skip-existing")...)
	if code != 0 || !strings.Contains(stdout, "skip  "+ins[0]+": ") || !strings.Contains(stdout, "0 of 2 files converted, 2 skipped (output exists), 0 failed") {
		t.Errorf("--skip-existing: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestSingleTextQuiet: a failing single-file run prints no plan and no "nothing written"
// before its error; a dry run that succeeds names what it did not write.
func TestSingleTextQuiet(t *testing.T) {
	dir := t.TempDir()
	exists := filepath.Join(dir, "exists.pt")
	os.WriteFile(exists, []byte("keep"), 0o644)
	in := fixture("vgg_tiny.pt")
	for _, extra := range [][]string{nil, {"--dry-run"}} {
		code, stdout, stderr := pt2conv(t, append([]string{"convert", in, "-o", exists, "--layer", "classifier.3"}, extra...)...)
		if code != 2 || stdout != "" || strings.Contains(stderr, "nothing written") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", extra, code, stdout, stderr)
		}
	}
	code, stdout, _ := pt2conv(t, "convert", in, "-o", filepath.Join(dir, "new.pt"), "--layer", "classifier.3", "--dry-run")
	if code != 0 || !strings.Contains(stdout, "dry run: 1 tensor would change; "+filepath.Join(dir, "new.pt")+" not written") {
		t.Errorf("exit %d: %s", code, stdout)
	}
}

// TestStages: a file's progress names its stages in order.
func TestStages(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.pt")
	var stages []string
	var last, total int64
	o := &convertOptions{verify: true, seed: 1, jobs: 1}
	var err error
	if o.specs, o.origins, err = specsOf("classifier.3"); err != nil {
		t.Fatal(err)
	}
	res := convertFile(context.Background(), job{fixture("vgg_tiny.pt"), out}, o, fileHooks{
		progress: func(done, tot int64) { last, total = done, tot },
		stage: func(s string) {
			if len(stages) == 0 || stages[len(stages)-1] != s {
				stages = append(stages, s)
			}
		},
	})
	if res.err != nil {
		t.Fatal(res.err)
	}
	if want := []string{stageRead, stageCopy, stageSync, stageVerify}; !slices.Equal(stages, want) {
		t.Errorf("stages %v, want %v", stages, want)
	}
	if total == 0 || last != total {
		t.Errorf("progress ended at %d of %d", last, total)
	}
}

func specsOf(specs ...string) ([]rewrite.Spec, []string, error) {
	var out []rewrite.Spec
	var origins []string
	for _, s := range specs {
		sp, err := rewrite.ParseSpec(s)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, sp)
		origins = append(origins, "--layer "+s)
	}
	return out, origins, nil
}
