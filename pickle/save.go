package pickle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pt2conv/pt2conv/internal/osfile"
)

var (
	// ErrExists: Save's target exists and SaveOptions.Force is not set.
	ErrExists = errors.New("output exists (use force to overwrite)")
	// ErrSameFile: Save's target is the file the checkpoint was read from.
	ErrSameFile = errors.New("output is the input file")
)

// copyChunk is how many storage bytes are copied between two Progress reports.
const copyChunk = 64 << 20

// defaultArchiveName is the archive's top folder when there is no file name to take it
// from; torch uses the same name when saving to a buffer.
const defaultArchiveName = "archive"

// WriteOptions tune Write.
type WriteOptions struct {
	// Progress, if set, is called as record bytes are written, with the bytes written so
	// far and the total of all records' data (the zip headers are not counted).
	Progress func(done, total int64)
}

// SaveOptions tune Save.
type SaveOptions struct {
	// Force allows Save to replace an existing file.
	Force bool
	// Progress is as in WriteOptions.
	Progress func(done, total int64)
	// Context, if set, stops the write between two chunks when it is done; the temporary
	// file is then removed and the target left as it was.
	Context context.Context
}

// Write writes the checkpoint as a torch zip archive whose top folder is "archive", as
// torch names archives saved to a buffer. data.pkl is encoded anew from Root; storage
// bytes are copied unchanged from the checkpoint's source, each storage once under its
// key, so storages shared by several tensors stay shared. When the source and w are both
// files and the source's zip directory gave the storages' CRCs, storage bytes move between
// them inside the kernel (copy_file_range); otherwise they pass through a small buffer and
// their CRC is computed on the way. Memory use does not grow with the storages' size. It
// returns the number of bytes written.
//
// When the checkpoint was read from a torch zip file, holds exactly that file's storages
// and w is a regular file at offset 0, the input's storage records are copied as one run,
// headers included, at an offset congruent modulo osfile.CloneBlock (4 KiB) to theirs, so
// that file systems that share blocks clone them; the archive then keeps the input's top
// folder, which the run's record names carry.
func Write(w io.Writer, c *checkpoint.Checkpoint, opts *WriteOptions) (int64, error) {
	var progress func(done, total int64)
	if opts != nil {
		progress = opts.Progress
	}
	return write(c, nil, w, defaultArchiveName, progress)
}

// Save writes the checkpoint to path, atomically: it writes a temporary file beside path,
// syncs it, renames it into place and syncs the directory, so that path holds either its
// old content or the complete new file. The archive's top folder is path's base name
// without its extension, as torch.save names it ("model" for model.pt), or the input's
// when the storage records are copied as one run (see Write). A new file gets mode 0644; a
// replaced file keeps its mode.
func Save(path string, c *checkpoint.Checkpoint, opts *SaveOptions) (err error) {
	if opts == nil {
		opts = &SaveOptions{}
	}
	if err := checkNotSource(c, path); err != nil {
		return err
	}
	base := filepath.Base(path)
	err = osfile.WriteAtomic(path, opts.Force, func(tmp *os.File) error {
		if _, err := write(c, opts.Context, tmp, archiveName(base), opts.Progress); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		return nil
	})
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	return err
}

// checkNotSource fails with ErrSameFile when path names the checkpoint's own file.
func checkNotSource(c *checkpoint.Checkpoint, path string) error {
	out, err := os.Stat(path)
	if err != nil {
		return nil // no file there, so not the input either
	}
	var in []fs.FileInfo
	if f, _, ok := c.SourceFile(); ok {
		if fi, err := f.Stat(); err == nil {
			in = append(in, fi)
		}
	}
	if c.Name != "" {
		if fi, err := os.Stat(c.Name); err == nil {
			in = append(in, fi)
		}
	}
	for _, fi := range in {
		if os.SameFile(fi, out) {
			return fmt.Errorf("%s: %w", path, ErrSameFile)
		}
	}
	return nil
}

// archiveName is a file name without its extension, torch's name for the top folder.
func archiveName(base string) string {
	if i := strings.LastIndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	if base == "" {
		return defaultArchiveName
	}
	return base
}

// saveRecord is one record to write: in-memory data, a Record of the source, a storage,
// or data.pkl, encoded as it is written.
type saveRecord struct {
	name    string // relative to the top folder; storages' names are "data/" + key
	data    []byte
	record  *Record
	storage *checkpoint.Storage
	pickle  bool
}

// fullName is the record's name relative to the top folder. A storage's is made only when
// needed: most are copied in one run and named straight into the directory.
func (r *saveRecord) fullName() string {
	if r.storage != nil {
		return storageDir + r.storage.Key
	}
	return r.name
}

// storageDir is the folder of the storage records, under the top folder.
const storageDir = "data/"

// size is the record's length in bytes; data.pkl's is known once it is written.
func (r *saveRecord) size() int64 {
	switch {
	case r.storage != nil:
		return r.storage.ByteLen()
	case r.record != nil:
		return r.record.Size()
	}
	return int64(len(r.data))
}

// savePlan lists the records in the order torch writes them: the storages' records lie
// between other records, which come first or last. A storage's record is made when it is
// written: most are copied in one run (findRun) and need none.
type savePlan struct {
	before   []saveRecord // data.pkl, then the records that precede the storages
	storages []*checkpoint.Storage
	after    []saveRecord
}

// size is the bytes of the records, data.pkl's excepted.
func (p *savePlan) size() int64 {
	var n int64
	for _, recs := range [][]saveRecord{p.before, p.after} {
		for i := range recs {
			n += recs[i].size()
		}
	}
	for _, s := range p.storages {
		n += s.ByteLen()
	}
	return n
}

func plan(c *checkpoint.Checkpoint, storages []*checkpoint.Storage) (*savePlan, error) {
	var records []Record
	if a := ArchiveOf(c); a != nil {
		records = a.Records
	}
	_, srcSize := c.Source()
	p := &savePlan{before: []saveRecord{{name: "data.pkl", pickle: true}}, storages: storages}
	if len(records) == 0 { // a checkpoint of another format: the records torch 2 writes
		p.before = append(p.before, saveRecord{name: "byteorder", data: []byte("little")})
		p.after = append(p.after, saveRecord{name: "version", data: []byte("3\n")})
	}
	for i := range records {
		if r := &records[i]; r.BeforeData {
			p.before = append(p.before, saveRecord{name: r.Name, record: r})
		} else {
			p.after = append(p.after, saveRecord{name: r.Name, record: r})
		}
	}
	for _, s := range storages {
		if !s.Kind.Valid() {
			return nil, fmt.Errorf("storage %q: invalid storage kind", s.Key)
		}
		if s.Len < 0 || s.Offset < 0 || srcSize > 0 && s.Offset+s.ByteLen() > srcSize {
			return nil, fmt.Errorf("storage %q: %d bytes at offset %d lie outside the source (%d bytes): %w",
				s.Key, s.ByteLen(), s.Offset, srcSize, ErrCorrupt)
		}
	}
	// Storage keys are distinct (distinctStorages), and other records are never under
	// data/ (readZip files those as storages): only the other records' names are compared.
	names := map[string]bool{}
	for _, recs := range [][]saveRecord{p.before, p.after} {
		for i := range recs {
			if names[recs[i].name] {
				return nil, fmt.Errorf("two records named %q", recs[i].name)
			}
			names[recs[i].name] = true
		}
	}
	return p, nil
}

// distinctStorages lists the storages below root in order of first appearance, as
// checkpoint.Storages does, and refuses two distinct storages with one key: each is the
// record data/KEY. Storages are told apart by key, which needs no set of pointers: torch's
// keys are the numbers 0 to n-1, which seqIndex finds by position.
func distinctStorages(root checkpoint.Value) ([]*checkpoint.Storage, error) {
	n := 0
	for range checkpoint.StorageRefs(root) {
		n++
	}
	byKey := newSeqIndex[*checkpoint.Storage](n)
	out := make([]*checkpoint.Storage, 0, n)
	for s := range checkpoint.StorageRefs(root) {
		if byKey.add(s.Key, s) {
			out = append(out, s)
		} else if was, _ := byKey.get(s.Key); was != s {
			return nil, fmt.Errorf("two records named %q (two distinct storages with one key?)", storageDir+s.Key)
		}
	}
	return out, nil
}

// saver carries one write's state.
type saver struct {
	c        *checkpoint.Checkpoint
	z        *zipWriter
	buf      []byte
	done     int64
	total    int64
	progress func(done, total int64)
	ctx      context.Context
	storages int // how many the checkpoint holds, to size the encoder's memo
}

func write(c *checkpoint.Checkpoint, ctx context.Context, w io.Writer, prefix string, progress func(done, total int64)) (int64, error) {
	return writeZip(c, ctx, newZipWriter(w), prefix, progress)
}

func writeZip(c *checkpoint.Checkpoint, ctx context.Context, z *zipWriter, prefix string, progress func(done, total int64)) (int64, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	storages, err := distinctStorages(c.Root)
	if err != nil {
		return 0, err
	}
	p, err := plan(c, storages)
	if err != nil {
		return 0, err
	}
	sv := &saver{c: c, z: z, progress: progress, ctx: ctx, storages: len(storages), total: p.size()}
	var run *storageRun
	if _, ok := regularFileAtStart(z.raw); ok {
		run = findRun(c, storages)
	}
	if run != nil {
		prefix = run.prefix
	}
	sv.report()
	write := func(r *saveRecord) error {
		if err := sv.record(prefix+"/", r); err != nil {
			if r.pickle {
				return err // the encoder's errors say what they are about
			}
			return fmt.Errorf("record %s: %w", r.fullName(), err)
		}
		return nil
	}
	for i := range p.before {
		if err := write(&p.before[i]); err != nil {
			return z.off, err
		}
	}
	if run != nil {
		if err := sv.run(run, prefix+"/"); err != nil {
			return z.off, fmt.Errorf("record %s%s: %w", storageDir, run.storages[0].Key, err)
		}
	} else {
		for _, s := range p.storages {
			if err := write(&saveRecord{storage: s}); err != nil {
				return z.off, err
			}
		}
	}
	for i := range p.after {
		if err := write(&p.after[i]); err != nil {
			return z.off, err
		}
	}
	err = z.Close()
	return z.off, err
}

func (sv *saver) report() {
	if sv.progress != nil {
		sv.progress(sv.done, sv.total)
	}
}

func (sv *saver) record(prefix string, r *saveRecord) error {
	if r.pickle {
		if sv.z.zip64Limit <= DefaultLimits.MaxPickleBytes {
			// data.pkl might need zip64 sizes in its header, so its size must be known
			// before the header is written. (Only archives with a lowered zip64 threshold
			// get here: pt2conv reads no pickle of 4 GiB.)
			var pkl bytes.Buffer
			if err := NewEncoder(&pkl).Encode(sv.c.Root); err != nil {
				return err
			}
			r = &saveRecord{name: r.name, data: pkl.Bytes()}
			sv.total += r.size()
		} else {
			if err := sv.z.createUnsized(prefix + r.name); err != nil {
				return err
			}
			crc, err := sv.pickle()
			if err != nil {
				return err
			}
			return sv.z.closeRecord(crc)
		}
	}
	size := r.size()
	if err := sv.z.create(prefix+r.fullName(), size); err != nil {
		return err
	}
	var crc uint32
	var err error
	switch {
	case r.storage != nil:
		crc, err = sv.storage(r.storage)
	case r.record != nil:
		crc, err = sv.copy(recordReader(sv.c, r.record), size)
	default:
		crc, err = sv.copy(bytes.NewReader(r.data), size)
	}
	if err != nil {
		return err
	}
	return sv.z.closeRecord(crc)
}

// pickle encodes the checkpoint's object tree into the open record. It goes straight to the
// archive rather than through a buffer of its own: for a checkpoint of many tensors that
// buffer would be a sizeable part of the memory a conversion needs.
func (sv *saver) pickle() (uint32, error) {
	h := crc32.NewIEEE()
	start := sv.z.written
	enc := NewEncoder(io.MultiWriter(sv.z, h))
	enc.sizeHint = sv.storages
	if err := enc.Encode(sv.c.Root); err != nil {
		return 0, err
	}
	n := sv.z.written - start
	sv.done += n
	sv.total += n
	sv.report()
	return h.Sum32(), nil
}

// storage copies a storage's bytes. With a file on both ends and the CRC known from the
// input's zip directory, the bytes go file to file in the kernel; otherwise they pass
// through a buffer and the CRC is computed (and checked against the known one, if any).
func (sv *saver) storage(s *checkpoint.Storage) (uint32, error) {
	src, copyMu, srcIsFile := sv.c.SourceFile()
	_, dstIsFile := sv.z.raw.(*os.File)
	if !srcIsFile || !dstIsFile || !s.HasCRC {
		crc, err := sv.copy(sv.c.StorageReader(s), s.ByteLen())
		if err == nil && s.HasCRC && crc != s.CRC32 {
			err = fmt.Errorf("CRC-32 %08x, the input's directory says %08x: %w", crc, s.CRC32, ErrCorrupt)
		}
		return crc, err
	}
	if err := sv.z.Flush(); err != nil {
		return 0, err
	}
	// copy_file_range reads from src's file offset, so nobody else may move it meanwhile.
	copyMu.Lock()
	defer copyMu.Unlock()
	if _, err := src.Seek(s.Offset, io.SeekStart); err != nil {
		return 0, err
	}
	for left := s.ByteLen(); left > 0; {
		if err := sv.ctx.Err(); err != nil {
			return 0, err
		}
		start := sv.z.off
		n, err := io.CopyN(sv.z.raw, src, min(left, copyChunk))
		sv.z.wroteRaw(n)
		if dst, ok := sv.z.raw.(*os.File); ok && n > 0 {
			osfile.StartWriteback(dst, start, n)
		}
		sv.done += n
		left -= n
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("source ends %d bytes early: %w", left, ErrTruncated)
		}
		if err != nil {
			return 0, err
		}
		sv.report()
	}
	return s.CRC32, nil
}

// copy writes size bytes from r through the zip writer's buffer, returning their CRC-32.
func (sv *saver) copy(r io.Reader, size int64) (uint32, error) {
	if sv.buf == nil {
		sv.buf = make([]byte, 256<<10)
	}
	h := crc32.NewIEEE()
	w := io.MultiWriter(sv.z, h)
	for left := size; left > 0; {
		if err := sv.ctx.Err(); err != nil {
			return 0, err
		}
		n, err := io.CopyBuffer(w, io.LimitReader(r, min(left, copyChunk)), sv.buf)
		sv.done += n
		left -= n
		if err != nil {
			return 0, err
		}
		if n < min(left+n, copyChunk) {
			return 0, fmt.Errorf("source ends %d bytes early: %w", left, ErrTruncated)
		}
		sv.report()
	}
	return h.Sum32(), nil
}
