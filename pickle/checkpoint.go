package pickle

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
)

// Format is the container a checkpoint came in.
type Format uint8

const (
	// FormatZip is torch's zip container (torch >= 1.6, the default).
	FormatZip Format = iota + 1
	// FormatLegacy is the pre-1.6 stream of pickles followed by raw storages.
	FormatLegacy
)

func (f Format) String() string {
	switch f {
	case FormatZip:
		return "zip"
	case FormatLegacy:
		return "legacy"
	}
	return "unknown"
}

// Record is a zip record other than data.pkl and the storages (byteorder, version,
// .data/serialization_id and records newer torch adds), kept so that saving loses nothing.
type Record struct {
	Name string // relative to the archive's top folder, e.g. "version"
	// BeforeData is true when the record came before the first storage in the input, where
	// it is written again.
	BeforeData bool

	offset, size int64 // where the bytes are in the source; size < 0 means use data
	data         []byte
	crc32        uint32
}

// Size is the record's length in bytes.
func (r *Record) Size() int64 {
	if r.size < 0 {
		return int64(len(r.data))
	}
	return r.size
}

// NewRecord makes a record that holds data in memory.
func NewRecord(name string, data []byte, beforeData bool) Record {
	return Record{Name: name, data: data, size: -1, BeforeData: beforeData}
}

// Checkpoint is an opened PyTorch checkpoint: the object tree of its pickle plus lazy
// references to its storages. Only data.pkl and the container's directory are read when it
// is opened; storage bytes stay in the file until they are copied or decoded.
type Checkpoint struct {
	// Root is the pickled object: a state_dict, a training checkpoint dict, ...
	Root Value
	// Format and Protocol describe the input: container and pickle protocol of data.pkl.
	Format   Format
	Protocol int
	// Prefix is the zip archive's top folder ("model" for model.pt); empty for legacy input.
	Prefix string
	// Records are the zip's other records in file order; empty for legacy input.
	Records []Record
	// Name is the file's name, for error messages.
	Name string

	src  io.ReaderAt
	size int64
	file *os.File // non-nil when opened by Open; closed by Close

	// copyMu serialises copies that move the file offset of src (copy_file_range copies
	// from the offset); checkpoints made by WithRoot share their parent's.
	copyMu *sync.Mutex
}

// StorageReader returns the storage's raw little-endian element bytes.
func (c *Checkpoint) StorageReader(s *Storage) *io.SectionReader {
	return io.NewSectionReader(c.src, s.offset, s.ByteLen())
}

// RecordReader returns a record's bytes.
func (c *Checkpoint) RecordReader(r *Record) io.Reader {
	if r.size < 0 {
		return bytes.NewReader(r.data)
	}
	return io.NewSectionReader(c.src, r.offset, r.size)
}

// Close releases the file opened by Open.
func (c *Checkpoint) Close() error {
	if c.file == nil {
		return nil
	}
	return c.file.Close()
}

// WithRoot returns a checkpoint that shares c's source and records but holds root.
// Rewrites use it to produce a new checkpoint without touching c.
func (c *Checkpoint) WithRoot(root Value) *Checkpoint {
	return &Checkpoint{
		Root:     root,
		Format:   c.Format,
		Protocol: c.Protocol,
		Prefix:   c.Prefix,
		Records:  c.Records,
		Name:     c.Name,
		src:      c.src,
		size:     c.size,
		file:     nil, // the original owns the file
		copyMu:   c.copyMu,
	}
}

// FromBytes makes a checkpoint whose storages live in memory: data holds each storage's
// raw little-endian element bytes (len(data[s]) must be s.ByteLen()). It serves tests and
// programs that build checkpoints from scratch; Save writes it like any other.
func FromBytes(root Value, data map[*Storage][]byte) (*Checkpoint, error) {
	var buf bytes.Buffer
	for _, s := range Storages(root) {
		b, ok := data[s]
		if !ok {
			return nil, fmt.Errorf("storage %q: no bytes given", s.Key)
		}
		if int64(len(b)) != s.ByteLen() {
			return nil, fmt.Errorf("storage %q: %d bytes given, %d elements of %s need %d",
				s.Key, len(b), s.Len, s.Kind, s.ByteLen())
		}
		s.offset = int64(buf.Len())
		s.hasCRC = false
		buf.Write(b)
	}
	return &Checkpoint{
		Root:     root,
		Format:   FormatZip,
		Protocol: 2,
		Prefix:   "archive",
		Name:     "<memory>",
		src:      bytes.NewReader(buf.Bytes()),
		size:     int64(buf.Len()),
		copyMu:   &sync.Mutex{},
	}, nil
}
