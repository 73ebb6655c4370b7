package pickle

import (
	"errors"
	"fmt"
	"strings"
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
	msg := fmt.Sprintf("refusing global %s.%s in %s (pt2conv never runs pickled code; only tensors, storages and plain Python values are allowed)", e.Module, e.Name, e.Record)
	if e.looksLikeModel() {
		msg += "; a whole model saved with torch.save(model)? save its weights instead: torch.save(model.state_dict(), PATH)"
	}
	return msg
}

// looksLikeModel reports whether the global is a Python class outside the standard
// library's process, file and code machinery: what torch.save(model) pickles (the model's
// nn.Module classes), as opposed to a pickle that reaches for os.system or eval.
func (e *GlobalError) looksLikeModel() bool {
	if e.Name == "" || e.Name[0] < 'A' || e.Name[0] > 'Z' {
		return false
	}
	root, _, _ := strings.Cut(e.Module, ".")
	switch root {
	case "os", "posix", "nt", "sys", "subprocess", "builtins", "__builtin__", "copy_reg", "copyreg", "shutil",
		"socket", "pty", "importlib", "runpy", "code", "ctypes", "io", "pickle", "types", "functools",
		"operator", "multiprocessing", "threading", "pathlib", "tempfile", "webbrowser", "codecs":
		return false
	}
	return true
}
