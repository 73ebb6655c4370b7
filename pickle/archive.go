package pickle

import (
	"bytes"
	"io"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// The formats this codec reads, as Checkpoint.Format names them.
const (
	// FormatZip is torch's zip container (torch >= 1.6, the default).
	FormatZip = "zip"
	// FormatLegacy is the pre-1.6 stream of pickles followed by raw storages.
	FormatLegacy = "legacy"
)

// Archive is what the codec found in a torch file besides the object tree, kept in
// Checkpoint.Container so that saving loses nothing.
type Archive struct {
	// Protocol is the pickle protocol of data.pkl.
	Protocol int
	// Prefix is the zip archive's top folder ("model" for model.pt); empty for legacy input.
	Prefix string
	// Records are the zip's other records in file order; empty for legacy input.
	Records []Record

	// storages are the storages read from the input's data/ records, in the order the
	// pickle names them, and headers the offsets of their records' local headers (nil when
	// a local header names its record differently from the directory); dataRecords counts
	// the records (some may hold no storage the pickle names); pklOffset is where data.pkl's
	// bytes lie. Save uses them to tell whether the storage records form one run it can copy
	// whole (see findRun).
	storages    []*checkpoint.Storage
	headers     []int64
	dataRecords int
	pklOffset   int64
}

// ArchiveOf returns the Archive a checkpoint was read with, or nil when it was not read by
// this package.
func ArchiveOf(c *checkpoint.Checkpoint) *Archive {
	a, _ := c.Container.(*Archive)
	return a
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

// recordReader returns a record's bytes from the checkpoint's source.
func recordReader(c *checkpoint.Checkpoint, r *Record) io.Reader {
	if r.size < 0 {
		return bytes.NewReader(r.data)
	}
	src, _ := c.Source()
	return io.NewSectionReader(src, r.offset, r.size)
}
