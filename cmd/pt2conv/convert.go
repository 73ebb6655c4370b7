package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/ckptio"
	"github.com/pt2conv/pt2conv/rewrite"
	"github.com/pt2conv/pt2conv/verify"
	"github.com/spf13/cobra"
)

type convertFlags struct {
	out, outDir  string
	layers       []string
	planFile     string
	optimizerKey string
	to           string
	dryRun       bool
	verify       bool
	force        bool
	skipExisting bool
	asJSON       bool
	jsonLines    bool
	jobs         int
	seed         uint64
	format       string
	stateDict    string
	renames      []string
}

func newConvertCommand() *cobra.Command {
	var f convertFlags
	cmd := &cobra.Command{
		Use:   "convert IN -o OUT | IN... --out-dir DIR",
		Short: "Rewrite Linear layers as Conv2d (or back) and write a new checkpoint",
		Long: `convert reads each IN — a .pt/.pth/.bin file, a .safetensors file, or a sharded checkpoint's
index (*.index.json), recognised by content — rewrites the chosen layers and writes the result.
The output format follows OUT's extension (.safetensors: safetensors; anything else: torch's
zip format) unless --format says otherwise; with no --layer the checkpoint is only re-saved, so
convert also converts between formats. A sharded input is written as a sharded set.

Layer specs (--layer SPEC, repeatable, or a list in --plan FILE):
  NAME           in×1×1: a 1×1 convolution (the FCs after the first)
  NAME=CxHxW     Conv2d(C, out, (H, W)); C·H·W must equal the Linear's in
  NAME=HxW       C = in/(H·W)
  NAME=auto      C from the nearest conv weight (or norm layer after the last conv) before the
                 layer, H = W = √(in/C); in×1×1 right after a Linear that feeds it
NAME is the module name before ".weight" in the state_dict keys (classifier.0, module.fc6),
matched in every state_dict of the checkpoint; model/classifier.0 names the one under "model".
'*' matches any run of characters: quote it ('classifier.*') so the shell does not expand it.
pt2conv inspect FILE --candidates prints the specs of a checkpoint's Linear layers.

Inputs may be shell globs (runs/*.pt); with several inputs give --out-dir DIR.
--rename OLD=NEW renames keys after converting, so they match your Conv2d modules' names.
--optimizer-key KEY and --state-dict KEY take paths through dicts and lists
(optimizer, train/optimizer, optimizer_states/0).

Exit codes: 0 done; 1 --verify found a difference; 2 bad input or usage (nothing written
for that file). Errors go to stderr, one line each, with what to do.`,
		Example: `  pt2conv inspect vgg16.pth --candidates
  pt2conv convert vgg16.pth -o fcn.pth --layer classifier.0=auto --layer classifier.3 --layer classifier.6 --verify
  pt2conv convert vgg16.pth -o fcn.pth --layer classifier.0=512x7x7 --layer classifier.3 --layer classifier.6 \
      --rename classifier.0=fc6 --rename classifier.3=fc7 --rename classifier.6=score
  pt2conv convert last.ckpt -o last_conv.ckpt --layer model.classifier.0=auto --layer model.classifier.3 \
      --optimizer-key optimizer_states/0
  pt2conv convert runs/*.pt --out-dir converted -j 4 --plan head.yaml --json
  pt2conv convert train.pt -o model.safetensors --state-dict model
  pt2conv convert model.safetensors.index.json --out-dir ane --layer '*' -j 2 --verify`,
		Args: argsConvert,
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(cmd)
			if err != nil {
				return usageError(err)
			}
			jobs, err := f.jobsFor(args)
			if err != nil {
				return err
			}
			// Ctrl-C (on windows too), and SIGTERM (on windows: the console window closing or
			// the session ending) stop the run and remove the files being written.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runConvert(ctx, cmd, jobs, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.out, "output", "o", "", "write the result to `FILE` (one input)")
	fl.StringVar(&f.outDir, "out-dir", "", "write each result into `DIR` under its input's base name (any number of inputs)")
	fl.StringArrayVar(&f.layers, "layer", nil, "convert the layer `SPEC`: NAME, NAME=CxHxW, NAME=HxW or NAME=auto; * globs (repeatable)")
	fl.StringVar(&f.planFile, "plan", "", "read layer specs from `FILE`, a JSON or YAML list")
	fl.StringVar(&f.optimizerKey, "optimizer-key", "", "reshape the optimizer state at `KEY` with the weights (optimizer, optimizer_states/0)")
	fl.StringVar(&f.to, "to", "conv", "`DIRECTION`: conv (Linear to Conv2d) or linear (Conv2d back to Linear)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan and write nothing")
	fl.BoolVar(&f.verify, "verify", false, "read the written file back and prove every converted layer numerically")
	fl.BoolVar(&f.force, "force", false, "replace an existing output file")
	fl.BoolVar(&f.skipExisting, "skip-existing", false, "leave an existing output file as it is and go on with the other inputs")
	fl.BoolVar(&f.asJSON, "json", false, "print a JSON report instead of text")
	fl.BoolVar(&f.jsonLines, "json-lines", false, "print one JSON line per file as it finishes, then a summary line")
	fl.IntVarP(&f.jobs, "jobs", "j", 1, "convert `N` files at a time")
	fl.Uint64Var(&f.seed, "seed", 1, "seed `N` of the random inputs --verify uses")
	fl.StringVar(&f.format, "format", "", "write `FORMAT` pt or safetensors (default: by the output's extension)")
	fl.StringArrayVar(&f.renames, "rename", nil, "rename keys of module prefix OLD to NEW after converting (`OLD=NEW`: classifier.0=fc6; module= drops a prefix; repeatable)")
	fl.StringVar(&f.stateDict, "state-dict", "", "write only the state_dict at `KEY` (model, state_dict); a safetensors output of a training checkpoint needs it")
	registerConvertCompletions(cmd)
	return cmd
}

// convertOptions is what every file of a run shares.
type convertOptions struct {
	specs []rewrite.Spec
	// origins says where each spec is written: "--layer SPEC" or "FILE:LINE" of --plan.
	origins []string
	rewrite rewrite.Options
	dryRun  bool
	verify  bool
	force   bool
	// skipExisting leaves an existing output alone and reports the file skipped.
	skipExisting bool
	seed         uint64
	// format overrides the output's extension ("pt", "safetensors"; "" to follow it).
	format    string
	stateDict string
	renames   []rewrite.Rename
	jobs      int
	// outDir is --out-dir; a dry run checks that it can be made instead of making it.
	outDir string
	// asJSON prints one document at the end; jsonLines one line per file as it finishes.
	asJSON, jsonLines bool
	// single is one input written to -o: the full text report instead of a line per file.
	single bool
}

func (f *convertFlags) options(cmd *cobra.Command) (*convertOptions, error) {
	o := &convertOptions{dryRun: f.dryRun, verify: f.verify, force: f.force, skipExisting: f.skipExisting,
		seed: f.seed, format: f.format, stateDict: f.stateDict, jobs: f.jobs, outDir: f.outDir,
		asJSON: f.asJSON, jsonLines: f.jsonLines}
	if err := f.checkCombination(cmd); err != nil {
		return nil, err
	}
	if _, err := ckptio.OutputFormat("", f.format); err != nil {
		return nil, err
	}
	switch f.to {
	case "conv", "conv2d":
		o.rewrite.Direction = rewrite.ToConv
	case "linear":
		o.rewrite.Direction = rewrite.ToLinear
	default:
		return nil, fmt.Errorf("--to %q: use conv or linear", f.to)
	}
	o.rewrite.OptimizerKey = f.optimizerKey
	for _, s := range f.layers {
		sp, err := rewrite.ParseSpec(s)
		if err != nil {
			return nil, fmt.Errorf("--layer %s: %w", s, err)
		}
		o.specs = append(o.specs, sp)
		o.origins = append(o.origins, "--layer "+s)
	}
	for _, s := range f.renames {
		r, err := rewrite.ParseRename(s)
		if err != nil {
			return nil, fmt.Errorf("--rename %s: %w", s, err)
		}
		o.renames = append(o.renames, r)
	}
	if f.planFile != "" {
		specs, origins, err := readPlanFile(f.planFile)
		if err != nil {
			return nil, err
		}
		o.specs = append(o.specs, specs...)
		o.origins = append(o.origins, origins...)
	}
	if err := duplicateSpecs(o.specs, o.origins); err != nil {
		return nil, err
	}
	if f.jobs < 1 {
		return nil, fmt.Errorf("-j %d: need at least 1", f.jobs)
	}
	return o, nil
}

// checkCombination refuses flags that contradict each other or do nothing in the mode the
// others choose, rather than ignoring them.
func (f *convertFlags) checkCombination(cmd *cobra.Command) error {
	changed := cmd.Flags().Changed
	switch {
	case f.force && f.skipExisting:
		return errors.New("--force replaces existing outputs and --skip-existing keeps them: give one")
	case f.asJSON && f.jsonLines:
		return errors.New("--json prints one document and --json-lines one line per file: give one")
	case f.dryRun && f.verify:
		return errors.New("--verify reads back the written file and --dry-run writes none: drop one")
	case len(f.layers) == 0 && f.planFile == "" && (changed("to") || changed("optimizer-key")):
		return errors.New("--to and --optimizer-key act on the layers --layer or --plan choose; with none the checkpoint is only saved again: add --layer SPEC or drop them")
	case changed("seed") && !f.verify:
		return errors.New("--seed sets the random inputs of --verify: add --verify or drop --seed")
	case changed("jobs") && f.out != "" && !ckptio.IsIndex(f.out):
		return fmt.Errorf("-j %d does nothing with -o (one output file): use --out-dir DIR to convert several inputs %d at a time", f.jobs, f.jobs)
	}
	return nil
}

// job is one input and where its output goes.
type job struct{ in, out string }

func (f *convertFlags) jobsFor(args []string) ([]job, error) {
	switch {
	case f.out != "" && f.outDir != "":
		return nil, usageError(errors.New("give either -o OUT or --out-dir DIR, not both"))
	case f.out != "":
		if len(args) != 1 {
			return nil, usageError(fmt.Errorf("-o takes one input, got %d; use --out-dir DIR for several", len(args)))
		}
		return []job{{args[0], f.out}}, nil
	case f.outDir != "":
		if err := prepareOutDir(f.outDir, f.dryRun); err != nil {
			return nil, err
		}
		var jobs []job
		seen := map[string]string{}
		for _, in := range args {
			out := filepath.Join(f.outDir, filepath.Base(in))
			if f.format != "" {
				format, _ := ckptio.OutputFormat("", f.format)
				out = ckptio.Rename(out, format)
			}
			if prev, ok := seen[out]; ok {
				return nil, usageError(fmt.Errorf("%s and %s would both be written to %s; convert them into different directories", prev, in, out))
			}
			seen[out] = in
			jobs = append(jobs, job{in, out})
		}
		return jobs, nil
	case f.dryRun:
		jobs := make([]job, len(args))
		for i, in := range args {
			jobs[i] = job{in: in}
		}
		return jobs, nil
	}
	return nil, usageError(errors.New("no output: give -o OUT (one input) or --out-dir DIR"))
}

// File statuses of the JSON documents.
const (
	statusConverted = "converted" // written (and verified, with --verify)
	statusPlanned   = "planned"   // --dry-run: would be written
	statusSkipped   = "skipped"   // --skip-existing: the output exists and was left alone
	statusFailed    = "failed"
)

// fileResult is one file's outcome; it is also the JSON documents' file object, whose
// fields are always present (null or [] when empty).
type fileResult struct {
	Input string `json:"input"`
	// Target is where the output goes; null for a dry run without an output.
	Target *string `json:"target"`
	// Output is the file written: null unless it was.
	Output   *string          `json:"output"`
	Status   string           `json:"status"`
	DryRun   bool             `json:"dry_run"`
	Changes  []rewrite.Change `json:"changes"`
	Warnings []string         `json:"warnings"`
	Bytes    *int64           `json:"bytes"` // size of the written file
	Seconds  float64          `json:"seconds"`
	// Renamed lists the key prefixes --rename changed.
	Renamed []rewrite.Renamed `json:"renamed"`
	Verify  *verify.Report    `json:"verify"`
	Error   *errorInfo        `json:"error"`
	err     error
}

// fileHooks report a file's progress: bytes written and the stage it is in.
type fileHooks struct {
	progress func(done, total int64)
	stage    func(name string)
}

// Stages of a file, as progress bars show them.
const (
	stageRead   = "read"
	stageCopy   = "copy"
	stageSync   = "sync"
	stageVerify = "verify"
)

// convertFile runs the whole pipeline for one file: open, check the output, plan, apply,
// save, verify.
func convertFile(ctx context.Context, j job, o *convertOptions, hooks fileHooks) *fileResult {
	start := time.Now()
	res := &fileResult{Input: j.in, Status: statusFailed, DryRun: o.dryRun, Changes: []rewrite.Change{}, Warnings: []string{}}
	if j.out != "" {
		res.Target = &j.out
	}
	stage := func(name string) {
		if hooks.stage != nil {
			hooks.stage(name)
		}
	}
	finish := func(status string, err error) *fileResult {
		res.Seconds = time.Since(start).Seconds()
		res.Status = status
		if err != nil {
			res.Status, res.err, res.Error = statusFailed, err, errorInfoOf(err)
			if res.Output == nil {
				res.Changes = []rewrite.Change{} // none was made
				res.Renamed = nil
			}
		}
		res.Changes = normalizeChanges(res.Changes)
		if res.Renamed == nil {
			res.Renamed = []rewrite.Renamed{}
		}
		if res.Verify != nil {
			normalizeVerify(res.Verify)
		}
		return res
	}
	if err := ctx.Err(); err != nil {
		return finish(statusFailed, withKind(kindIO, fmt.Errorf("%s: not converted: interrupted", j.in)))
	}
	stage(stageRead)
	orig, err := ckptio.Open(j.in)
	if err != nil {
		return finish(statusFailed, withKind(kindBadInput, inputError(j.in, err)))
	}
	defer orig.Close()
	skip, err := checkOutput(j, o)
	if err != nil {
		return finish(statusFailed, err)
	}
	if skip {
		return finish(statusSkipped, nil)
	}
	format, err := ckptio.OutputFormat(j.out, o.format)
	if err != nil {
		return finish(statusFailed, usageError(err))
	}
	if ckptio.ShardedOf(orig) != nil && j.out != "" && !ckptio.IsIndex(j.out) {
		return finish(statusFailed, usageError(fmt.Errorf("%s is a sharded checkpoint: give -o DIR/NAME.index.json or --out-dir DIR", j.in)))
	}
	// Renames are checked before the plan, so a dry run reports them too; they apply after it,
	// so --layer names the input's modules. --verify proves the output against the input
	// renamed alike.
	renamedOrig, renamed, err := rewrite.RenameKeys(orig, o.renames)
	res.Renamed = renamed
	if err != nil {
		return finish(statusFailed, withKind(kindBadInput, fmt.Errorf("%s: %w", j.in, err)))
	}
	converted := orig
	if len(o.specs) > 0 {
		plan, err := rewrite.NewPlan(orig, o.specs, o.rewrite)
		if err != nil {
			return finish(statusFailed, withKind(kindBadInput, fmt.Errorf("%s: %w", j.in, specError(err, o))))
		}
		res.Changes, res.Warnings = plan.Changes, append(res.Warnings, plan.Warnings...)
		if converted, err = rewrite.Apply(orig, plan); err != nil {
			return finish(statusFailed, withKind(kindBadInput, fmt.Errorf("%s: %w", j.in, err)))
		}
	}
	if converted, _, err = rewrite.RenameKeys(converted, o.renames); err != nil {
		return finish(statusFailed, withKind(kindBadInput, fmt.Errorf("%s: %w", j.in, err)))
	}
	if o.stateDict != "" {
		if converted, err = ckptio.SelectStateDict(converted, o.stateDict); err != nil {
			return finish(statusFailed, withKind(kindBadInput, fmt.Errorf("%s: %w", j.in, err)))
		}
	}
	if o.dryRun {
		return finish(statusPlanned, nil)
	}
	var warnMu sync.Mutex
	stage(stageCopy)
	save := ckptio.SaveOptions{Force: o.force, Jobs: o.jobs, Warn: func(msg string) {
		warnMu.Lock()
		res.Warnings = append(res.Warnings, msg)
		warnMu.Unlock()
	}}
	save.Progress = func(done, total int64) {
		if hooks.progress != nil {
			hooks.progress(done, total)
		}
		if done >= total {
			stage(stageSync) // every byte is copied; what is left is making it durable
		}
	}
	if err := ckptio.Save(j.out, converted, format, save); err != nil {
		if errors.Is(err, ckptio.ErrExists) {
			err = withKind(kindExists, existsError(j.out))
		} else {
			err = withKind(saveErrorKind(err), err)
		}
		return finish(statusFailed, withKind(kindOf(err), fmt.Errorf("%s: %w", j.in, err)))
	}
	res.Output = &j.out
	var size int64
	if st, err := os.Stat(j.out); err == nil {
		size = st.Size()
	}
	res.Bytes = &size
	if o.verify {
		stage(stageVerify)
		if err := verifyWritten(renamedOrig, j, o, res); err != nil {
			return finish(statusFailed, err)
		}
	}
	return finish(statusConverted, nil)
}

// verifyWritten reads the written file back and proves it against the input (its keys renamed
// as --rename asks).
func verifyWritten(orig *checkpoint.Checkpoint, j job, o *convertOptions, res *fileResult) error {
	written, err := ckptio.Open(j.out)
	if err != nil {
		return failed(fmt.Errorf("%s: reading back the written file: %w", j.out, err))
	}
	defer written.Close()
	before := orig
	if o.stateDict != "" {
		if before, err = ckptio.SelectStateDict(before, o.stateDict); err != nil {
			return withKind(kindBadInput, fmt.Errorf("%s: %w", j.in, err))
		}
	}
	// A split that disagrees with the checkpoint's evidence has been warned about in the
	// plan; here it is reported as assumed rather than failed.
	mapForVerify(before, written)
	rep, err := verify.Check(before, written, verify.Options{Seed: o.seed, Assume: true})
	if errors.Is(err, verify.ErrNoLayers) && len(res.Changes) == 0 {
		rep, err = &verify.Report{}, nil // nothing was converted, so nothing to prove
	}
	if err != nil {
		return failed(fmt.Errorf("%s: verify: %w", j.out, err))
	}
	res.Verify = rep
	if len(rep.Results) > 0 && !rep.Passed() {
		what := "the converted layers do not compute what the originals do"
		if !rep.Structure.Passed() {
			what = "the written file is not the input with the layers reshaped: " + rep.Structure.Differences[0].String()
		}
		return failed(fmt.Errorf("%s: verification failed: %s", j.out, what))
	}
	return nil
}
