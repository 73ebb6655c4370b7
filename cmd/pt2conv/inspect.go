package main

import (
	"io"
	"strconv"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/ckptio"
	"github.com/pt2conv/pt2conv/pickle"
	"github.com/pt2conv/pt2conv/rewrite"
	"github.com/pt2conv/pt2conv/safetensors"
	"github.com/spf13/cobra"
)

// inspectReport is the JSON document of `pt2conv inspect --json`; the README documents it.
// An inspection fills its small fields and leaves Tensors and Candidates empty: those are
// listed as they are written (see inspection).
type inspectReport struct {
	File           string          `json:"file"`
	Format         string          `json:"format"`
	PickleProtocol int             `json:"pickle_protocol"`
	Prefix         string          `json:"archive_prefix"`
	Records        []string        `json:"records"`
	Tensors        []tensorInfo    `json:"tensors"`
	Storages       int             `json:"storages"`
	StorageBytes   int64           `json:"storage_bytes"`
	Candidates     []candidateInfo `json:"linear_candidates"`
	// Metadata is a safetensors file's __metadata__ or a sharded index's metadata.
	Metadata map[string]any `json:"metadata"`
	Shards   []string       `json:"shards"`
	// StateDicts and Optimizers are what --state-dict and --optimizer-key can name.
	StateDicts []string        `json:"state_dicts"`
	Optimizers []optimizerInfo `json:"optimizers"`
}

// inspection is what inspect reports about an opened checkpoint. Its tensors, the archive's
// records and the Linear candidates are not copied into rows: a checkpoint of 100,000 tensors
// would hold them all twice. They are listed from the checkpoint as the report is written.
// Nothing is left to fail by then but the writes themselves, so a report is never cut short
// by a bad checkpoint.
type inspection struct {
	*inspectReport
	root       checkpoint.Value
	records    []string // filled for JSON only
	sharded    *ckptio.Sharded
	tensors    int
	candidates []rewrite.Candidate
	// other summarizes the root dict's remaining entries for the text report.
	other []contentRow
}

type optimizerInfo struct {
	Path    string   `json:"path"`
	Params  int      `json:"params"`
	State   []string `json:"state"`
	Tensors int      `json:"tensors"`
}

type tensorInfo struct {
	Path      string  `json:"path"`
	DType     string  `json:"dtype"`
	Shape     []int64 `json:"shape"`
	Stride    []int64 `json:"stride"`
	Offset    int64   `json:"offset"`
	Storage   string  `json:"storage"`
	Bytes     int64   `json:"bytes"`
	Parameter bool    `json:"parameter"`
	Shard     string  `json:"shard"`
}

type candidateInfo struct {
	Layer  string `json:"layer"`
	Dict   string `json:"dict"`
	Weight string `json:"weight"`
	In     int64  `json:"in"`
	Out    int64  `json:"out"`
	Bias   bool   `json:"bias"`
	Spec   string `json:"spec"`
	Rule   string `json:"rule"`
	// NotLinear says why the weight is probably an embedding table, not a Linear; "" else.
	NotLinear string `json:"not_linear"`
}

func newInspectCommand() *cobra.Command {
	var asJSON, onlyCandidates bool
	cmd := &cobra.Command{
		Use: "inspect FILE",
		Long: `inspect lists a checkpoint's tensors and the Linear layers that can become convolutions.
FILE is a .pt/.pth/.bin file, a .safetensors file or a sharded checkpoint's index
(*.index.json), recognised by content; for an index every tensor is listed with its shard.`,
		Short: "List a checkpoint's tensors and the Linear layers that can become convolutions",
		Args:  argsInspect,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := ckptio.Open(args[0])
			if err != nil {
				return inputError(args[0], err)
			}
			defer c.Close()
			ins := inspect(c)
			out := cmd.OutOrStdout()
			if asJSON {
				return buffered(out, func(w io.Writer) error { return writeInspectJSON(w, args[0], ins) })
			}
			view := inspectView{candidatesOnly: onlyCandidates, width: outputWidth(out)}
			return buffered(out, func(w io.Writer) error { return printInspect(w, ins, view) })
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document (schema in the README)")
	cmd.Flags().BoolVar(&onlyCandidates, "candidates", false, "list only the Linear layers, with a pt2conv convert command that converts them")
	return cmd
}

// inspect gathers the report's summary: counts, state_dicts, optimizers and the Linear
// candidates. Tensors are counted here and listed when written.
func inspect(c *checkpoint.Checkpoint) *inspection {
	rep := &inspectReport{
		File:       c.Name,
		Format:     c.Format,
		Records:    []string{},
		Tensors:    []tensorInfo{},
		Candidates: []candidateInfo{},
		Shards:     []string{},
		StateDicts: []string{},
		Optimizers: []optimizerInfo{},
	}
	ins := &inspection{inspectReport: rep, root: c.Root}
	if a := pickle.ArchiveOf(c); a != nil {
		rep.PickleProtocol, rep.Prefix = a.Protocol, a.Prefix
		ins.records = make([]string, len(a.Records))
		for i, r := range a.Records {
			ins.records[i] = r.Name
		}
	}
	if h := safetensors.HeaderOf(c); h != nil && h.Metadata != nil {
		rep.Metadata = map[string]any{}
		for k, v := range h.Metadata {
			rep.Metadata[k] = v
		}
	}
	if ins.sharded = ckptio.ShardedOf(c); ins.sharded != nil {
		rep.Metadata = ins.sharded.Metadata
		for _, s := range ins.sharded.Shards {
			rep.Shards = append(rep.Shards, s.File)
		}
	}
	// The tensors and the distinct storages counted, without listing them.
	for range checkpoint.AllTensors(c.Root) {
		ins.tensors++
	}
	seen := make(map[*checkpoint.Storage]struct{}, ins.tensors)
	for s := range checkpoint.StorageRefs(c.Root) {
		if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			rep.Storages++
			rep.StorageBytes += s.ByteLen()
		}
	}
	ins.candidates = rewrite.Candidates(c)
	for _, p := range rewrite.StateDicts(c) {
		rep.StateDicts = append(rep.StateDicts, p.String())
	}
	for _, o := range rewrite.Optimizers(c) {
		rep.Optimizers = append(rep.Optimizers, optimizerInfo{Path: o.Path.String(), Params: o.Params, State: nonNilStrings(o.State), Tensors: o.Tensors})
	}
	ins.other = otherContents(c.Root, rep)
	return ins
}

// eachTensor calls fn for every tensor (and parameter) below root, in the order and under
// the paths checkpoint.Tensors lists them, without listing them: path is valid only during
// the call. It stops at the first error fn returns.
func eachTensor(root checkpoint.Value, fn func(path checkpoint.Path, t *checkpoint.Tensor, parameter bool) error) error {
	for nt := range checkpoint.AllTensors(root) {
		if err := fn(nt.Path, nt.Tensor, nt.Parameter != nil); err != nil {
			return err
		}
	}
	return nil
}

// tensorInfoOf is a tensor's entry in the JSON document.
func (ins *inspection) tensorInfoOf(path checkpoint.Path, t *checkpoint.Tensor, parameter bool) tensorInfo {
	ti := tensorInfo{
		Path: path.String(), DType: t.Kind().DType(), Shape: nonNil(t.Size), Stride: nonNil(t.Stride),
		Offset: t.Offset, Storage: t.Storage.Key, Bytes: tensorBytes(t), Parameter: parameter,
	}
	if ins.sharded != nil {
		ti.Shard = ins.sharded.ShardOf(ti.Path)
	}
	return ti
}

func tensorBytes(t *checkpoint.Tensor) int64 { return t.NumElements() * int64(t.Kind().ItemSize()) }

func candidateInfoOf(c *rewrite.Candidate) candidateInfo {
	return candidateInfo{
		Layer: c.Layer, Dict: c.Dict.String(), Weight: c.Weight.String(), In: c.In, Out: c.Out,
		Bias: c.HasBias, Spec: c.Spec, Rule: c.Rule, NotLinear: c.NotLinear,
	}
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNil(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

func dims(d []int64) string { return string(appendDims(nil, d)) }

// appendDims appends sizes as Python prints a tuple of them: "(4, 3)", "()".
func appendDims(b []byte, d []int64) []byte {
	b = append(b, '(')
	for i, v := range d {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendInt(b, v, 10)
	}
	return append(b, ')')
}

func humanBytes(n int64) string { return string(appendHumanBytes(nil, n)) }

func appendHumanBytes(b []byte, n int64) []byte {
	switch {
	case n >= 1<<30:
		return append(strconv.AppendFloat(b, float64(n)/(1<<30), 'f', 2, 64), " GiB"...)
	case n >= 1<<20:
		return append(strconv.AppendFloat(b, float64(n)/(1<<20), 'f', 1, 64), " MiB"...)
	case n >= 1<<10:
		return append(strconv.AppendFloat(b, float64(n)/(1<<10), 'f', 1, 64), " KiB"...)
	}
	return append(append(strconv.AppendInt(b, n, 10), ' '), 'B')
}
