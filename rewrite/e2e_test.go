package rewrite_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/pt2conv/pt2conv/internal/torchtest"
	"github.com/pt2conv/pt2conv/pickle"
	"github.com/pt2conv/pt2conv/rewrite"
)

const e2eScript = "rewrite/testdata/e2e_models.py"

// manifestEntry is one model of the manifest e2e_models.py writes.
type manifestEntry struct {
	Name         string   `json:"name"`
	Input        string   `json:"input"`
	Converted    string   `json:"converted"`
	Specs        []string `json:"specs"`
	OptimizerKey string   `json:"optimizer_key"`
}

// TestTorchEndToEnd has each torch build Linear models and save training checkpoints, converts
// them with pickle.Open, NewPlan, Apply and Save, and has every torch load the results with
// strict=True into the Conv2d twins: same outputs, the head slides over larger inputs, and an
// optimizer step resumes identically.
func TestTorchEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PyTorch")
	}
	torches := torchtest.All(t)
	// every torch saves the Linear checkpoints; pt2conv converts each set
	made := make([]string, len(torches)) // host directories
	for i, maker := range torches {
		host, inside := maker.TempDir(t)
		maker.Run(t, e2eScript, "make", inside)
		for _, m := range readManifest(t, host) {
			convert(t, maker.Name, host, m)
		}
		made[i] = host
	}
	// every torch checks every set, so that files from one version are judged by the other
	for _, checker := range torches {
		t.Run("checked_by_"+checker.Name, func(t *testing.T) {
			var dirs []string
			for _, host := range made {
				h, inside := checker.TempDir(t)
				torchtest.CopyDir(t, h, host)
				dirs = append(dirs, inside)
			}
			script := checker.Share(t, filepath.Join(torchtest.RepoRoot(t), e2eScript))
			out, err := checker.Output(script, append([]string{"check"}, dirs...)...)
			t.Logf("%s:\n%s", checker, out)
			if err != nil {
				t.Errorf("%s: %v", checker, err)
			}
		})
	}
}

func readManifest(t *testing.T, dir string) []manifestEntry {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m []manifestEntry
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) == 0 {
		t.Fatal("empty manifest")
	}
	return m
}

func convert(t *testing.T, maker, dir string, m manifestEntry) {
	t.Helper()
	c, err := pickle.Open(filepath.Join(dir, m.Input))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var specs []rewrite.Spec
	for _, s := range m.Specs {
		sp, err := rewrite.ParseSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, sp)
	}
	plan, err := rewrite.NewPlan(c, specs, rewrite.Options{OptimizerKey: m.OptimizerKey})
	if err != nil {
		t.Fatalf("%s: %v", m.Name, err)
	}
	for _, w := range plan.Warnings {
		t.Errorf("%s: unexpected warning: %s", m.Name, w)
	}
	out, err := rewrite.Apply(c, plan)
	if err != nil {
		t.Fatalf("%s: %v", m.Name, err)
	}
	if err := pickle.Save(filepath.Join(dir, m.Converted), out, nil); err != nil {
		t.Fatalf("%s: %v", m.Name, err)
	}
	t.Logf("%s, made by %s: %d tensors changed (%d optimizer state)", m.Name, maker, len(plan.Changes), countOptimizer(plan))
}

func countOptimizer(p *rewrite.Plan) int {
	n := 0
	for _, ch := range p.Changes {
		if ch.Optimizer {
			n++
		}
	}
	return n
}
