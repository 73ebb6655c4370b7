// Package ckptio opens and saves checkpoints whatever their format. Open picks the codec by
// a file's content — torch's zip or legacy pickle magic, a safetensors header, or the JSON
// index of a sharded checkpoint — never by its name; an output's format follows its
// extension unless the caller says otherwise. Sharded checkpoints open as one checkpoint
// that holds every shard's tensors, and save back shard by shard.
package ckptio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/pickle"
	"github.com/pt2conv/pt2conv/safetensors"
)

// Format is a file format pt2conv writes.
type Format string

const (
	// PT is torch's zip format (torch.save).
	PT Format = "pt"
	// Safetensors is Hugging Face's safetensors format.
	Safetensors Format = "safetensors"
)

// ErrNotCheckpoint: the file is in no format pt2conv reads. It is pickle's sentinel, so
// that callers test for one error whatever the codec.
var ErrNotCheckpoint = pickle.ErrNotCheckpoint

// Open opens the checkpoint at path: a .pt file (zip or legacy), a safetensors file, or the
// index of a sharded checkpoint (then every shard it names is opened).
func Open(path string) (*checkpoint.Checkpoint, error) {
	head, size, err := readHead(path)
	if err != nil {
		return nil, err
	}
	switch {
	case size == 0:
		return pickle.Open(path) // which names the empty file
	case pickle.Sniff(bytes.NewReader(head)):
		return pickle.Open(path)
	case safetensors.Sniff(head, size):
		return safetensors.Open(path)
	case len(bytes.TrimLeft(head, " \t\r\n")) > 0 && bytes.TrimLeft(head, " \t\r\n")[0] == '{':
		return OpenIndex(path)
	case strings.HasSuffix(strings.ToLower(path), ".safetensors") || len(head) >= 8 && head[7] == 0 && head[6] == 0:
		// Named so, or starting with a plausible little-endian length: let the safetensors
		// reader say what is wrong with it.
		return safetensors.Open(path)
	}
	return nil, fmt.Errorf("%s: %w: neither a torch zip archive, a legacy torch file, a safetensors file nor a sharded checkpoint's index", path, ErrNotCheckpoint)
}

func readHead(path string) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if st.IsDir() {
		return nil, 0, fmt.Errorf("%s: %w: is a directory (give a file, or a sharded checkpoint's index)", path, ErrNotCheckpoint)
	}
	head := make([]byte, 263) // through the tar magic at 257, which pickle.Sniff looks for
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	return head[:n], st.Size(), nil
}

// IsIndex reports whether path names a sharded checkpoint's index (*.index.json).
func IsIndex(path string) bool {
	return strings.HasSuffix(strings.ToLower(path), ".index.json")
}

// OutputFormat is the format to write path in: override when set ("pt" or
// "safetensors"), else by extension — .safetensors (and *.safetensors.index.json) is
// safetensors, anything else torch's format.
func OutputFormat(path, override string) (Format, error) {
	switch override {
	case "pt", "torch":
		return PT, nil
	case "safetensors":
		return Safetensors, nil
	case "":
	default:
		return "", fmt.Errorf("--format %q: use pt or safetensors", override)
	}
	p := strings.TrimSuffix(strings.ToLower(path), ".index.json")
	if strings.HasSuffix(p, ".safetensors") {
		return Safetensors, nil
	}
	return PT, nil
}

// FormatOf is the format a checkpoint was read in.
func FormatOf(c *checkpoint.Checkpoint) Format {
	if s := ShardedOf(c); s != nil {
		return s.Format
	}
	if c.Format == safetensors.FormatName {
		return Safetensors
	}
	return PT
}

// Rename gives a file name the extension of format f, following Hugging Face's names:
// pytorch_model-00001-of-00002.bin becomes model-00001-of-00002.safetensors and back, and
// pytorch_model.bin.index.json becomes model.safetensors.index.json. A name already in f
// is kept.
func Rename(name string, f Format) string {
	dir, base := filepath.Split(name)
	index := strings.HasSuffix(base, ".index.json")
	stem := strings.TrimSuffix(base, ".index.json")
	ext := filepath.Ext(stem)
	switch {
	case f == Safetensors && ext == ".safetensors", f == PT && ext != ".safetensors" && ext != "":
		return name
	}
	stem = strings.TrimSuffix(stem, ext)
	if f == Safetensors {
		if rest, ok := strings.CutPrefix(stem, "pytorch_model"); ok {
			stem = "model" + rest
		}
		stem += ".safetensors"
	} else {
		if rest, ok := strings.CutPrefix(stem, "model"); ok && (rest == "" || rest[0] == '-') {
			stem = "pytorch_model" + rest
		}
		stem += ".bin"
		if !index && ext == "" {
			stem = strings.TrimSuffix(stem, ".bin") + ".pt"
		}
	}
	if index {
		stem += ".index.json"
	}
	return dir + stem
}

// SaveOptions tune Save.
type SaveOptions struct {
	Force    bool
	Progress func(done, total int64)
	// Warn receives what the output format cannot keep (storages shared between tensors
	// in a safetensors output).
	Warn func(msg string)
	// Jobs is how many shards of a sharded checkpoint are written at a time.
	Jobs int
}

// ErrExists: the output exists and Force is not set.
var ErrExists = errors.New("output exists")

// Save writes c to path in format f, atomically. A checkpoint opened from a sharded
// checkpoint's index is written as a sharded set: path is then the new index.
func Save(path string, c *checkpoint.Checkpoint, f Format, opts SaveOptions) error {
	if ShardedOf(c) != nil {
		return saveSharded(path, c, f, opts)
	}
	var err error
	switch f {
	case Safetensors:
		err = safetensors.Save(path, c, &safetensors.SaveOptions{Force: opts.Force,
			WriteOptions: safetensors.WriteOptions{Progress: opts.Progress, Warn: opts.Warn}})
	default:
		err = pickle.Save(path, c, &pickle.SaveOptions{Force: opts.Force, Progress: opts.Progress})
	}
	if errors.Is(err, safetensors.ErrExists) || errors.Is(err, pickle.ErrExists) {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	return err
}

// SelectStateDict returns c with its root replaced by the dict at key, a "/"-separated
// path of dict keys and list indices ("model", "train/state_dict", "models/0").
func SelectStateDict(c *checkpoint.Checkpoint, key string) (*checkpoint.Checkpoint, error) {
	_, v, ok := checkpoint.Lookup(c.Root, key)
	if !ok {
		return nil, fmt.Errorf("--state-dict %s: no key %q in the checkpoint; state_dicts found: %s", key, key, stateDictList(c.Root))
	}
	switch v.(type) {
	case *checkpoint.Dict, *checkpoint.OrderedDict:
	default:
		return nil, fmt.Errorf("--state-dict %s: is a %s, not a dict", key, checkpoint.TypeName(v))
	}
	return c.WithRoot(v), nil
}

func stateDictList(root checkpoint.Value) string {
	if p := safetensors.StateDictPaths(root); len(p) > 0 {
		return strings.Join(p, ", ")
	}
	return "none"
}
