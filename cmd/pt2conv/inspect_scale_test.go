package main

import (
	"io"
	"runtime"
	"testing"

	"github.com/pt2conv/pt2conv/internal/manytensors"
)

// TestInspectScale: inspect's report, as text (whole, candidates only, fitted to a width)
// and as JSON, allocates the same per tensor for 1,000 tensors as for 100,000.
func TestInspectScale(t *testing.T) {
	for _, tt := range []struct {
		name  string
		print func(ins *inspection) error
	}{
		{"text", func(ins *inspection) error { return printInspect(io.Discard, ins, inspectView{}) }},
		{"text, 80 columns", func(ins *inspection) error { return printInspect(io.Discard, ins, inspectView{width: 80}) }},
		{"candidates", func(ins *inspection) error {
			return printInspect(io.Discard, ins, inspectView{candidatesOnly: true})
		}},
		{"json", func(ins *inspection) error { return writeInspectJSON(io.Discard, "many.pt", ins) }},
	} {
		manytensors.CheckFlat(t, "inspect, "+tt.name, 1.3, func(n int) func() {
			c := manytensors.Shared(t, n)
			return func() {
				ins := inspect(c)
				if ins.tensors != n || len(ins.candidates) != n/manytensors.TensorsPerExpert {
					t.Fatalf("%d tensors, %d candidates; want %d, %d", ins.tensors, len(ins.candidates), n, n/manytensors.TensorsPerExpert)
				}
				if err := tt.print(ins); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// Bounds on what inspect costs per tensor of a state_dict of many small tensors: what it
// keeps while writing the report (the Linear candidates, a quarter of the tensors here) and
// all it allocates, report written. A report that kept a row per tensor, or made one
// string per cell, would take several times more.
const (
	maxInspectHeldPerTensor      = 128
	maxInspectAllocatedPerTensor = 512
)

func TestInspectBytesPerTensor(t *testing.T) {
	const n = 20_000
	c := manytensors.Shared(t, n)
	var before, built, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ins := inspect(c)
	runtime.GC()
	runtime.ReadMemStats(&built)
	if err := printInspect(io.Discard, ins, inspectView{}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(ins)
	held := float64(built.HeapAlloc-before.HeapAlloc) / n
	allocated := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("per tensor: %.0f bytes held, %.0f allocated", held, allocated)
	if held > maxInspectHeldPerTensor {
		t.Errorf("the report holds %.0f bytes per tensor, more than %d", held, maxInspectHeldPerTensor)
	}
	if allocated > maxInspectAllocatedPerTensor {
		t.Errorf("the report allocates %.0f bytes per tensor, more than %d", allocated, maxInspectAllocatedPerTensor)
	}
}
