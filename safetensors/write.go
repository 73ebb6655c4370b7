package safetensors

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/osfile"
)

// WriteOptions tune Write.
type WriteOptions struct {
	// Metadata is written as "__metadata__". When nil, the metadata of a checkpoint read
	// from a safetensors file is kept, and a checkpoint from any other format gets
	// {"format": "pt"}, as Hugging Face's converters write.
	Metadata map[string]string
	// Progress, if set, is called as tensor bytes are written, with the bytes written so
	// far and the total.
	Progress func(done, total int64)
	// Warn, if set, receives one message per group of tensors that share storage: each is
	// written with its own copy of the bytes, since the format has no aliasing.
	Warn func(msg string)
	// Context, if set, stops the write between two chunks when it is done.
	Context context.Context
}

// SaveOptions tune Save.
type SaveOptions struct {
	WriteOptions
	// Force allows Save to replace an existing file.
	Force bool
}

// entry is one tensor to write.
type entry struct {
	name       string
	t          *checkpoint.Tensor
	dtype      string
	begin, end int64 // in the output's data region
}

// StateDict returns the tensors of root in order, which must be a dict with string keys
// whose values are all tensors: what a safetensors file can hold. Otherwise the error
// (matching ErrNotStateDict) names the state_dicts found below root, one of which the
// caller can pick.
func StateDict(root checkpoint.Value) ([]checkpoint.NamedTensor, error) {
	entries, _, ok := checkpoint.Children(root)
	isDict := false
	switch root.(type) {
	case *checkpoint.Dict, *checkpoint.OrderedDict:
		isDict = true
	}
	var out []checkpoint.NamedTensor
	flat := ok && isDict
	for _, e := range entries {
		name, isStr := e.Key.(string)
		t, isTensor := checkpoint.AsTensor(e.Value)
		if isStr && !isTensor && checkpoint.IsTensor(e.Value) && flat && allTensors(entries) {
			// A sparse, meta or nested tensor: a safetensors file holds dense data only.
			return nil, fmt.Errorf("%w: tensor %q is a %s, which a safetensors file cannot hold", ErrUnsupported, name, checkpoint.TypeName(e.Value))
		}
		if !isStr || !isTensor {
			flat = false
			break
		}
		if _, ok := e.Value.(*checkpoint.AttrTensor); ok && flat {
			// Writing the data alone would drop the attributes without a word.
			return nil, fmt.Errorf("%w: tensor %q carries Python attributes, which a safetensors file cannot hold", ErrUnsupported, name)
		}
		out = append(out, checkpoint.NamedTensor{Path: checkpoint.Path{name}, Tensor: t})
	}
	if flat {
		return out, nil
	}
	found := StateDictPaths(root)
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: the checkpoint holds no dict of tensors to write", ErrNotStateDict)
	}
	return nil, fmt.Errorf("%w: the checkpoint nests other values with its tensors; choose the state_dict to write with --state-dict KEY: %s", ErrNotStateDict, strings.Join(found, ", "))
}

// allTensors reports whether every entry is a tensor of some kind under a string key.
func allTensors(entries []checkpoint.Entry) bool {
	for _, e := range entries {
		if _, ok := e.Key.(string); !ok || !checkpoint.IsTensor(e.Value) {
			return false
		}
	}
	return true
}

// StateDictPaths lists the paths of the non-empty dicts below root whose keys are strings
// and whose values are all tensors, leaving out those below an integer key (an optimizer's
// per-parameter state).
func StateDictPaths(root checkpoint.Value) []string {
	var found []string
	_ = checkpoint.Walk(root, func(path checkpoint.Path, v checkpoint.Value) error {
		switch v.(type) {
		case *checkpoint.Dict, *checkpoint.OrderedDict:
		default:
			return nil
		}
		entries, _, _ := checkpoint.Children(v)
		if len(entries) == 0 || len(path) == 0 {
			return nil
		}
		for _, part := range path {
			if part != "" && strings.Trim(part, "0123456789") == "" {
				return nil
			}
		}
		for _, e := range entries {
			_, isStr := e.Key.(string)
			if _, isTensor := checkpoint.AsTensor(e.Value); !isStr || !isTensor {
				return nil
			}
		}
		found = append(found, path.String())
		return checkpoint.SkipChildren
	})
	return found
}

// Write writes the checkpoint, whose root must be a flat state_dict (see StateDict), as a
// safetensors file and returns the number of bytes written. Tensors are laid out by item
// size, largest first (so every tensor is aligned to its element size, as the reference
// writer does), then in the order of their bytes in the source. Contiguous tensors are
// copied raw, adjacent ones in one block; when both ends are files the copy stays in the
// kernel. Views are gathered in tiles; memory stays bounded whatever the tensors' size.
func Write(w io.Writer, c *checkpoint.Checkpoint, opts *WriteOptions) (int64, error) {
	if opts == nil {
		opts = &WriteOptions{}
	}
	named, err := StateDict(c.Root)
	if err != nil {
		return 0, err
	}
	entries, err := layout(named, c)
	if err != nil {
		return 0, err
	}
	if opts.Warn != nil {
		for _, msg := range aliasWarnings(named) {
			opts.Warn(msg)
		}
	}
	meta := opts.Metadata
	if meta == nil {
		if h := HeaderOf(c); h != nil {
			meta = h.Metadata
		} else {
			meta = map[string]string{"format": "pt"}
		}
	}
	hdr, err := encodeHeader(entries, meta, dataResidue(entries, c))
	if err != nil {
		return 0, err
	}
	s := newSink(w, c, opts)
	defer func() {
		if s.wb != nil {
			s.wb.Wait() // before the caller closes the file
		}
	}()
	if len(entries) > 0 {
		s.total = entries[len(entries)-1].end
	}
	s.report()
	if err := s.bytes(hdr); err != nil {
		return s.written, err
	}
	for i := range entries {
		if err := s.tensor(entries[i].t); err != nil {
			return s.written, fmt.Errorf("tensor %q: %w", entries[i].name, err)
		}
	}
	err = s.flush()
	return s.written, err
}

// Save writes the checkpoint to path as Write does, atomically: a temporary file beside
// path is written, synced and renamed into place, so that path holds either its old
// content or the complete new file.
func Save(path string, c *checkpoint.Checkpoint, opts *SaveOptions) error {
	if opts == nil {
		opts = &SaveOptions{}
	}
	if sameFile(c, path) {
		return fmt.Errorf("%s: %w", path, ErrSameFile)
	}
	err := osfile.WriteAtomic(path, opts.Force, func(f *os.File) error {
		if _, err := Write(f, c, &opts.WriteOptions); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		return nil
	})
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	return err
}

func sameFile(c *checkpoint.Checkpoint, path string) bool {
	out, err := os.Stat(path)
	if err != nil {
		return false
	}
	if f, _, ok := c.SourceFile(); ok {
		if fi, err := f.Stat(); err == nil && os.SameFile(fi, out) {
			return true
		}
	}
	if fi, err := os.Stat(c.Name); err == nil && os.SameFile(fi, out) {
		return true
	}
	return false
}

// layout checks every tensor and assigns its span in the output's data region.
func layout(named []checkpoint.NamedTensor, c *checkpoint.Checkpoint) ([]entry, error) {
	_, srcSize := c.Source()
	entries := make([]entry, 0, len(named))
	for _, nt := range named {
		name, t := nt.Path.String(), nt.Tensor
		s := t.Storage
		if s == nil {
			return nil, fmt.Errorf("tensor %q has no storage", name)
		}
		dtype, ok := DTypeName(s.Kind)
		if !ok {
			return nil, fmt.Errorf("tensor %q: %w: safetensors has no dtype for %s", name, ErrUnsupported, s.Kind)
		}
		if len(t.Stride) != len(t.Size) {
			return nil, fmt.Errorf("tensor %q: %d sizes but %d strides", name, len(t.Size), len(t.Stride))
		}
		for i, d := range t.Size {
			if d < 0 || t.Stride[i] < 0 {
				return nil, fmt.Errorf("tensor %q: negative size or stride %v %v", name, t.Size, t.Stride)
			}
		}
		if lo, hi := t.Span(); t.NumElements() > 0 && (lo < 0 || hi > s.Len) {
			return nil, fmt.Errorf("tensor %q: view [%d, %d) lies outside its storage of %d elements", name, lo, hi, s.Len)
		}
		if s.Offset < 0 || srcSize > 0 && s.Offset+s.ByteLen() > srcSize {
			return nil, fmt.Errorf("tensor %q: storage bytes lie outside the source (%d bytes)", name, srcSize)
		}
		entries = append(entries, entry{name: name, t: t, dtype: dtype})
	}
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i].t, entries[j].t
		if sa, sb := a.Storage.Kind.ItemSize(), b.Storage.Kind.ItemSize(); sa != sb {
			return sa > sb
		}
		if a.Storage.Offset != b.Storage.Offset {
			return a.Storage.Offset < b.Storage.Offset
		}
		return a.Offset < b.Offset
	})
	var off int64
	for i := range entries {
		e := &entries[i]
		n := e.t.NumElements() * int64(e.t.Storage.Kind.ItemSize())
		e.begin, e.end = off, off+n
		off += n
	}
	return entries, nil
}

// minAlignedRun is the fewest bytes of a run copied from the source for which the header
// is padded to place the run congruent to its source (see dataResidue).
const minAlignedRun = 16 << 10

// dataResidue returns where the output's data region should start modulo
// osfile.CloneBlock, or -1 for anywhere (then the header is padded to a multiple of 8 only).
//
// Tensors whose bytes are copied raw from a source file and lie one after the other there
// form a run that is copied in one piece. The largest run is placed at an offset congruent
// to its offset in the source modulo osfile.CloneBlock, so that file systems that share
// blocks (XFS, btrfs) clone all of its whole blocks instead of copying them: for a
// safetensors input whose tensors are rewritten in the same order (a conversion that
// changes shapes only), that is the whole data region. The header grows by less than
// osfile.CloneBlock for it; runs under minAlignedRun are not worth it, and a run whose
// source offset would break the data region's 8-byte alignment is left where it is.
func dataResidue(entries []entry, c *checkpoint.Checkpoint) int64 {
	if _, _, ok := c.SourceFile(); !ok {
		return -1
	}
	var best, run struct{ begin, src, n int64 }
	for i := range entries {
		e := &entries[i]
		src, ok := rawSource(e.t)
		switch {
		case !ok:
			run.n = 0
			continue
		case run.n > 0 && src == run.src+run.n:
			run.n += e.end - e.begin
		default:
			run.begin, run.src, run.n = e.begin, src, e.end-e.begin
		}
		if run.n > best.n {
			best = run
		}
	}
	residue := ((best.src-best.begin)%osfile.CloneBlock + osfile.CloneBlock) % osfile.CloneBlock
	if best.n < minAlignedRun || residue%8 != 0 {
		return -1
	}
	return residue
}

// rawSource returns where t's bytes lie in the source when Write copies them as they are.
func rawSource(t *checkpoint.Tensor) (int64, bool) {
	v := view{t.Offset, t.Size, t.Stride}
	if v.numel() == 0 || !v.contiguous() {
		return 0, false
	}
	return t.Storage.Offset + t.Offset*int64(t.Storage.Kind.ItemSize()), true
}

// encodeHeader renders the length-prefixed header, padded with spaces so that the data
// region starts at a multiple of 8 and, when residue is not -1, at residue modulo
// osfile.CloneBlock. JSON allows the trailing spaces, and the reference writer pads so.
func encodeHeader(entries []entry, meta map[string]string, residue int64) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{")
	sep := ""
	if meta != nil {
		keys := make([]string, 0, len(meta))
		for k := range meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(`"__metadata__":{`)
		for i, k := range keys {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(quote(k) + ":" + quote(meta[k]))
		}
		b.WriteString("}")
		sep = ","
	}
	for _, e := range entries {
		if e.name == "__metadata__" {
			return nil, fmt.Errorf("%w: a tensor named __metadata__ cannot be written", ErrUnsupported)
		}
		fmt.Fprintf(&b, `%s%s:{"dtype":"%s","shape":[`, sep, quote(e.name), e.dtype)
		for i, d := range e.t.Size {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprint(&b, d)
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, e.begin, e.end)
		sep = ","
	}
	b.WriteString("}")
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if residue >= 0 {
		pad := ((residue-8-int64(b.Len()))%osfile.CloneBlock + osfile.CloneBlock) % osfile.CloneBlock
		b.Write(bytes.Repeat([]byte{' '}, int(pad)))
	}
	if b.Len() > MaxHeaderBytes {
		return nil, fmt.Errorf("%w: the header would have %d bytes, over the %d readers accept", ErrLimit, b.Len(), MaxHeaderBytes)
	}
	out := make([]byte, 8, 8+b.Len())
	binary.LittleEndian.PutUint64(out, uint64(b.Len()))
	return append(out, b.Bytes()...), nil
}

// quote renders s as a JSON string without HTML escapes.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// aliasWarnings names the groups of tensors that share a storage.
func aliasWarnings(named []checkpoint.NamedTensor) []string {
	groups := map[*checkpoint.Storage][]string{}
	var order []*checkpoint.Storage
	for _, nt := range named {
		s := nt.Tensor.Storage
		if _, ok := groups[s]; !ok {
			order = append(order, s)
		}
		groups[s] = append(groups[s], nt.Path.String())
	}
	var out []string
	for _, s := range order {
		if names := groups[s]; len(names) > 1 {
			out = append(out, fmt.Sprintf("%s share one storage; safetensors has no aliasing, so each is written with its own copy of the bytes (tie them again after loading)", strings.Join(names, ", ")))
		}
	}
	return out
}

// sink writes the output: bytes through a buffer, and raw spans of the source, which it
// coalesces when they are adjacent and copies file to file when it can.
type sink struct {
	raw     io.Writer
	dst     *os.File // non-nil when raw is a file
	bw      *bufio.Writer
	c       *checkpoint.Checkpoint
	opts    *WriteOptions
	ctx     context.Context
	pendOff int64 // a span of the source not yet copied
	pendLen int64
	written int64
	done    int64
	total   int64
	tile    []byte // gather buffers, allocated on first use
	out     []byte
	wb      *osfile.Writeback // for gathered tensors, once there is one
}

func newSink(w io.Writer, c *checkpoint.Checkpoint, opts *WriteOptions) *sink {
	s := &sink{raw: w, bw: bufio.NewWriterSize(w, 256<<10), c: c, opts: opts, ctx: opts.Context}
	s.dst, _ = w.(*os.File)
	if s.ctx == nil {
		s.ctx = context.Background()
	}
	return s
}

func (s *sink) report() {
	if s.opts.Progress != nil {
		s.opts.Progress(s.done, s.total)
	}
}

// bytes writes b.
func (s *sink) bytes(b []byte) error {
	if err := s.flushRaw(); err != nil {
		return err
	}
	n, err := s.bw.Write(b)
	s.written += int64(n)
	return err
}

// copyRaw queues n bytes of the source at off.
func (s *sink) copyRaw(off, n int64) error {
	if n == 0 {
		return nil
	}
	if s.pendLen > 0 && s.pendOff+s.pendLen == off {
		s.pendLen += n
		return nil
	}
	if err := s.flushRaw(); err != nil {
		return err
	}
	s.pendOff, s.pendLen = off, n
	return nil
}

func (s *sink) flushRaw() error {
	off, n := s.pendOff, s.pendLen
	if n == 0 {
		return nil
	}
	s.pendLen = 0
	src, mu, ok := s.c.SourceFile()
	if ok && s.dst != nil {
		if err := s.bw.Flush(); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		base := s.done
		err := osfile.AppendRange(s.dst, src, off, n, func(copied int64) error {
			s.done = base + copied
			s.report()
			return s.ctx.Err()
		})
		if errors.Is(err, osfile.ErrShortSource) {
			err = fmt.Errorf("%w: %v", ErrTruncated, err)
		}
		s.written += n
		return err
	}
	src2, _ := s.c.Source()
	r := io.NewSectionReader(src2, off, n)
	for left := n; left > 0; {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		k, err := io.CopyN(s.bw, r, min(left, 64<<20))
		s.written += k
		s.done += k
		left -= k
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: the source ends %d bytes early", ErrTruncated, left)
		}
		if err != nil {
			return err
		}
		s.report()
	}
	return nil
}

func (s *sink) flush() error {
	if err := s.flushRaw(); err != nil {
		return err
	}
	return s.bw.Flush()
}
