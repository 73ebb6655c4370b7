package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// MaxHeaderBytes is the longest header the reference implementation reads.
const MaxHeaderBytes = 100_000_000

// FormatName is Checkpoint.Format for files this package reads.
const FormatName = "safetensors"

// Header is what a file's header says besides its tensors; Open stores it as the
// checkpoint's Container so that a writer can keep the metadata.
type Header struct {
	// Metadata is the "__metadata__" map; nil when absent or null.
	Metadata map[string]string
	// Len is the header's length in bytes (N); the data region starts at 8+N.
	Len int64
}

// DataStart is where the data region begins in the file.
func (h *Header) DataStart() int64 { return 8 + h.Len }

// HeaderOf returns the header a checkpoint was read with, or nil when it was not read
// from a safetensors file.
func HeaderOf(c *checkpoint.Checkpoint) *Header {
	h, _ := c.Container.(*Header)
	return h
}

// Sniff reports whether head, a file's first bytes (at least 9 of them), starts like a
// safetensors file: a header length that fits the file, then a JSON object.
func Sniff(head []byte, size int64) bool {
	if len(head) < 9 || size < 10 {
		return false
	}
	n := binary.LittleEndian.Uint64(head)
	return n >= 2 && n <= uint64(size-8) && head[8] == '{'
}

// Open opens the safetensors file at name, reading and validating its header only. The
// file stays open for the tensors' bytes until Close.
func Open(name string) (*checkpoint.Checkpoint, error) {
	return checkpoint.OpenFile(name, ErrNotSafetensors, NewReader)
}

// NewReader reads the header of a safetensors file of the given size from r; name is used
// in errors. The checkpoint's root is an OrderedDict of the tensors in header order, each
// over a storage of its own whose Key is its position in that order.
func NewReader(r io.ReaderAt, size int64, name string) (*checkpoint.Checkpoint, error) {
	root, h, err := readHeader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := checkpoint.New(root, r, size, name)
	c.Format, c.Container = FormatName, h
	return c, nil
}

// tensorInfo is one tensor's entry in the header.
type tensorInfo struct {
	name       string
	kind       checkpoint.StorageKind
	shape      []int64
	begin, end uint64
}

func readHeader(r io.ReaderAt, size int64) (checkpoint.Value, *Header, error) {
	if size < 8 {
		return nil, nil, fmt.Errorf("%w: %d bytes, too short for the 8-byte header length", ErrTruncated, size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, nil, fmt.Errorf("%w: reading the header length: %v", ErrTruncated, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderBytes {
		return nil, nil, fmt.Errorf("%w: header length %d is over %d bytes (or the file is not safetensors)", ErrLimit, n, MaxHeaderBytes)
	}
	if n > uint64(size-8) {
		return nil, nil, fmt.Errorf("%w: the header claims %d bytes but only %d follow the length", ErrTruncated, n, size-8)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, nil, fmt.Errorf("%w: reading the header: %v", ErrTruncated, err)
	}
	if !utf8.Valid(hdr) {
		return nil, nil, fmt.Errorf("%w: the header is not UTF-8", ErrCorrupt)
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, fmt.Errorf("%w: the header does not start with '{'", ErrCorrupt)
	}
	infos, meta, err := parseHeader(hdr)
	if err != nil {
		return nil, nil, err
	}
	dataLen := uint64(size) - 8 - n
	if err := validate(infos, dataLen); err != nil {
		return nil, nil, err
	}
	h := &Header{Metadata: meta, Len: int64(n)}
	od := &checkpoint.OrderedDict{Entries: make([]checkpoint.Entry, 0, len(infos))}
	for i, ti := range infos {
		numel := int64(1)
		for _, d := range ti.shape {
			numel *= d
		}
		s := &checkpoint.Storage{
			Kind: ti.kind, Key: strconv.Itoa(i), Location: "cpu", Len: numel,
			Offset: h.DataStart() + int64(ti.begin),
		}
		od.Entries = append(od.Entries, checkpoint.Entry{Key: ti.name, Value: &checkpoint.Tensor{
			Storage: s, Size: ti.shape, Stride: checkpoint.ContiguousStrides(ti.shape),
		}})
	}
	return od, h, nil
}

// parseHeader decodes the header object, refusing duplicate keys, which encoding/json
// would silently let the last one win.
func parseHeader(hdr []byte) ([]tensorInfo, map[string]string, error) {
	var infos []tensorInfo
	var meta map[string]string
	err := eachMember(hdr, "the header", func(key string, raw json.RawMessage) error {
		if key == "__metadata__" {
			m, err := parseMetadata(raw)
			meta = m
			return err
		}
		ti, err := parseTensorInfo(key, raw)
		if err != nil {
			return err
		}
		infos = append(infos, ti)
		return nil
	})
	return infos, meta, err
}

// eachMember calls fn for every member of the JSON object in data, in order, and refuses
// duplicate keys and anything but whitespace after the object.
func eachMember(data []byte, what string, fn func(key string, raw json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	corrupt := func(err error) error {
		return fmt.Errorf("%w: %s is not a valid JSON object: %v", ErrCorrupt, what, err)
	}
	tok, err := dec.Token()
	if err != nil {
		return corrupt(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%w: %s is not a JSON object", ErrCorrupt, what)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return corrupt(err)
		}
		key, ok := tok.(string)
		if !ok {
			return corrupt(fmt.Errorf("key %v", tok))
		}
		if seen[key] {
			return fmt.Errorf("%w: %s has the key %q twice", ErrCorrupt, what, key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return corrupt(err)
		}
		if err := fn(key, raw); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return corrupt(err)
	}
	rest := data[dec.InputOffset():]
	if len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return fmt.Errorf("%w: %s has bytes after its closing brace", ErrCorrupt, what)
	}
	return nil
}

func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	meta := map[string]string{}
	err := eachMember(raw, "__metadata__", func(key string, v json.RawMessage) error {
		var s string
		if err := json.Unmarshal(v, &s); err != nil || string(v) == "null" {
			return fmt.Errorf("%w: __metadata__[%q] is not a string", ErrCorrupt, key)
		}
		meta[key] = s
		return nil
	})
	return meta, err
}

func parseTensorInfo(name string, raw json.RawMessage) (tensorInfo, error) {
	ti := tensorInfo{name: name}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: tensor %q: %s", ErrCorrupt, name, fmt.Sprintf(format, args...))
	}
	var dtype string
	var shape, offsets []json.Number
	have := map[string]bool{}
	err := eachMember(raw, strconv.Quote(name), func(key string, v json.RawMessage) error {
		var err error
		switch key {
		case "dtype":
			err = json.Unmarshal(v, &dtype)
		case "shape":
			err = json.Unmarshal(v, &shape)
		case "data_offsets":
			err = json.Unmarshal(v, &offsets)
		default:
			return nil // unknown fields are ignored, as the reference does
		}
		if err != nil || string(v) == "null" {
			return bad("%s is not of the right type: %s", key, clip(v))
		}
		have[key] = true
		return nil
	})
	if err != nil {
		return ti, err
	}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if !have[k] {
			return ti, bad("no %s", k)
		}
	}
	kind, ok := dtypes[dtype]
	switch {
	case !ok && newerDTypes[dtype]:
		return ti, fmt.Errorf("%w: tensor %q has dtype %s, which newer safetensors releases added and pt2conv does not know", ErrUnsupported, name, dtype)
	case !ok:
		return ti, bad("unknown dtype %q", dtype)
	}
	ti.kind = kind
	ti.shape = make([]int64, len(shape))
	for i, d := range shape {
		u, err := strconv.ParseUint(string(d), 10, 64)
		if err != nil {
			return ti, bad("shape entry %s is not a non-negative integer", d)
		}
		if u > math.MaxInt64 {
			return ti, fmt.Errorf("%w: tensor %q: dimension %d is too large", ErrUnsupported, name, u)
		}
		ti.shape[i] = int64(u)
	}
	if len(offsets) != 2 {
		return ti, bad("data_offsets has %d entries, want [begin, end]", len(offsets))
	}
	var ends [2]uint64
	for i, o := range offsets {
		u, err := strconv.ParseUint(string(o), 10, 64)
		if err != nil {
			return ti, bad("data offset %s is not a non-negative integer", o)
		}
		ends[i] = u
	}
	ti.begin, ti.end = ends[0], ends[1]
	return ti, nil
}

// validate applies the reference's rules to the spans: sorted by offsets, each starts where
// the previous ended, holds exactly its element count times the item size, and the last
// ends at the end of the data region.
func validate(infos []tensorInfo, dataLen uint64) error {
	order := make([]int, len(infos))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		x, y := &infos[order[a]], &infos[order[b]]
		if x.begin != y.begin {
			return x.begin < y.begin
		}
		return x.end < y.end
	})
	var next uint64
	for _, i := range order {
		ti := &infos[i]
		if ti.begin != next {
			what := "a hole before it"
			if ti.begin < next {
				what = "it overlaps the tensor before it"
			}
			return fmt.Errorf("%w: tensor %q starts at byte %d of the data, expected %d (%s)", ErrCorrupt, ti.name, ti.begin, next, what)
		}
		if ti.end < ti.begin {
			return fmt.Errorf("%w: tensor %q ends (%d) before it begins (%d)", ErrCorrupt, ti.name, ti.end, ti.begin)
		}
		n := uint64(ti.kind.ItemSize())
		for _, d := range ti.shape {
			hi, lo := bits.Mul64(n, uint64(d))
			if hi != 0 {
				return fmt.Errorf("%w: tensor %q: shape %v overflows", ErrCorrupt, ti.name, ti.shape)
			}
			n = lo
		}
		if n != ti.end-ti.begin {
			return fmt.Errorf("%w: tensor %q: shape %v of %s needs %d bytes but its span has %d", ErrCorrupt, ti.name, ti.shape, ti.kind, n, ti.end-ti.begin)
		}
		if n > math.MaxInt64 || ti.end > dataLen {
			return fmt.Errorf("%w: tensor %q ends at byte %d but the data region has %d", ErrTruncated, ti.name, ti.end, dataLen)
		}
		next = ti.end
	}
	if next != dataLen {
		return fmt.Errorf("%w: the tensors cover %d bytes but the data region has %d", ErrCorrupt, next, dataLen)
	}
	return nil
}

// clip shortens a JSON value for an error message.
func clip(v []byte) string {
	const max = 40
	if len(v) > max {
		return string(v[:max]) + "..."
	}
	return string(v)
}
