package pickle

import (
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/blockread"
)

// Open opens the checkpoint at name, reading only its pickle and the container's directory.
// The file stays open for the storages' bytes until Close.
func Open(name string) (*checkpoint.Checkpoint, error) {
	return checkpoint.OpenFile(name, ErrNotCheckpoint, NewReader)
}

// NewReader reads a checkpoint of the given size from r; name is used in errors. Either
// container is accepted: torch's zip archive or the legacy pre-1.6 stream.
func NewReader(r io.ReaderAt, size int64, name string) (*checkpoint.Checkpoint, error) {
	return newReader(r, size, name, DefaultLimits)
}

// Sniff reports whether the first bytes of a file (at least 4, and the 6 at offset 257
// when the file has them) look like one of torch's containers: a zip archive, a legacy
// stream or the tar format of torch ≤ 0.1.10, which Open refuses by name.
func Sniff(r io.ReaderAt) bool {
	var head [4]byte
	n, _ := r.ReadAt(head[:], 0)
	var tarMagic [6]byte
	tn, _ := r.ReadAt(tarMagic[:], 257)
	return isZip(head[:n]) || isLegacy(head[:n]) || isTar(tarMagic[:tn])
}

func isZip(head []byte) bool { return len(head) >= 2 && head[0] == 'P' && head[1] == 'K' }

// isLegacy: the legacy stream opens with the magic number, pickled: after PROTO at
// protocols 2 to 5, as a text LONG at protocols 0 and 1.
func isLegacy(head []byte) bool {
	return len(head) >= 2 && (head[0] == 0x80 && head[1] <= 5 ||
		head[0] == 'L' && (head[1] >= '0' && head[1] <= '9' || head[1] == '-'))
}

func isTar(magic []byte) bool { return len(magic) == 6 && string(magic[:5]) == "ustar" }

func newReader(r io.ReaderAt, size int64, name string, lim Limits) (*checkpoint.Checkpoint, error) {
	var head [4]byte
	n, _ := r.ReadAt(head[:], 0)
	var tarMagic [6]byte
	tn, _ := r.ReadAt(tarMagic[:], 257)
	c := &fileReader{src: r, size: size, arch: &Archive{}}
	var err error
	switch {
	case size == 0:
		err = fmt.Errorf("%w: the file is empty", ErrNotCheckpoint)
	case isZip(head[:n]):
		err = c.readZip(lim)
	case isLegacy(head[:n]):
		err = c.readLegacy(lim)
	case isTar(tarMagic[:tn]):
		// torch's own weights_only loader refuses these too: their storages are pickled
		// objects, not raw bytes.
		err = fmt.Errorf("%w: torch ≤ 0.1.10 tar checkpoint: load and re-save it with torch first", ErrUnsupported)
	default:
		err = fmt.Errorf("%w: neither a torch zip archive nor a legacy torch file", ErrNotCheckpoint)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ck := checkpoint.New(c.root, r, size, name)
	ck.Format, ck.Container = c.format, c.arch
	return ck, nil
}

// fileReader carries what reading one file finds.
type fileReader struct {
	src    io.ReaderAt
	size   int64
	format string
	arch   *Archive
	root   checkpoint.Value
}

func (c *fileReader) readZip(lim Limits) (err error) {
	// Everything below reads through the mapping when there is one; nothing the model
	// keeps points into it.
	var readers sync.WaitGroup // the goroutine reading local headers, done before unmapping
	file := c.src
	mapped, unmap := mapSource(c.src, c.size)
	if mapped != nil {
		defer func() { readers.Wait(); unmap(); c.src = file }()
		defer readingMapped(mapped)(&err)
		c.src = mapped
	}
	entries, err := readZipDirectory(c.src, c.size)
	if err != nil {
		return err
	}
	prefix, err := topFolder(entries)
	if err != nil {
		return err
	}
	c.format, c.arch.Prefix = FormatZip, prefix
	// One index of the storage records: these are the per-record costs of opening a
	// checkpoint of many tensors. Names are substrings of the directory buffer, garbage once
	// the storages have their offsets.
	storageRecords := newSeqIndex[int](len(entries))
	otherNames := map[string]bool{}
	pkl := -1
	var others []int // entries[others[j]] is c.arch.Records[j]
	sawData := false
	top := prefix + "/"
	for i := range entries {
		f := &entries[i]
		rel := strings.TrimPrefix(f.name, top)
		key, isData := strings.CutPrefix(rel, "data/")
		var twice bool
		if isData {
			twice = !storageRecords.add(key, i)
		} else {
			twice = otherNames[rel]
			otherNames[rel] = true
		}
		if twice {
			return fmt.Errorf("%w: record %q appears twice", ErrCorrupt, f.name)
		}
		if strings.HasSuffix(rel, "/") && f.usize == 0 {
			f.folder = true
			continue
		}
		if f.flags&0x1 != 0 {
			return fmt.Errorf("%w: record %q is encrypted", ErrUnsupported, f.name)
		}
		if f.method != methodStore {
			return fmt.Errorf("%w: record %q is compressed (method %d); torch stores records uncompressed, so the file was repacked: unzip and re-zip it with -0, or re-save it with torch", ErrUnsupported, f.name, f.method)
		}
		if f.csize != f.usize {
			return fmt.Errorf("%w: record %q: stored size %d differs from its size %d", ErrCorrupt, f.name, f.csize, f.usize)
		}
		if f.usize > uint64(c.size) {
			return fmt.Errorf("%w: record %q claims %d bytes of a %d-byte file", ErrTruncated, f.name, f.usize, c.size)
		}
		switch {
		case rel == "data.pkl":
			pkl = i
		case isData:
			sawData = true
			c.arch.dataRecords++
		default:
			others = append(others, i)
			c.arch.Records = append(c.arch.Records, Record{Name: strings.Clone(rel), BeforeData: !sawData, size: int64(f.usize), crc32: f.crc32})
		}
	}
	if pkl < 0 {
		return fmt.Errorf("%w: the zip archive has no data.pkl", ErrNotCheckpoint)
	}
	// Where each record's data starts is in its local header. data.pkl's comes first;
	// the others', spread through the whole file, are read on another goroutine while the
	// pickle is decoded. Each reader goes through its own cached block, which answers
	// hundreds of reads of the headers of small records.
	locate := func(i int, r io.ReaderAt, header *[]byte) error {
		f := &entries[i]
		off, err := dataOffset(r, f, c.size, header)
		if err != nil {
			return fmt.Errorf("%w: record %q: %v", ErrCorrupt, f.name, err)
		}
		if off < 0 || off > c.size-int64(f.usize) {
			return fmt.Errorf("%w: record %q claims %d bytes at offset %d of a %d-byte file", ErrTruncated, f.name, f.usize, off, c.size)
		}
		f.offset = off
		return nil
	}
	if err := locate(pkl, c.src, new([]byte)); err != nil {
		return err
	}
	located := make(chan error, 1)
	readers.Add(1)
	go func() {
		var err error
		defer readers.Done()
		defer func() { located <- err }()
		defer readingMapped(mapped)(&err)
		// Through the file, not the mapping: reading the headers of records spread through
		// the whole file would map all of it, and its pages would count as the process's.
		headers, header := blockread.NewReader(file, c.size, 64<<10, 16<<10), new([]byte)
		for i := range entries {
			if i != pkl && !entries[i].folder {
				if err = locate(i, headers, header); err != nil {
					return
				}
			}
		}
	}()
	c.arch.pklOffset = entries[pkl].offset
	// Sized for a storage per record: a slice grown by doubling allocates twice its size.
	d := &decoder{record: "data.pkl", lim: lim, order: make([]*checkpoint.Storage, 0, c.arch.dataRecords)}
	d.storages = newSeqIndex[*checkpoint.Storage](c.arch.dataRecords)
	d.entriesHint = c.arch.dataRecords
	root, proto, err := c.decodePickle(d, entries[pkl].offset, int64(entries[pkl].usize), lim)
	// A record the directory places wrongly is the first thing wrong with the file.
	if err := <-located; err != nil {
		return err
	}
	if err != nil {
		return err
	}
	for j, i := range others {
		c.arch.Records[j].offset = entries[i].offset
	}
	// Where each storage's record begins is kept for copying them as one run (findRun),
	// when every local header names its record as the directory does.
	c.arch.storages, c.arch.headers = d.order, make([]int64, len(d.order))
	for j, s := range d.order {
		i, ok := storageRecords.get(s.Key)
		if !ok {
			return fmt.Errorf("%w: storage %q has no record data/%s", ErrCorrupt, s.Key, s.Key)
		}
		rec := &entries[i]
		if int64(rec.usize) != s.ByteLen() {
			return fmt.Errorf("%w: storage %q holds %d elements of %s (%d bytes) but its record has %d bytes", ErrCorrupt, s.Key, s.Len, s.Kind, s.ByteLen(), rec.usize)
		}
		s.Offset, s.CRC32, s.HasCRC = rec.offset, rec.crc32, true
		if c.arch.headers != nil && rec.sameName {
			c.arch.headers[j] = rec.header
		} else {
			c.arch.headers = nil
		}
	}
	c.root, c.arch.Protocol = root, proto
	return nil
}

// topFolder finds the archive's single top folder and refuses TorchScript archives.
func topFolder(files []dirEntry) (string, error) {
	prefix := ""
	for i := range files {
		name := files[i].name
		i := strings.IndexByte(name, '/')
		if i <= 0 {
			return "", fmt.Errorf("%w: zip record %q is outside a top folder (not written by torch.save)", ErrNotCheckpoint, name)
		}
		top := name[:i]
		if prefix == "" {
			prefix = top
		} else if top != prefix {
			return "", fmt.Errorf("%w: zip records under two top folders, %q and %q", ErrNotCheckpoint, prefix, top)
		}
		if path.Clean(name) != strings.TrimSuffix(name, "/") || strings.Contains(name, "\\") {
			return "", fmt.Errorf("%w: zip record name %q is not clean", ErrCorrupt, name)
		}
	}
	if prefix == "" {
		return "", fmt.Errorf("%w: the zip archive is empty", ErrNotCheckpoint)
	}
	for i := range files {
		rel := strings.TrimPrefix(files[i].name, prefix+"/")
		if rel == "constants.pkl" || strings.HasPrefix(rel, "code/") {
			return "", fmt.Errorf("%w: load it with torch.jit.load and save model.state_dict() with torch.save", ErrTorchScript)
		}
	}
	return strings.Clone(prefix), nil
}

// decodePickle scans and decodes the pickle in [off, off+size) of the source.
func (c *fileReader) decodePickle(d *decoder, off, size int64, lim Limits) (checkpoint.Value, int, error) {
	if size > lim.MaxPickleBytes {
		return nil, 0, fmt.Errorf("%w: %s has %d bytes (limit %d)", ErrLimit, d.record, size, lim.MaxPickleBytes)
	}
	data, err := window(c.src, off, size)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: reading %s: %v", ErrTruncated, d.record, err)
	}
	n, read, proto, err := scanPickleBytes(data, lim)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", d.record, err)
	}
	if n != size {
		return nil, 0, fmt.Errorf("%w: %s has %d bytes after its STOP opcode", ErrCorrupt, d.record, size-n)
	}
	d.read = read
	v, err := d.unpickle(data) // the last use of data: it is garbage while the tree is built
	if err != nil {
		return nil, 0, err
	}
	return v, proto, nil
}
