package main

import (
	"encoding/json"
	"io"
	"strings"

	"github.com/pt2conv/pt2conv/rewrite"
	"github.com/pt2conv/pt2conv/verify"
)

// schemaVersion is the version of the JSON documents the README's "JSON output" section
// describes. It changes when a field is renamed, removed or changes meaning; adding a
// field does not change it.
const schemaVersion = 1

// Every JSON document carries these fields, success or failure, so that a script can read
// error and exit_code without knowing which command wrote it.

// errorInfo is a failure in a JSON document: its category and the message stderr shows.
type errorInfo struct {
	Kind    errKind `json:"kind"`
	Message string  `json:"message"`
}

func errorInfoOf(err error) *errorInfo {
	if err == nil {
		return nil
	}
	return &errorInfo{Kind: kindOf(err), Message: err.Error()}
}

func exitCodeOf(err error) int {
	if err == nil {
		return exitOK
	}
	return kindOf(err).exitCode()
}

// inspectDocument is the output of inspect --json.
type inspectDocument struct {
	SchemaVersion int    `json:"schema_version"`
	Command       string `json:"command"`
	*inspectReport
	ExitCode int        `json:"exit_code"`
	Error    *errorInfo `json:"error"`
}

func newInspectDocument(file string, rep *inspectReport, err error) *inspectDocument {
	if rep == nil {
		rep = &inspectReport{File: file}
	}
	rep.Tensors = nonNilSlice(rep.Tensors)
	rep.Candidates = nonNilSlice(rep.Candidates)
	rep.Records = nonNilSlice(rep.Records)
	rep.Shards = nonNilSlice(rep.Shards)
	rep.StateDicts = nonNilSlice(rep.StateDicts)
	rep.Optimizers = nonNilSlice(rep.Optimizers)
	return &inspectDocument{SchemaVersion: schemaVersion, Command: "inspect", inspectReport: rep,
		ExitCode: exitCodeOf(err), Error: errorInfoOf(err)}
}

// verifyDocument is the output of verify --json.
type verifyDocument struct {
	SchemaVersion int               `json:"schema_version"`
	Command       string            `json:"command"`
	Original      string            `json:"original"`
	Converted     string            `json:"converted"`
	Passed        bool              `json:"passed"`
	Structure     *verify.Structure `json:"structure"`
	Layers        []verify.Layer    `json:"layers"`
	Checks        []verify.Result   `json:"checks"`
	ExitCode      int               `json:"exit_code"`
	Error         *errorInfo        `json:"error"`
}

func newVerifyDocument(original, converted string, rep *verify.Report, err error) *verifyDocument {
	d := &verifyDocument{SchemaVersion: schemaVersion, Command: "verify", Original: original, Converted: converted,
		Layers: []verify.Layer{}, Checks: []verify.Result{}, ExitCode: exitCodeOf(err), Error: errorInfoOf(err)}
	if rep != nil {
		normalizeVerify(rep)
		d.Passed = rep.Passed() && err == nil
		d.Structure, d.Layers, d.Checks = rep.Structure, rep.Layers, rep.Results
	}
	return d
}

// normalizeVerify makes the report's empty lists [] rather than null.
func normalizeVerify(rep *verify.Report) {
	rep.Layers = nonNilSlice(rep.Layers)
	rep.Results = nonNilSlice(rep.Results)
	if rep.Structure != nil {
		rep.Structure.Differences = nonNilSlice(rep.Structure.Differences)
	}
}

// convertDocument is the output of convert --json, for one input or many.
type convertDocument struct {
	SchemaVersion int           `json:"schema_version"`
	Command       string        `json:"command"`
	DryRun        bool          `json:"dry_run"`
	Files         []*fileResult `json:"files"`
	convertCounts
	ExitCode int        `json:"exit_code"`
	Error    *errorInfo `json:"error"`
}

// convertCounts sums up a convert run by status.
type convertCounts struct {
	Converted int `json:"converted"`
	Planned   int `json:"planned"`
	Skipped   int `json:"skipped"`
	Failed    int `json:"failed"`
}

func (c *convertCounts) add(r *fileResult) {
	switch r.Status {
	case statusConverted:
		c.Converted++
	case statusPlanned:
		c.Planned++
	case statusSkipped:
		c.Skipped++
	default:
		c.Failed++
	}
}

// fileLine is one line of convert --json-lines: a file's result as it finishes.
type fileLine struct {
	SchemaVersion int    `json:"schema_version"`
	Command       string `json:"command"`
	Type          string `json:"type"` // "file"
	*fileResult
}

// summaryLine is the last line of convert --json-lines.
type summaryLine struct {
	SchemaVersion int    `json:"schema_version"`
	Command       string `json:"command"`
	Type          string `json:"type"` // "summary"
	DryRun        bool   `json:"dry_run"`
	Files         int    `json:"files"`
	convertCounts
	ExitCode int        `json:"exit_code"`
	Error    *errorInfo `json:"error"`
}

// normalizeChanges makes the empty lists of a plan's changes [] rather than null.
func normalizeChanges(changes []rewrite.Change) []rewrite.Change {
	for i := range changes {
		if ev := changes[i].Evidence; ev != nil {
			ev.Skipped = nonNilSlice(ev.Skipped)
		}
	}
	return nonNilSlice(changes)
}

// errorDocument is the document of a command that failed before it could make its own:
// a usage error, or a flag cobra could not parse.
func errorDocument(command string, args []string, dryRun bool, err error) any {
	switch command {
	case "inspect":
		file := ""
		if len(args) > 0 {
			file = args[0]
		}
		return newInspectDocument(file, nil, err)
	case "verify":
		var a, b string
		if len(args) > 0 {
			a = args[0]
		}
		if len(args) > 1 {
			b = args[1]
		}
		return newVerifyDocument(a, b, nil, err)
	case "convert":
		return &convertDocument{SchemaVersion: schemaVersion, Command: command, DryRun: dryRun, Files: []*fileResult{},
			ExitCode: exitCodeOf(err), Error: errorInfoOf(err)}
	}
	return struct {
		SchemaVersion int        `json:"schema_version"`
		Command       string     `json:"command"`
		ExitCode      int        `json:"exit_code"`
		Error         *errorInfo `json:"error"`
	}{schemaVersion, command, exitCodeOf(err), errorInfoOf(err)}
}

// jsonRequested reports whether the command line asks for JSON (--json or --json-lines
// before a "--"), read from the words themselves so that it works when cobra could not
// parse them.
func jsonRequested(args []string) (json, lines bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(a, "=")
		if hasValue && (value == "false" || value == "0" || value == "f" || value == "F" || value == "FALSE" || value == "False") {
			continue
		}
		switch name {
		case "--json":
			json = true
		case "--json-lines":
			lines = true
		}
	}
	return json, lines
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeJSONLine writes v as one line.
func writeJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
