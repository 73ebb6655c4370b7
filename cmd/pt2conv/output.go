package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/pt2conv/pt2conv/rewrite"
	"github.com/pt2conv/pt2conv/verify"
	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

func runSingle(ctx context.Context, cmd *cobra.Command, j job, o *convertOptions, asJSON bool) error {
	stderr := cmd.ErrOrStderr()
	var progress func(done, total int64)
	var bars *mpb.Progress
	var bar *mpb.Bar
	if !o.dryRun && isTerminal(stderr) {
		bars = mpb.NewWithContext(ctx, mpb.WithOutput(stderr), mpb.WithWidth(40))
		bar = newFileBar(bars, j.in)
		progress = func(done, total int64) { bar.SetTotal(total, false); bar.SetCurrent(done) }
	}
	res := convertFile(ctx, j, o, progress)
	if bars != nil {
		// The bar goes before the report is printed, so the two do not interleave.
		bar.Abort(true)
		bars.Wait()
	}
	if asJSON {
		if err := writeJSON(cmd.OutOrStdout(), res); err != nil {
			return err
		}
	} else {
		printResult(cmd.OutOrStdout(), res)
	}
	if res.Error != "" {
		return &exitError{code: res.exit, err: fmt.Errorf("%s", res.Error)}
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "pt2conv: warning: %s: %s\n", escapeText(j.in), escapeText(w))
	}
	return nil
}

// batchReport is the JSON document of a batch run.
type batchReport struct {
	Files     []*fileResult `json:"files"`
	Converted int           `json:"converted"`
	Failed    int           `json:"failed"`
}

func runBatch(ctx context.Context, cmd *cobra.Command, jobs []job, o *convertOptions, asJSON bool, workers int) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	var bars *mpb.Progress
	var overall *mpb.Bar
	if !o.dryRun && isTerminal(stderr) {
		bars = mpb.NewWithContext(ctx, mpb.WithOutput(stderr), mpb.WithWidth(40))
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
	results := make([]*fileResult, len(jobs))
	var mu sync.Mutex // orders plain progress lines
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(workers, len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				var progress func(done, total int64)
				var bar *mpb.Bar
				if bars != nil {
					bar = newFileBar(bars, jobs[i].in)
					var last int64
					progress = func(done, total int64) {
						bar.SetTotal(total, false)
						bar.SetCurrent(done)
						overall.IncrInt64(done - last)
						last = done
					}
				}
				res := convertFile(ctx, jobs[i], o, progress)
				results[i] = res
				if bar != nil {
					bar.Abort(true)
				}
				if bars == nil && !asJSON {
					mu.Lock()
					printLine(stdout, res)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range jobs {
		work <- i
	}
	close(work)
	wg.Wait()
	if bars != nil {
		overall.Abort(false)
		bars.Wait()
	}
	rep := &batchReport{Files: results}
	code := exitOK
	for _, r := range results {
		if r.Error == "" {
			rep.Converted++
			continue
		}
		rep.Failed++
		if r.exit == exitBadInput || code == exitOK {
			code = r.exit
		}
	}
	if asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		if bars != nil { // the lines were not printed while the bars ran
			for _, r := range results {
				printLine(stdout, r)
			}
		}
		fmt.Fprintf(stdout, "%d of %d files converted, %d failed\n", rep.Converted, len(jobs), rep.Failed)
	}
	if code != exitOK {
		return &exitError{code: code, err: fmt.Errorf("%d of %d files failed", rep.Failed, len(jobs))}
	}
	return nil
}

func newFileBar(p *mpb.Progress, name string) *mpb.Bar {
	return p.AddBar(0,
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f"), decor.Percentage(decor.WCSyncSpace)),
		mpb.BarRemoveOnComplete())
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && ansiTerminal(f)
}

// printLine is the one-line outcome of a file in a batch.
func printLine(w io.Writer, r *fileResult) {
	switch {
	case r.Error != "":
		fmt.Fprintf(w, "FAIL  %s\n", escapeText(r.Error))
	case r.DryRun:
		fmt.Fprintf(w, "plan  %s: %d tensors would change\n", r.Input, len(r.Changes))
	default:
		v := ""
		if r.Verify != nil {
			v = ", verified"
		}
		fmt.Fprintf(w, "ok    %s -> %s (%d tensors changed, %s, %.2f s%s)\n", r.Input, r.Output, len(r.Changes), humanBytes(r.Bytes), r.Seconds, v)
	}
}

// printResult is the text report of a single-file convert.
func printResult(w io.Writer, r *fileResult) {
	if len(r.Changes) > 0 {
		printPlan(w, r.Changes)
	}
	if len(r.Renamed) > 0 && r.Error == "" {
		printRenamed(w, r.Renamed)
	}
	switch {
	case r.DryRun:
		fmt.Fprintf(w, "dry run: %d tensors would change; nothing written\n", len(r.Changes))
	case r.Error == "" || r.Verify != nil:
		if len(r.Changes) == 0 {
			fmt.Fprintln(w, "no layers selected: the checkpoint is saved again unchanged")
		}
		fmt.Fprintf(w, "%s -> %s (%s, %.2f s)\n", r.Input, r.Output, humanBytes(r.Bytes), r.Seconds)
	}
	if r.Verify != nil {
		fmt.Fprintln(w)
		printVerify(w, r.Verify)
	}
}

// printRenamed says which keys --rename changed: the plan above names the input's keys.
func printRenamed(w io.Writer, renamed []rewrite.Renamed) {
	parts := make([]string, len(renamed))
	for i, r := range renamed {
		parts[i] = r.String()
	}
	fmt.Fprintf(w, "renamed: %s\n", escapeText(strings.Join(parts, ", ")))
}

func printPlan(w io.Writer, changes []rewrite.Change) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENSOR\tDTYPE\tFROM\tTO\tNEW STRIDE\tRULE")
	for _, c := range changes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", escapeText(c.Path.String()), c.DType, dims(c.OldSize), dims(c.NewSize), dims(c.NewStride), escapeText(c.Rule))
	}
	tw.Flush()
}

func printVerify(w io.Writer, rep *verify.Report) {
	if len(rep.Results) == 0 && rep.Structure == nil {
		fmt.Fprintln(w, "verify: no converted layers found")
		return
	}
	failed := 0
	if st := rep.Structure; st != nil {
		switch {
		case st.Passed() && st.TensorsOnly:
			fmt.Fprintf(w, "proven exactly across formats: %d tensors by name (%d reshaped), same dtype and the same elements in the same order, %s bit for bit (containers, plain values and storage sharing are not kept by a change of format)\n",
				st.Tensors, st.Reshaped, humanBytes(st.Bytes))
		case st.Passed():
			fmt.Fprintf(w, "proven exactly: %d tensors (%d reshaped, same elements in the same order), %d storages (%s) byte for byte, %d plain values\n",
				st.Tensors, st.Reshaped, st.Storages, humanBytes(st.Bytes), st.Values)
		default:
			failed++
			fmt.Fprintf(w, "NOT the original apart from the conversion: %d differences\n", len(st.Differences)+st.More)
			for _, d := range st.Differences {
				fmt.Fprintf(w, "  %s: %s\n", escapeText(d.Path), escapeText(d.What))
			}
			if st.More > 0 {
				fmt.Fprintf(w, "  ... and %d more\n", st.More)
			}
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tASSUMED INPUT\tEVIDENCE IN THE CHECKPOINT")
	for _, l := range rep.Layers {
		ev := l.Status
		switch l.Status {
		case verify.EvidenceNone:
			ev = "none: the split is assumed"
			if l.Evidence != "" {
				ev = "none (" + l.Evidence + "): the split is assumed"
			}
		case verify.EvidenceDisagrees:
			failed++
			ev = "DISAGREES: " + l.Evidence + " (--assume accepts the split)"
		default:
			ev += ": " + l.Evidence
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", escapeText(l.Name), strings.ReplaceAll(l.Input, "x", "×"), escapeText(ev))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tCHECK\tMAX ABS ERR\tTOLERANCE\tERR/TOL\tRESULT")
	for _, r := range rep.Results {
		verdict := "pass"
		if !r.Pass {
			verdict = "FAIL"
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3g\t%.3g\t%.3g\t%s\n", escapeText(r.Layer), r.Check, r.MaxAbs, r.Tol, r.Ratio, verdict)
	}
	tw.Flush()
	total := len(rep.Results) + len(rep.Layers) + 1
	if failed == 0 {
		fmt.Fprintf(w, "verify: all %d checks passed (structure, %d input assumptions, %d numeric)\n", total, len(rep.Layers), len(rep.Results))
	} else {
		fmt.Fprintf(w, "verify: %d of %d checks FAILED\n", failed, total)
	}
}
