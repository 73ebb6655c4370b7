package pickle_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/pt2conv/pt2conv/internal/torchtest"
	"github.com/pt2conv/pt2conv/pickle"
)

// allowlistDifferences are the names on one list and not the other, each with the reason.
// Anything else that differs fails TestAllowlistMatchesTorch.
var allowlistDifferences = map[string]string{
	// Python's protocol-2 pickler writes an empty bytes object as __builtin__.bytes(), and
	// pt2conv reads it back (non-empty bytes go through _codecs.encode, which torch allows).
	// torch's list lacks it, so torch refuses a weights_only load of a pickle holding b"".
	"builtins.bytes": "pt2conv only: empty bytes at protocol 2",
}

// refusedAsUnsupported are the names on both lists that pt2conv nonetheless refuses, with
// ErrUnsupported naming the construct, each with the reason: no file that torch writes and
// torch.load(weights_only=True) then reads can hold them. Every other name on the list is
// read, kept and written back.
var refusedAsUnsupported = map[string]string{
	"torch._utils._rebuild_wrapper_subclass": "written only for tensor subclasses without storage " +
		"(FakeTensor, functional tensors); its arguments name the subclass and torch.strided, which " +
		"the weights_only loader refuses unless the user allows them",
	"torch._utils._rebuild_device_tensor_from_numpy": "written only for xla/maia/mtia tensors, " +
		"and its data is a numpy array, whose globals the weights_only loader refuses",
	"torch._utils._rebuild_device_tensor_from_cpu_tensor": "written only for tensors on xla, maia " +
		"or a privateuse1 backend, which no CPU build of torch has, so no such file can be made " +
		"and checked",
}

// TestAllowlistMatchesTorch lists the globals the installed torch 2's weights_only unpickler
// allows (_get_allowed_globals, which includes _tensor_rebuild_functions) next to pt2conv's
// AllowedGlobals, and fails on every line that differs without a reason above.
func TestAllowlistMatchesTorch(t *testing.T) {
	const script = `
import json, torch
from torch._weights_only_unpickler import _get_allowed_globals
names = set(_get_allowed_globals())
try:  # every rebuild function is in the list above; this makes sure of it in any version
    from torch._weights_only_unpickler import _tensor_rebuild_functions
    names |= {"torch._utils." + f.__name__ for f in _tensor_rebuild_functions()}
except ImportError:
    pass
print(json.dumps(sorted(names)))
`
	var torch2 *torchtest.Torch
	for _, tr := range torchtest.All(t) {
		if !strings.HasPrefix(tr.Version, "1.") {
			torch2 = tr
		}
	}
	if torch2 == nil {
		t.Skip("no torch 2 installed")
	}
	var theirs []string
	if err := json.Unmarshal(torch2.Run(t, script), &theirs); err != nil {
		t.Fatal(err)
	}
	// torch reads __builtin__.X as builtins.X (torch._utils.IMPORT_MAPPING); compare that way.
	ours := map[string]bool{}
	for _, name := range pickle.AllowedGlobals() {
		if rest, ok := strings.CutPrefix(name, "__builtin__."); ok {
			name = "builtins." + rest
		}
		ours[name] = true
	}
	all := map[string]bool{}
	for _, n := range theirs {
		all[n] = true
	}
	torchHas := map[string]bool{}
	for _, n := range theirs {
		torchHas[n] = true
	}
	for n := range ours {
		all[n] = true
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	unsupported := map[string]bool{}
	for _, n := range pickle.UnsupportedGlobals() {
		unsupported[n] = true
		if refusedAsUnsupported[n] == "" {
			t.Errorf("%s is allowed but refused as unsupported, without a reason given here", n)
		}
	}
	for n := range refusedAsUnsupported {
		if !unsupported[n] {
			t.Errorf("%s is explained as refused, but pt2conv reads it", n)
		}
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-55s %-8s %s\n", "GLOBAL", torch2.Version, "pt2conv")
	for _, n := range names {
		mark := func(b bool) string {
			if b {
				return "yes"
			}
			return "-"
		}
		ourMark := mark(ours[n])
		if unsupported[n] {
			ourMark = "unsupported: " + refusedAsUnsupported[n]
		}
		fmt.Fprintf(&table, "%-55s %-8s %s\n", n, mark(torchHas[n]), ourMark)
		if torchHas[n] != ours[n] {
			if why, ok := allowlistDifferences[n]; ok {
				t.Logf("%s differs: %s", n, why)
				continue
			}
			t.Errorf("%s: torch %s allows it: %v, pt2conv: %v (unexplained difference)", n, torch2.Version, torchHas[n], ours[n])
		}
	}
	for n := range allowlistDifferences {
		if torchHas[n] == ours[n] {
			t.Errorf("%s is explained as a difference but both lists agree on it", n)
		}
	}
	t.Logf("%d globals side by side:\n%s", len(names), table.String())
}
