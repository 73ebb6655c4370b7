package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/pt2conv/pt2conv/internal/torchtest"
)

// judgeCase is one conversion a torch judge script checks: the original and converted files
// (host paths), the converted weights' expected shapes, and whether it is the seed example.
type judgeCase struct {
	Orig   string             `json:"orig"`
	Conv   string             `json:"conv"`
	Shapes map[string][]int64 `json:"shapes"`
	Seed   bool               `json:"seed,omitempty"`
}

// judge runs the judge script (a path from the repository's root) in tr on cases, passing
// args and then a JSON file of the cases with their paths as tr sees them.
func judge(t *testing.T, tr *torchtest.Torch, script string, cases []judgeCase, args ...string) ([]byte, error) {
	t.Helper()
	shared := make([]judgeCase, len(cases))
	for i, c := range cases {
		c.Orig, c.Conv = tr.Share(t, c.Orig), tr.Share(t, c.Conv)
		shared[i] = c
	}
	b, err := json.Marshal(shared)
	if err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(t.TempDir(), "cases-"+tr.Name+".json")
	if err := os.WriteFile(spec, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return tr.Output(tr.Share(t, filepath.Join(torchtest.RepoRoot(t), script)), append(args, tr.Share(t, spec))...)
}
