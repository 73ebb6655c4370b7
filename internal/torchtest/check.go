package torchtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// CheckScript is the repository's PyTorch-side checker, relative to the repository root.
const CheckScript = "scripts/torchcheck.py"

// SameResult is what scripts/torchcheck.py reports when two checkpoints hold the same thing.
type SameResult struct {
	Same        bool   `json:"same"`
	Tensors     int    `json:"tensors"`
	WeightsOnly bool   `json:"weights_only"`
	Torch       string `json:"torch"`
}

// Same asks torch whether the checkpoint at copyPath holds exactly what the one at
// originalPath holds (see scripts/torchcheck.py). Both are host paths. A difference found by
// torch is an error wrapping ErrDiffer whose text names the first difference; any other
// failure ends the test.
func (tr *Torch) Same(t testing.TB, originalPath, copyPath string) (SameResult, error) {
	t.Helper()
	script := tr.Share(t, repoPath(t, CheckScript))
	out, err := tr.Output(script, "same", tr.Share(t, originalPath), tr.Share(t, copyPath))
	var res SameResult
	if err != nil {
		var run *RunError
		var exit *exec.ExitError
		if errors.As(err, &run) && errors.As(err, &exit) && exit.ExitCode() == 1 {
			return res, fmt.Errorf("%w (%s): %s", ErrDiffer, tr, run.Stderr)
		}
		t.Fatalf("%s: %v", tr, err)
	}
	if err := json.Unmarshal(out, &res); err != nil || !res.Same {
		t.Fatalf("%s: torchcheck same printed %q: %v", tr, out, err)
	}
	return res, nil
}

// TensorFacts describes one tensor of a checkpoint. Key is its path in the object tree, keys
// joined with "/" ("model/classifier.0.weight", "optimizer/state/0/momentum_buffer"); DType is
// torch's name (float32, bfloat16, int64, ...); SHA256 is of its elements' bytes in row-major
// order. The storage fields come from the file itself and are set in fixtures/manifest.json
// only, not by Describe.
type TensorFacts struct {
	Key             string  `json:"key"`
	DType           string  `json:"dtype"`
	Shape           []int64 `json:"shape"`
	Stride          []int64 `json:"stride"`
	StorageOffset   int64   `json:"storage_offset"`
	StorageKey      string  `json:"storage_key,omitempty"`
	StorageNumel    int64   `json:"storage_numel,omitempty"`
	StorageLocation string  `json:"storage_location,omitempty"`
	SHA256          string  `json:"sha256"`
}

// Description is how torch sees a checkpoint: whether torch.load(weights_only=True) accepts it
// and every tensor in it, keys joined with "/".
type Description struct {
	Torch       string        `json:"torch"`
	WeightsOnly bool          `json:"weights_only"`
	Tensors     []TensorFacts `json:"tensors"`
}

// Describe loads the checkpoint at hostPath with torch and returns what it holds, failing the
// test if torch cannot load it at all.
func (tr *Torch) Describe(t testing.TB, hostPath string) Description {
	t.Helper()
	out := tr.Run(t, CheckScript, "describe", tr.Share(t, hostPath))
	var d Description
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("%s: torchcheck describe printed %q: %v", tr, out, err)
	}
	return d
}

// SameAll is Same for many pairs (host paths, original then copy) in one torch process,
// since starting torch takes seconds. It returns the first difference.
func (tr *Torch) SameAll(t testing.TB, pairs [][2]string) ([]SameResult, error) {
	t.Helper()
	args := []string{"same"}
	for _, p := range pairs {
		args = append(args, tr.Share(t, p[0]), tr.Share(t, p[1]))
	}
	out, err := tr.Output(tr.Share(t, repoPath(t, CheckScript)), args...)
	if err != nil {
		var run *RunError
		var exit *exec.ExitError
		if errors.As(err, &run) && errors.As(err, &exit) && exit.ExitCode() == 1 {
			return nil, fmt.Errorf("%w (%s): %s", ErrDiffer, tr, run.Stderr)
		}
		t.Fatalf("%s: %v", tr, err)
	}
	var results []SameResult
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var res SameResult
		if err := json.Unmarshal([]byte(line), &res); err != nil || !res.Same {
			t.Fatalf("%s: torchcheck same printed %q: %v", tr, line, err)
		}
		results = append(results, res)
	}
	if len(results) != len(pairs) {
		t.Fatalf("%s: %d results for %d pairs", tr, len(results), len(pairs))
	}
	return results, nil
}
