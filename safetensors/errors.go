package safetensors

import "errors"

// Errors that Open and NewReader wrap, so that callers can tell bad input apart with
// errors.Is. Every error names the file first.
var (
	// ErrNotSafetensors: the file does not start like a safetensors file.
	ErrNotSafetensors = errors.New("not a safetensors file")
	// ErrTruncated: the file ends before the data its header declares.
	ErrTruncated = errors.New("truncated")
	// ErrCorrupt: the header is not valid JSON of the right shape, or its spans disagree.
	ErrCorrupt = errors.New("corrupt")
	// ErrLimit: the header is longer than the reference implementation accepts.
	ErrLimit = errors.New("exceeds a safety limit")
	// ErrUnsupported: valid data pt2conv cannot represent, such as dtypes newer than it knows.
	ErrUnsupported = errors.New("unsupported")
	// ErrNotStateDict: the checkpoint to write is not a flat map of names to tensors.
	ErrNotStateDict = errors.New("not a flat state_dict of tensors")
	// ErrExists: Save's target exists and Force is not set.
	ErrExists = errors.New("output exists (use force to overwrite)")
	// ErrSameFile: Save's target is the file the checkpoint was read from.
	ErrSameFile = errors.New("output is the input file")
)
