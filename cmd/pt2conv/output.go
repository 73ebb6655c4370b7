package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pt2conv/pt2conv/rewrite"
	"github.com/pt2conv/pt2conv/verify"
)

func isTerminal(w io.Writer) bool {
	if c, ok := w.(*writeCounter); ok {
		w = c.w
	}
	f, ok := w.(*os.File)
	return ok && ansiTerminal(f)
}

// buffered runs print on a buffer over w and flushes it: a table of 100,000 rows costs a
// write call per cell otherwise. Only whole reports go through it; lines that must appear as
// they happen (a batch's per-file lines) are written directly.
func buffered(w io.Writer, print func(io.Writer) error) error {
	b := bufio.NewWriterSize(w, 64<<10)
	err := print(b)
	if ferr := b.Flush(); err == nil {
		err = ferr
	}
	return err
}

// printLine is the one-line outcome of a file in a batch; it names the input first.
func printLine(w io.Writer, r *fileResult) {
	in := escapeText(r.Input)
	switch r.Status {
	case statusFailed:
		msg := escapeText(r.Error.Message)
		if !strings.HasPrefix(msg, in+": ") {
			msg = in + ": " + msg
		}
		fmt.Fprintf(w, "FAIL  %s\n", msg)
	case statusSkipped:
		fmt.Fprintf(w, "skip  %s: %s exists (--skip-existing)\n", in, escapeText(*r.Target))
	case statusPlanned:
		to := ""
		if r.Target != nil {
			to = " -> " + escapeText(*r.Target)
		}
		fmt.Fprintf(w, "plan  %s%s: %d %s would change\n", in, to, len(r.Changes), plural(len(r.Changes), "tensor"))
	default:
		v := ""
		if r.Verify != nil {
			v = ", verified"
		}
		fmt.Fprintf(w, "ok    %s -> %s (%d %s changed, %s, %.2f s%s)\n", in, escapeText(*r.Output), len(r.Changes),
			plural(len(r.Changes), "tensor"), humanBytes(*r.Bytes), r.Seconds, v)
	}
}

// printResult is the text report of a single-file convert. A failure prints nothing here
// (its error goes to stderr) but the verification report that failed.
func printResult(w io.Writer, r *fileResult) {
	if len(r.Changes) > 0 {
		printPlan(w, r.Changes)
	}
	if len(r.Renamed) > 0 && r.Error == nil {
		printRenamed(w, r.Renamed)
	}
	switch r.Status {
	case statusPlanned:
		what := "nothing written"
		if r.Target != nil {
			what = escapeText(*r.Target) + " not written"
		}
		fmt.Fprintf(w, "dry run: %d %s would change; %s\n", len(r.Changes), plural(len(r.Changes), "tensor"), what)
	case statusSkipped:
		fmt.Fprintf(w, "%s: %s exists; skipped (--skip-existing)\n", escapeText(r.Input), escapeText(*r.Target))
	case statusConverted:
		if len(r.Changes) == 0 {
			fmt.Fprintln(w, "no layers selected: the checkpoint is saved again unchanged")
		}
		fmt.Fprintf(w, "%s -> %s (%s, %.2f s)\n", escapeText(r.Input), escapeText(*r.Output), humanBytes(*r.Bytes), r.Seconds)
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
	_ = writeAligned(w, []string{"TENSOR", "DTYPE", "FROM", "TO", "NEW STRIDE", "RULE"}, func(r *tableRow) error {
		for i := range changes {
			c := &changes[i]
			if err := r.path(c.Path).raw(c.DType).dims(c.OldSize).dims(c.NewSize).dims(c.NewStride).text(c.Rule).done(); err != nil {
				return err
			}
		}
		return nil
	})
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
	// The tables are written as they are measured, not held: a checkpoint of many layers
	// has tens of thousands of rows.
	_ = writeAligned(w, []string{"LAYER", "ASSUMED INPUT", "EVIDENCE IN THE CHECKPOINT"}, func(r *tableRow) error {
		for i := range rep.Layers {
			l := &rep.Layers[i]
			r.text(l.Name).raw(strings.ReplaceAll(l.Input, "x", "×"))
			switch l.Status {
			case verify.EvidenceNone:
				if l.Evidence == "" {
					r.raw("none: the split is assumed")
				} else {
					r.text("none (" + l.Evidence + "): the split is assumed")
				}
			case verify.EvidenceDisagrees:
				r.text("DISAGREES: " + l.Evidence + " (--assume accepts the split)")
			default:
				r.text(l.Status + ": " + l.Evidence)
			}
			if err := r.done(); err != nil {
				return err
			}
		}
		return nil
	})
	for i := range rep.Layers {
		if rep.Layers[i].Status == verify.EvidenceDisagrees {
			failed++
		}
	}
	fmt.Fprintln(w)
	_ = writeAligned(w, []string{"LAYER", "CHECK", "MAX ABS ERR", "TOLERANCE", "ERR/TOL", "RESULT"}, func(r *tableRow) error {
		for i := range rep.Results {
			res := &rep.Results[i]
			verdict := "pass"
			if !res.Pass {
				verdict = "FAIL"
			}
			if err := r.text(res.Layer).raw(res.Check).float(res.MaxAbs).float(res.Tol).float(res.Ratio).raw(verdict).done(); err != nil {
				return err
			}
		}
		return nil
	})
	for i := range rep.Results {
		if !rep.Results[i].Pass {
			failed++
		}
	}
	total := len(rep.Results) + len(rep.Layers) + 1
	if failed == 0 {
		fmt.Fprintf(w, "verify: all %d checks passed (structure, %d input assumptions, %d numeric)\n", total, len(rep.Layers), len(rep.Results))
	} else {
		fmt.Fprintf(w, "verify: %d of %d checks FAILED\n", failed, total)
	}
}
