package pickle

import (
	"errors"
	"fmt"
)

// Errors that Open and NewReader wrap, so that callers can tell bad input apart with
// errors.Is. Every error they return names the file first.
var (
	// ErrNotCheckpoint: the file is neither a torch zip archive nor a legacy torch file.
	ErrNotCheckpoint = errors.New("not a PyTorch checkpoint")
	// ErrTorchScript: the archive is a TorchScript model (code and constants), not a state_dict.
	ErrTorchScript = errors.New("is a TorchScript archive, not a checkpoint")
	// ErrTruncated: the file ends before the data it declares.
	ErrTruncated = errors.New("truncated")
	// ErrCorrupt: the file's structure is inconsistent.
	ErrCorrupt = errors.New("corrupt")
	// ErrLimit: the file exceeds one of the reader's safety limits.
	ErrLimit = errors.New("exceeds a safety limit")
	// ErrUnsupported: valid torch data that pt2conv cannot represent.
	ErrUnsupported = errors.New("unsupported")
)

// GlobalError reports a pickle global outside the allowlist. Nothing named in a pickle is
// ever imported or run; the whole file is refused instead.
type GlobalError struct {
	Module, Name string
	Record       string // "data.pkl", or the legacy stream
}

func (e *GlobalError) Error() string {
	return fmt.Sprintf("refusing global %s.%s in %s (pt2conv never runs pickled code; only tensors, storages and plain Python values are allowed)", e.Module, e.Name, e.Record)
}
