package main

import (
	"encoding/json"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"io"
	"strings"
	"text/tabwriter"

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
	Prefix         string          `json:"archive_prefix,omitempty"`
	Records        []string        `json:"records,omitempty"`
	Tensors        []tensorInfo    `json:"tensors"`
	Storages       int             `json:"storages"`
	StorageBytes   int64           `json:"storage_bytes"`
	Candidates     []candidateInfo `json:"linear_candidates"`
	// Metadata is a safetensors file's __metadata__ or a sharded index's metadata.
	Metadata map[string]any `json:"metadata,omitempty"`
	Shards   []string       `json:"shards,omitempty"`
}

type tensorInfo struct {
	Path      string  `json:"path"`
	DType     string  `json:"dtype"`
	Shape     []int64 `json:"shape"`
	Stride    []int64 `json:"stride"`
	Offset    int64   `json:"offset"`
	Storage   string  `json:"storage"`
	Bytes     int64   `json:"bytes"`
	Parameter bool    `json:"parameter,omitempty"`
	Shard     string  `json:"shard,omitempty"`
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
}

func newInspectCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use: "inspect FILE",
		Long: `inspect lists a checkpoint's tensors and the Linear layers that can become convolutions.
FILE is a .pt/.pth/.bin file, a .safetensors file or a sharded checkpoint's index
(*.index.json), recognised by content; for an index every tensor is listed with its shard.`,
		Short: "List a checkpoint's tensors and the Linear layers that can become convolutions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := ckptio.Open(args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			rep := buildInspectReport(c)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			return printInspect(cmd.OutOrStdout(), rep)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document (schema in the README)")
	return cmd
}

func buildInspectReport(c *checkpoint.Checkpoint) *inspectReport {
	rep := &inspectReport{
		File:       c.Name,
		Format:     c.Format,
		Tensors:    []tensorInfo{},
		Candidates: []candidateInfo{},
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
			Bias: cand.HasBias, Spec: cand.Spec, Rule: cand.Rule,
		})
	}
	return rep
}

func nonNil(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

func printInspect(w io.Writer, rep *inspectReport) error {
	switch {
	case rep.PickleProtocol > 0:
		fmt.Fprintf(w, "%s: %s checkpoint, pickle protocol %d\n\n", escapeText(rep.File), rep.Format, rep.PickleProtocol)
	case len(rep.Shards) > 0:
		fmt.Fprintf(w, "%s: %s checkpoint, %d shards\n\n", escapeText(rep.File), rep.Format, len(rep.Shards))
	default:
		fmt.Fprintf(w, "%s: %s checkpoint\n\n", escapeText(rep.File), rep.Format)
	}
	if len(rep.Metadata) > 0 {
		b, _ := json.Marshal(rep.Metadata)
		fmt.Fprintf(w, "metadata: %s\n\n", escapeText(string(b)))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(rep.Shards) > 0 {
		fmt.Fprintln(tw, "TENSOR\tDTYPE\tSHAPE\tSTRIDE\tOFFSET\tSTORAGE\tBYTES\tSHARD")
	} else {
		fmt.Fprintln(tw, "TENSOR\tDTYPE\tSHAPE\tSTRIDE\tOFFSET\tSTORAGE\tBYTES")
	}
	for _, t := range rep.Tensors {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d", escapeText(t.Path), t.DType, dims(t.Shape), dims(t.Stride), t.Offset, escapeText(t.Storage), t.Bytes)
		if len(rep.Shards) > 0 {
			fmt.Fprintf(tw, "\t%s", escapeText(t.Shard))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d tensors in %d storages, %s\n", len(rep.Tensors), rep.Storages, humanBytes(rep.StorageBytes))
	if len(rep.Candidates) == 0 {
		fmt.Fprintln(w, "\nNo Linear layers (2-D .weight tensors) found.")
		return nil
	}
	fmt.Fprintln(w, "\nLinear layers that can become Conv2d:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tIN\tOUT\tBIAS\tCONVERT WITH\tWHY")
	for _, c := range rep.Candidates {
		layer := c.Layer
		if layer == "" {
			layer = "." // the weight at the dict's root
		}
		if c.Dict != "" {
			layer = c.Dict + "/" + layer
		}
		bias := "yes"
		if !c.Bias {
			bias = "no (bias-less)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t--layer %s\t%s\n", escapeText(layer), c.In, c.Out, bias, shellQuote(c.Spec), escapeText(c.Rule))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nEach spec assumes the input's CxHxW (CxHxW in the spec, in x 1 x 1 without one): a checkpoint\n"+
		"holds no graph, so C comes from the tensors before the layer (WHY) and H = W is assumed.")
	return err
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

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
