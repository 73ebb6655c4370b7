package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/pt2conv/pt2conv/rewrite"
)

// readPlanFile reads --plan FILE; its mistakes are reported as FILE:LINE. origins says for
// each spec where it is written, FILE:LINE.
func readPlanFile(path string) (specs []rewrite.Spec, origins []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("--plan %s: no such file", path)
		}
		return nil, nil, fmt.Errorf("--plan %w", unwrapPath(err))
	}
	defer f.Close()
	entries, err := rewrite.ReadPlan(f)
	if err != nil {
		var pe *rewrite.PlanError
		if errors.As(err, &pe) && pe.Line > 0 {
			return nil, nil, fmt.Errorf("%s:%d: %w", path, pe.Line, planMessage(pe.Err))
		}
		return nil, nil, fmt.Errorf("%s: %w", path, planMessage(err))
	}
	for _, e := range entries {
		specs = append(specs, e.Spec)
		origins = append(origins, fmt.Sprintf("%s:%d", path, e.Line))
	}
	return specs, origins, nil
}

// planMessage drops the sentinel's words from a plan error: FILE:LINE says it is the plan.
func planMessage(err error) error {
	msg := strings.TrimPrefix(err.Error(), rewrite.ErrSpec.Error()+": ")
	return errors.New(msg)
}

// duplicateSpecs refuses a spec given twice, naming where each is written.
func duplicateSpecs(specs []rewrite.Spec, origins []string) error {
	first := map[string]int{}
	for i, sp := range specs {
		key := sp.String()
		if j, ok := first[key]; ok {
			return fmt.Errorf("%s and %s give the same spec %s: give it once", origins[j], origins[i], key)
		}
		first[key] = i
	}
	return nil
}

// specError says where the spec an error is about is written, when that is a plan file
// (a --layer spec is named by the error itself).
func specError(err error, o *convertOptions) error {
	var le *rewrite.LayerError
	if !errors.As(err, &le) || le.SpecIndex < 0 || le.SpecIndex >= len(o.origins) {
		return err
	}
	origin := o.origins[le.SpecIndex]
	if strings.HasPrefix(origin, "--layer ") {
		return err
	}
	return &reworded{msg: fmt.Sprintf("%s: %s: %s", origin, o.specs[le.SpecIndex], le.Detail), err: err}
}
