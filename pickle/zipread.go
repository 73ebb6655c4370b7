package pickle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"unsafe"
)

// The zip directory is read by hand rather than with archive/zip because a checkpoint of
// many tensors is mostly directory: archive/zip makes a File (five allocations) for each
// record and keeps them all, and finding a record's data costs a read of its local header
// each time it is asked. On 100,000 records that was a fifth of the time to open the file
// and 25 MB of garbage. This reader holds the directory in one buffer, takes names as
// substrings of it, and reads the local headers in file order through one cached block.
// It reads what torch writes (stored records, zip64 for large files and many records) and
// refuses the rest with the errors readZip reports.

// dirEntry is one record of the central directory.
type dirEntry struct {
	name          string // a substring of the directory buffer
	header        int64  // offset of the local header
	offset        int64  // of the data, once read from the local header (readZip)
	folder        bool   // a directory entry, which holds no data (readZip)
	sameName      bool   // the local header names the record as the directory does
	csize, usize  uint64
	crc32         uint32
	flags, method uint16
}

// Fixed sizes (APPNOTE.TXT); the signatures are zipwrite.go's.
const (
	centralHeaderLen  = 46
	directoryEndLen   = 22
	zip64LocatorLen   = 20
	zip64EndLen       = 56
	methodStore       = 0
	maxDirectoryBytes = 1 << 31 // a directory of tens of millions of records; more is not a checkpoint
)

var errNoDirectory = errors.New("no end-of-directory record")

// readZipDirectory returns the records of the zip archive of the given size in r, in
// directory order.
func readZipDirectory(r io.ReaderAt, size int64) ([]dirEntry, error) {
	if size < directoryEndLen {
		return nil, fmt.Errorf("%w: zip archive cut short (%d bytes)", ErrTruncated, size)
	}
	endOff, end, err := findDirectoryEnd(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: no valid zip directory (%v); the file may be truncated", ErrCorrupt, err)
	}
	records := uint64(binary.LittleEndian.Uint16(end[10:]))
	dirSize := uint64(binary.LittleEndian.Uint32(end[12:]))
	dirOff := uint64(binary.LittleEndian.Uint32(end[16:]))
	if records == math.MaxUint16 || dirSize == math.MaxUint32 || dirOff == math.MaxUint32 {
		if records, dirSize, dirOff, err = readZip64End(r, endOff); err != nil {
			return nil, fmt.Errorf("%w: zip64 directory: %v", ErrCorrupt, err)
		}
	}
	if dirOff > uint64(size) || dirSize > uint64(size)-dirOff || dirSize > maxDirectoryBytes {
		return nil, fmt.Errorf("%w: the zip directory claims %d bytes at offset %d of a %d-byte file; the file may be truncated", ErrCorrupt, dirSize, dirOff, size)
	}
	if records > dirSize/centralHeaderLen {
		return nil, fmt.Errorf("%w: the zip directory claims %d records in %d bytes", ErrCorrupt, records, dirSize)
	}
	buf, err := window(r, int64(dirOff), int64(dirSize))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the zip directory: %v", ErrTruncated, err)
	}
	// Every name is a substring of the buffer, seen as a string without copying it: a
	// copy of a directory of many records costs as much as parsing it, and buf is not
	// written after this point. When the file is mapped, buf is the mapping: the names are
	// then valid only until readZip unmaps it.
	dir := unsafe.String(unsafe.SliceData(buf), len(buf))
	entries := make([]dirEntry, 0, records)
	for pos := 0; uint64(len(entries)) < records; {
		e, n, err := parseCentralHeader(dir[pos:])
		if err != nil {
			return nil, fmt.Errorf("%w: zip directory record %d: %v", ErrCorrupt, len(entries), err)
		}
		entries = append(entries, e)
		pos += n
	}
	return entries, nil
}

// findDirectoryEnd finds the end-of-directory record in the last 64 KiB and 22 bytes of
// the file (its comment is at most 65,535 bytes), searching back from the end.
func findDirectoryEnd(r io.ReaderAt, size int64) (int64, []byte, error) {
	tail := min(size, directoryEndLen+math.MaxUint16)
	buf := make([]byte, tail)
	if _, err := r.ReadAt(buf, size-tail); err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, err
	}
	for i := len(buf) - directoryEndLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(buf[i:]) != sigEnd {
			continue
		}
		// The comment must reach exactly to the end of the file.
		if comment := int(binary.LittleEndian.Uint16(buf[i+20:])); i+directoryEndLen+comment == len(buf) {
			return size - tail + int64(i), buf[i : i+directoryEndLen], nil
		}
	}
	return 0, nil, errNoDirectory
}

// readZip64End reads the zip64 end-of-directory record through the locator just before
// the end-of-directory record at endOff.
func readZip64End(r io.ReaderAt, endOff int64) (records, dirSize, dirOff uint64, err error) {
	if endOff < zip64LocatorLen {
		return 0, 0, 0, errors.New("no zip64 locator")
	}
	var loc [zip64LocatorLen]byte
	if _, err := r.ReadAt(loc[:], endOff-zip64LocatorLen); err != nil {
		return 0, 0, 0, err
	}
	if binary.LittleEndian.Uint32(loc[:]) != sigZip64Locator {
		return 0, 0, 0, errors.New("no zip64 locator")
	}
	at := binary.LittleEndian.Uint64(loc[8:])
	if at > uint64(endOff) {
		return 0, 0, 0, fmt.Errorf("zip64 record at offset %d, past the directory's end", at)
	}
	var rec [zip64EndLen]byte
	if _, err := r.ReadAt(rec[:], int64(at)); err != nil {
		return 0, 0, 0, err
	}
	if binary.LittleEndian.Uint32(rec[:]) != sigZip64End {
		return 0, 0, 0, errors.New("no zip64 end-of-directory record")
	}
	return binary.LittleEndian.Uint64(rec[32:]), binary.LittleEndian.Uint64(rec[40:]), binary.LittleEndian.Uint64(rec[48:]), nil
}

// parseCentralHeader parses the central directory header at the start of dir and returns
// it with its length.
func parseCentralHeader(dir string) (dirEntry, int, error) {
	if len(dir) < centralHeaderLen || le32s(dir) != sigCentralHeader {
		return dirEntry{}, 0, errors.New("not a directory record")
	}
	e := dirEntry{
		flags:  le16s(dir[8:]),
		method: le16s(dir[10:]),
		crc32:  le32s(dir[16:]),
		csize:  uint64(le32s(dir[20:])),
		usize:  uint64(le32s(dir[24:])),
		header: int64(le32s(dir[42:])),
	}
	nameLen, extraLen, commentLen := int(le16s(dir[28:])), int(le16s(dir[30:])), int(le16s(dir[32:]))
	n := centralHeaderLen + nameLen + extraLen + commentLen
	if len(dir) < n {
		return dirEntry{}, 0, errors.New("record runs past the directory's end")
	}
	e.name = dir[centralHeaderLen : centralHeaderLen+nameLen]
	if err := e.zip64(dir[centralHeaderLen+nameLen : centralHeaderLen+nameLen+extraLen]); err != nil {
		return dirEntry{}, 0, fmt.Errorf("record %q: %v", e.name, err)
	}
	return e, n, nil
}

// zip64 takes the sizes and offset that do not fit in 32 bits from the zip64 extra field:
// each field that holds all ones is there, in this order.
func (e *dirEntry) zip64(extra string) error {
	need := e.usize == math.MaxUint32 || e.csize == math.MaxUint32 || e.header == math.MaxUint32
	for len(extra) >= 4 {
		id, n := le16s(extra), int(le16s(extra[2:]))
		if len(extra) < 4+n {
			return errors.New("extra field runs past its record")
		}
		field := extra[4 : 4+n]
		extra = extra[4+n:]
		if id != zip64ExtraID || !need {
			continue
		}
		for _, p := range []*uint64{&e.usize, &e.csize} {
			if *p == math.MaxUint32 {
				if len(field) < 8 {
					return errors.New("zip64 field too short")
				}
				*p, field = le64s(field), field[8:]
			}
		}
		if e.header == math.MaxUint32 {
			if len(field) < 8 {
				return errors.New("zip64 field too short")
			}
			e.header = int64(le64s(field))
		}
		return nil
	}
	if need {
		return errors.New("sizes that need a zip64 field, without one")
	}
	return nil
}

// dataOffset returns where e's bytes begin: after its local header, whose name and extra
// field lengths may differ from the directory's. It also records in e whether the local
// header names the record as the directory does, which copying a run of records verbatim
// relies on. buf is room for the header, passed in so that reading many headers allocates
// it once.
func dataOffset(r io.ReaderAt, e *dirEntry, size int64, buf *[]byte) (int64, error) {
	if e.header < 0 || e.header > size-localHeaderLen {
		return 0, fmt.Errorf("local header at offset %d, outside the file", e.header)
	}
	n := localHeaderLen + int64(len(e.name))
	if e.header > size-n {
		n = localHeaderLen // too short for the name: the lengths alone say where data starts
	}
	if int64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	h := (*buf)[:n]
	if _, err := r.ReadAt(h, e.header); err != nil {
		return 0, err
	}
	if binary.LittleEndian.Uint32(h) != sigLocalHeader {
		return 0, errors.New("no local header where the directory says")
	}
	nameLen := int64(binary.LittleEndian.Uint16(h[26:]))
	e.sameName = nameLen == int64(len(e.name)) && n > localHeaderLen && string(h[localHeaderLen:]) == e.name
	return e.header + localHeaderLen + nameLen + int64(binary.LittleEndian.Uint16(h[28:])), nil
}

func le16s(s string) uint16 { return uint16(s[0]) | uint16(s[1])<<8 }
func le32s(s string) uint32 { return uint32(le16s(s)) | uint32(le16s(s[2:]))<<16 }
func le64s(s string) uint64 { return uint64(le32s(s)) | uint64(le32s(s[4:]))<<32 }
