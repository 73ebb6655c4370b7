package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/ckptio"
	"github.com/pt2conv/pt2conv/pickle"
	"github.com/pt2conv/pt2conv/rewrite"
	"github.com/pt2conv/pt2conv/safetensors"
	"github.com/spf13/cobra"
)

// inspectReport is the JSON document of `pt2conv inspect --json`; the README documents it.
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
			rep := buildInspectReport(c)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), newInspectDocument(args[0], rep, nil))
			}
			out := cmd.OutOrStdout()
			view := inspectView{candidatesOnly: onlyCandidates, width: outputWidth(out)}
			return buffered(out, func(w io.Writer) error { return printInspect(w, rep, view) })
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document (schema in the README)")
	cmd.Flags().BoolVar(&onlyCandidates, "candidates", false, "list only the Linear layers, with a pt2conv convert command that converts them")
	return cmd
}

func buildInspectReport(c *checkpoint.Checkpoint) *inspectReport {
	rep := &inspectReport{
		File:       c.Name,
		Format:     c.Format,
		Tensors:    []tensorInfo{},
		Candidates: []candidateInfo{},
		StateDicts: []string{},
		Optimizers: []optimizerInfo{},
	}
	if a := pickle.ArchiveOf(c); a != nil {
		rep.PickleProtocol, rep.Prefix = a.Protocol, a.Prefix
		for _, r := range a.Records {
			rep.Records = append(rep.Records, r.Name)
		}
	}
	if h := safetensors.HeaderOf(c); h != nil && h.Metadata != nil {
		rep.Metadata = map[string]any{}
		for k, v := range h.Metadata {
			rep.Metadata[k] = v
		}
	}
	sharded := ckptio.ShardedOf(c)
	if sharded != nil {
		rep.Metadata = sharded.Metadata
		for _, s := range sharded.Shards {
			rep.Shards = append(rep.Shards, s.File)
		}
	}
	tensors := checkpoint.Tensors(c.Root)
	rep.Tensors = make([]tensorInfo, 0, len(tensors))
	for _, nt := range tensors {
		t := nt.Tensor
		rep.Tensors = append(rep.Tensors, tensorInfo{
			Path: nt.Path.String(), DType: t.Kind().DType(), Shape: nonNil(t.Size), Stride: nonNil(t.Stride),
			Offset: t.Offset, Storage: t.Storage.Key, Bytes: t.NumElements() * int64(t.Kind().ItemSize()),
			Parameter: nt.Parameter != nil,
		})
		if sharded != nil {
			rep.Tensors[len(rep.Tensors)-1].Shard = sharded.ShardOf(nt.Path.String())
		}
	}
	for _, s := range checkpoint.Storages(c.Root) {
		rep.Storages++
		rep.StorageBytes += s.ByteLen()
	}
	for _, cand := range rewrite.Candidates(c) {
		rep.Candidates = append(rep.Candidates, candidateInfo{
			Layer: cand.Layer, Dict: cand.Dict.String(), Weight: cand.Weight.String(), In: cand.In, Out: cand.Out,
			Bias: cand.HasBias, Spec: cand.Spec, Rule: cand.Rule, NotLinear: cand.NotLinear,
		})
	}
	for _, p := range rewrite.StateDicts(c) {
		rep.StateDicts = append(rep.StateDicts, p.String())
	}
	for _, o := range rewrite.Optimizers(c) {
		rep.Optimizers = append(rep.Optimizers, optimizerInfo{Path: o.Path.String(), Params: o.Params, State: nonNilStrings(o.State), Tensors: o.Tensors})
	}
	rep.other = otherContents(c.Root, rep)
	return rep
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

func dims(d []int64) string {
	if len(d) == 0 {
		return "()"
	}
	parts := make([]string, len(d))
	for i, v := range d {
		parts[i] = fmt.Sprint(v)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
