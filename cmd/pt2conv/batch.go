package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// runConvert converts every job, -j at a time, and reports each file as it finishes, in
// input order: its line (or JSON line) on stdout and its warnings on stderr. One input
// written to -o gets the full text report instead of a line.
func runConvert(ctx context.Context, cmd *cobra.Command, jobs []job, o *convertOptions) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	o.single = len(jobs) == 1 && o.outDir == ""
	var bars *mpb.Progress
	var overall *mpb.Bar
	if !o.dryRun && isTerminal(stderr) {
		bars = mpb.NewWithContext(ctx, mpb.WithOutput(stderr), mpb.WithWidth(40))
		if !o.single {
			var total int64
			for _, j := range jobs {
				if st, err := os.Stat(j.in); err == nil {
					total += st.Size()
				}
			}
			overall = bars.AddBar(total,
				mpb.PrependDecorators(decor.Name(fmt.Sprintf("%d files", len(jobs)), decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f"), decor.Percentage(decor.WCSyncSpace)))
		}
	}
	rep := &reporter{o: o, stdout: stdout, stderr: stderr, results: make([]*fileResult, len(jobs))}
	if bars != nil {
		// While bars are drawn on the terminal, lines go above them rather than through them.
		rep.stderr = bars
		if isTerminal(stdout) {
			rep.stdout = bars
		}
	}
	workers := min(o.jobs, len(jobs))
	if o.single {
		workers = 1
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				var hooks fileHooks
				var bar *mpb.Bar
				if bars != nil {
					bar, hooks = fileBar(bars, jobs[i].in, overall)
				}
				res := convertFile(ctx, jobs[i], o, hooks)
				if bar != nil {
					bar.Abort(true)
				}
				rep.done(i, res)
			}
		}()
	}
	for i := range jobs {
		work <- i
	}
	close(work)
	wg.Wait()
	if bars != nil {
		if overall != nil {
			overall.Abort(true)
		}
		bars.Wait()
		rep.stdout, rep.stderr = stdout, stderr // the bars are gone
	}
	return rep.finish()
}

// reporter prints results in input order as soon as every earlier file has finished.
type reporter struct {
	o              *convertOptions
	stdout, stderr io.Writer
	mu             sync.Mutex
	results        []*fileResult
	next           int
	counts         convertCounts
}

func (r *reporter) done(i int, res *fileResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results[i] = res
	for ; r.next < len(r.results) && r.results[r.next] != nil; r.next++ {
		r.emit(r.results[r.next])
	}
}

// emit reports one file: its warnings on stderr in every mode, and its line when lines
// are printed per file.
func (r *reporter) emit(res *fileResult) {
	r.counts.add(res)
	for _, w := range res.Warnings {
		fmt.Fprintf(r.stderr, "pt2conv: warning: %s: %s\n", escapeText(res.Input), escapeText(w))
	}
	switch {
	case r.o.jsonLines:
		_ = writeJSONLine(r.stdout, fileLine{SchemaVersion: schemaVersion, Command: "convert", Type: "file", fileResult: res})
	case r.o.asJSON, r.o.single:
	default:
		printLine(r.stdout, res)
	}
}

// finish prints what comes after the files and returns the run's error.
func (r *reporter) finish() error {
	err := r.runError()
	switch {
	case r.o.jsonLines:
		_ = writeJSONLine(r.stdout, summaryLine{SchemaVersion: schemaVersion, Command: "convert", Type: "summary",
			DryRun: r.o.dryRun, Files: len(r.results), convertCounts: r.counts, ExitCode: exitCodeOf(err), Error: errorInfoOf(err)})
	case r.o.asJSON:
		if werr := writeJSON(r.stdout, &convertDocument{SchemaVersion: schemaVersion, Command: "convert", DryRun: r.o.dryRun,
			Files: r.results, convertCounts: r.counts, ExitCode: exitCodeOf(err), Error: errorInfoOf(err)}); werr != nil {
			return withKind(kindIO, werr)
		}
	case r.o.single:
		_ = buffered(r.stdout, func(w io.Writer) error { printResult(w, r.results[0]); return nil })
	default:
		printSummary(r.stdout, r.o.dryRun, len(r.results), r.counts)
	}
	return err
}

// runError is the run's failure: a single file's own error, or how many files of a batch
// failed, as a verification failure only when every failure is one.
func (r *reporter) runError() error {
	if r.o.single {
		return r.results[0].err
	}
	kind := errKind("")
	for _, res := range r.results {
		if res.err == nil {
			continue
		}
		if k := kindOf(res.err); kind == "" || kind == kindVerifyFailed {
			kind = k
		}
	}
	if kind == "" {
		return nil
	}
	return withKind(kind, fmt.Errorf("%d of %d files failed", r.counts.Failed, len(r.results)))
}

// fileBar adds a file's progress bar, labelled with the stage the file is in, and the
// hooks that move it (and the overall bar, when there is one).
func fileBar(bars *mpb.Progress, name string, overall *mpb.Bar) (*mpb.Bar, fileHooks) {
	var stage atomic.Pointer[string]
	start := stageRead
	stage.Store(&start)
	bar := bars.AddBar(0,
		mpb.PrependDecorators(decor.Name(escapeText(name), decor.WCSyncSpaceR),
			decor.Any(func(decor.Statistics) string { return *stage.Load() }, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f"), decor.Percentage(decor.WCSyncSpace)),
		mpb.BarRemoveOnComplete())
	var mu sync.Mutex // the shards of a sharded checkpoint report from several goroutines
	var last int64
	return bar, fileHooks{
		progress: func(done, total int64) {
			mu.Lock()
			defer mu.Unlock()
			bar.SetTotal(total, false)
			bar.SetCurrent(done)
			if overall != nil {
				overall.IncrInt64(done - last)
				last = done
			}
		},
		stage: func(name string) { stage.Store(&name) },
	}
}

// printSummary is the last line of a batch.
func printSummary(w io.Writer, dryRun bool, files int, c convertCounts) {
	var b strings.Builder
	if dryRun {
		fmt.Fprintf(&b, "dry run: %d of %d %s would be converted", c.Planned, files, plural(files, "file"))
	} else {
		fmt.Fprintf(&b, "%d of %d %s converted", c.Converted, files, plural(files, "file"))
	}
	if c.Skipped > 0 {
		fmt.Fprintf(&b, ", %d skipped (output exists)", c.Skipped)
	}
	fmt.Fprintf(&b, ", %d failed", c.Failed)
	if dryRun {
		b.WriteString("; nothing written")
	}
	fmt.Fprintln(w, b.String())
}

// plural is word, with an s unless n is 1.
func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
