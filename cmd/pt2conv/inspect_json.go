package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// writeInspectJSON writes the document writeJSON would write for the whole report, byte for
// byte, but lists the archive's records, the tensors and the Linear candidates item by item
// as it goes instead of encoding them all in memory first (twice: compact, then indented).
func writeInspectJSON(w io.Writer, file string, ins *inspection) error {
	var head bytes.Buffer
	if err := writeJSON(&head, newInspectDocument(file, ins.inspectReport, nil)); err != nil {
		return err
	}
	l := newJSONLister(w)
	lists := []struct {
		key  string
		list func(item func(v any) error) error
	}{
		{"records", func(item func(any) error) error {
			for i := range ins.records {
				if err := item(&ins.records[i]); err != nil {
					return err
				}
			}
			return nil
		}},
		{"tensors", func(item func(any) error) error {
			var ti tensorInfo
			return eachTensor(ins.root, func(path checkpoint.Path, t *checkpoint.Tensor, parameter bool) error {
				ti = ins.tensorInfoOf(path, t, parameter)
				return item(&ti)
			})
		}},
		{"linear_candidates", func(item func(any) error) error {
			var ci candidateInfo
			for i := range ins.candidates {
				ci = candidateInfoOf(&ins.candidates[i])
				if err := item(&ci); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	// In the head every list is empty, "[]", at the top level's indentation, which nothing
	// else has: a string holds no newline. Each is found before anything is written.
	doc := head.Bytes()
	cuts := make([]int, len(lists))
	for i, li := range lists {
		at := []byte("\n  \"" + li.key + "\": []")
		j := bytes.Index(doc, at)
		if j < 0 || i > 0 && j < cuts[i-1] {
			return fmt.Errorf("inspect document: no %q list in place", li.key) // a field moved without this
		}
		cuts[i] = j + len(at) - len("[]")
	}
	from := 0
	for i, li := range lists {
		if _, err := w.Write(doc[from:cuts[i]]); err != nil {
			return err
		}
		from = cuts[i] + len("[]")
		if err := l.list(li.list); err != nil {
			return err
		}
	}
	_, err := w.Write(doc[from:])
	return err
}

// jsonLister writes a list of the document's top level, item by item, as an indented
// json.Encoder writes it.
type jsonLister struct {
	w        io.Writer
	enc      *json.Encoder
	compact  bytes.Buffer
	indented bytes.Buffer
	n        int
}

func newJSONLister(w io.Writer) *jsonLister {
	l := &jsonLister{w: w}
	l.enc = json.NewEncoder(&l.compact)
	return l
}

// list writes "[]", or "[", the items list gives one per line, and "]".
func (l *jsonLister) list(list func(item func(v any) error) error) error {
	l.n = 0
	if err := list(l.item); err != nil {
		return err
	}
	end := "\n  ]"
	if l.n == 0 {
		end = "[]"
	}
	_, err := io.WriteString(l.w, end)
	return err
}

func (l *jsonLister) item(v any) error {
	l.compact.Reset()
	if err := l.enc.Encode(v); err != nil {
		return err
	}
	l.indented.Reset()
	if l.n == 0 {
		l.indented.WriteString("[\n    ")
	} else {
		l.indented.WriteString(",\n    ")
	}
	if err := json.Indent(&l.indented, bytes.TrimSuffix(l.compact.Bytes(), []byte("\n")), "    ", "  "); err != nil {
		return err
	}
	l.n++
	_, err := l.w.Write(l.indented.Bytes())
	return err
}
