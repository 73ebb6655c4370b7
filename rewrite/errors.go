package rewrite

import (
	"errors"
	"github.com/pt2conv/pt2conv/checkpoint"
	"strings"
)

// Sentinel errors; NewPlan and Apply return them wrapped in a *LayerError (or with %w) so
// that callers can test with errors.Is.
var (
	// ErrNoStateDict: nothing in the checkpoint looks like a state_dict.
	ErrNoStateDict = errors.New("no state_dict found")
	// ErrNoMatch: a spec selects no weight of the rank the direction converts.
	ErrNoMatch = errors.New("no weight matches")
	// ErrRank: a spec names a weight that is not 2-D (4-D when converting back to Linear).
	ErrRank = errors.New("weight has the wrong number of dimensions")
	// ErrShape: the spec's shape does not hold exactly the weight's inputs.
	ErrShape = errors.New("shape does not fit the weight")
	// ErrAuto: an auto spec finds no weight to take C from, or in/C is not a square.
	ErrAuto = errors.New("auto shape not found")
	// ErrConflict: two specs select the same weight.
	ErrConflict = errors.New("two specs select one weight")
	// ErrNotViewable: the weight's strides do not allow the view (a Conv2d weight whose
	// C, kH, kW dimensions cannot collapse without moving bytes).
	ErrNotViewable = errors.New("strides do not allow a view")
	// ErrOptimizer: the optimizer state cannot be mapped to parameters without guessing.
	ErrOptimizer = errors.New("optimizer state cannot be mapped")
	// ErrStalePlan: Apply got a plan whose paths or sizes do not fit the checkpoint.
	ErrStalePlan = errors.New("plan does not fit the checkpoint")
)

// LayerError reports why a layer or spec cannot be converted. Err is one of the sentinels.
type LayerError struct {
	Layer  string          // module name, or the spec as written when no layer is known
	Dict   checkpoint.Path // the state_dict, when known
	Err    error
	Detail string // the message after the layer name; it carries the numbers
	// SpecIndex is the index, in the specs given to NewPlan, of the spec the error is
	// about, so that a caller can say where that spec was written.
	SpecIndex int
}

func (e *LayerError) Error() string {
	if errors.Is(e.Err, ErrNoMatch) {
		// the contract of the command line quotes the flag the spec came from
		return "--layer " + e.Layer + ": " + e.Detail
	}
	return e.Layer + ": " + e.Detail
}

func (e *LayerError) Unwrap() error { return e.Err }

// nameList joins names for a message, keeping it to one readable line.
func nameList(names []string) string {
	const most = 20
	if len(names) == 0 {
		return "none"
	}
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:most], ", ") + ", … (" + itoa(int64(len(names)-most)) + " more)"
}
