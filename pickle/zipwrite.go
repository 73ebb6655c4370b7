package pickle

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// The zip container is written by hand rather than with archive/zip because torch's layout
// needs what archive/zip does not offer: every record's data must start at a multiple of
// 64 bytes (readers memory-map storages), which takes a padding extra field in the local
// header only, and storage bytes should go from the input file to the output file by
// copy_file_range without ever passing through a buffer in this process, which needs the
// raw output file between a record's header and its data descriptor.
//
// The layout follows what torch's writer (miniz) produces: stored records, flag 0x808 (data
// descriptor follows, names are UTF-8), zero time, date and versions in the local and
// central headers, the local header's CRC and sizes left zero, a data descriptor after
// each record's data, and always a zip64 end record and locator before the classic end
// record.

const (
	zipAlignment = 64
	// zipFlags: bit 3, sizes and CRC are in the data descriptor; bit 11, names are UTF-8.
	zipFlags = 0x808

	sigLocalHeader    = 0x04034b50
	sigDataDescriptor = 0x08074b50
	sigCentralHeader  = 0x02014b50
	sigZip64End       = 0x06064b50
	sigZip64Locator   = 0x07064b50
	sigEnd            = 0x06054b50

	localHeaderLen = 30
	// zip64ExtraID marks the zip64 extended information extra field.
	zip64ExtraID = 0x0001
	// paddingExtraID is the extra field torch pads local headers with: "FB".
	paddingExtraID = 0x4246
	// zip64VersionMadeBy is what miniz writes into the zip64 end record: unix, spec 3.0.
	zip64VersionMadeBy = 3<<8 | 30
	zip64VersionNeeded = 45
)

// zipEntry is what the central directory records about one written record.
type zipEntry struct {
	// The name is dir + name: records copied in one run share their folder's string
	// rather than each holding its whole name.
	dir, name string
	offset    int64 // of the local header
	size      int64
	crc       uint32
}

func (e *zipEntry) fullName() string { return e.dir + e.name }

// zipWriter writes a torch-style zip archive. Headers go through a buffer; record data
// goes either through Write (buffered) or, after Flush, straight to raw.
type zipWriter struct {
	raw io.Writer
	buf *bufio.Writer
	off int64

	entries []zipEntry
	open    *zipEntry // the record whose data is being written
	written int64     // data bytes written to open

	// zip64Limit is the value from which offsets and sizes need zip64 fields; 0xFFFFFFFF
	// as in miniz, lowered by tests to exercise the zip64 layout with small archives.
	zip64Limit int64
}

func newZipWriter(w io.Writer) *zipWriter {
	return &zipWriter{raw: w, buf: bufio.NewWriterSize(w, 64<<10), zip64Limit: 0xFFFFFFFF}
}

// Write writes data of the open record through the buffer.
func (z *zipWriter) Write(p []byte) (int, error) {
	n, err := z.buf.Write(p)
	z.off += int64(n)
	z.written += int64(n)
	return n, err
}

// Flush empties the buffer so that the caller may write to raw directly.
func (z *zipWriter) Flush() error { return z.buf.Flush() }

// wroteRaw accounts for n data bytes the caller wrote to raw after Flush.
func (z *zipWriter) wroteRaw(n int64) {
	z.off += n
	z.written += n
}

// create writes the local header of a record of size bytes; its data follows, at a
// multiple of zipAlignment.
func (z *zipWriter) create(name string, size int64) error {
	return z.createAt(name, size, 0, zipAlignment)
}

// createUnsized writes the local header of a record whose size is known only when it is
// closed; it cannot reach zip64Limit bytes, which would need a zip64 field in the header.
func (z *zipWriter) createUnsized(name string) error {
	if err := z.create(name, 0); err != nil {
		return err
	}
	z.open.size = -1
	return nil
}

// createAt is create with the data placed at an offset congruent to target modulo
// modulus (a multiple of zipAlignment below 64 KiB, the extra field's limit).
func (z *zipWriter) createAt(name string, size, target, modulus int64) error {
	if z.open != nil {
		return fmt.Errorf("zip: record %q still open", z.open.fullName())
	}
	if len(name) > 0xFFFF {
		return fmt.Errorf("zip: record name too long")
	}
	offset := z.off
	var zip64 []byte
	if size >= z.zip64Limit || offset >= z.zip64Limit {
		zip64 = zip64Extra(size, offset, z.zip64Limit, true)
	}
	// The data starts after the header, the name, the zip64 field and the padding field's
	// own 4 bytes; pad that to the alignment.
	start := offset + localHeaderLen + int64(len(name)) + int64(len(zip64)) + 4
	pad := ((target-start)%modulus + modulus) % modulus

	var h [localHeaderLen]byte
	binary.LittleEndian.PutUint32(h[0:], sigLocalHeader)
	binary.LittleEndian.PutUint16(h[6:], zipFlags)
	// version, method, time, date, CRC and sizes stay zero: the descriptor carries them.
	binary.LittleEndian.PutUint16(h[26:], uint16(len(name)))
	binary.LittleEndian.PutUint16(h[28:], uint16(len(zip64)+4+int(pad)))
	z.header(h[:])
	z.headerString(name)
	z.header(zip64)
	fb := make([]byte, 4+pad)
	binary.LittleEndian.PutUint16(fb[0:], paddingExtraID)
	binary.LittleEndian.PutUint16(fb[2:], uint16(pad))
	for i := 4; i < len(fb); i++ {
		fb[i] = 'Z'
	}
	z.header(fb)
	z.entries = append(z.entries, zipEntry{name: name, offset: offset, size: size})
	z.open = &z.entries[len(z.entries)-1]
	z.written = 0
	return nil
}

// adoptRun accounts for n bytes the caller copied to raw after Flush that complete the open
// record's data and hold, whole, more records, entry(0) to entry(more-1) (each with its
// local header, data and data descriptor) but the last one's descriptor: the open record
// gets crc and the last of the more records is left open, for closeRecord to write its
// descriptor. The entries are made in place: a run may hold a hundred thousand.
func (z *zipWriter) adoptRun(crc uint32, n int64, more int, entry func(i int) zipEntry) {
	z.off += n
	if more == 0 {
		z.written += n
		return
	}
	z.open.crc = crc
	z.open = nil
	z.entries = slices.Grow(z.entries, more)
	for i := range more {
		z.entries = append(z.entries, entry(i))
	}
	z.open = &z.entries[len(z.entries)-1]
	z.written = z.open.size
}

// zip64Extra builds the zip64 extended information field miniz writes: the sizes when
// the size needs them, then the local header offset when that does. In the local header
// miniz leaves the compressed size 0 (it is not known yet when the header is written).
func zip64Extra(size, offset, limit int64, local bool) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint16(b, zip64ExtraID)
	b = binary.LittleEndian.AppendUint16(b, 0)
	if size >= limit {
		compressed := size // stored
		if local {
			compressed = 0
		}
		b = binary.LittleEndian.AppendUint64(b, uint64(size))
		b = binary.LittleEndian.AppendUint64(b, uint64(compressed))
	}
	if offset >= limit {
		b = binary.LittleEndian.AppendUint64(b, uint64(offset))
	}
	binary.LittleEndian.PutUint16(b[2:], uint16(len(b)-4))
	return b
}

// field32 is the 32-bit form of an offset or size: the value itself, or 0xFFFFFFFF when
// the zip64 fields hold it.
func (z *zipWriter) field32(v int64) uint32 {
	if v >= z.zip64Limit {
		return 0xFFFFFFFF
	}
	return uint32(v)
}

func (z *zipWriter) header(b []byte) {
	n, _ := z.buf.Write(b) // errors resurface at the next Flush
	z.off += int64(n)
}

func (z *zipWriter) headerString(s string) {
	n, _ := z.buf.WriteString(s)
	z.off += int64(n)
}

// closeRecord writes the open record's data descriptor, with 64-bit sizes when the record
// has a zip64 field, as miniz does.
func (z *zipWriter) closeRecord(crc uint32) error {
	e := z.open
	if e == nil {
		return fmt.Errorf("zip: no open record")
	}
	if e.size < 0 {
		if z.written >= z.zip64Limit {
			return fmt.Errorf("zip: record %q: %d bytes, too many for a record written before its size was known", e.fullName(), z.written)
		}
		e.size = z.written
	}
	if z.written != e.size {
		return fmt.Errorf("zip: record %q: wrote %d bytes, declared %d", e.fullName(), z.written, e.size)
	}
	e.crc = crc
	z.open = nil
	var d [24]byte
	binary.LittleEndian.PutUint32(d[0:], sigDataDescriptor)
	binary.LittleEndian.PutUint32(d[4:], crc)
	n := 16
	if e.size >= z.zip64Limit || e.offset >= z.zip64Limit {
		binary.LittleEndian.PutUint64(d[8:], uint64(e.size))
		binary.LittleEndian.PutUint64(d[16:], uint64(e.size))
		n = 24
	} else {
		binary.LittleEndian.PutUint32(d[8:], uint32(e.size))
		binary.LittleEndian.PutUint32(d[12:], uint32(e.size))
	}
	z.header(d[:n])
	return nil
}

// Close writes the central directory and the end records and flushes. It does not close
// the underlying writer.
func (z *zipWriter) Close() error {
	if z.open != nil {
		return fmt.Errorf("zip: record %q still open", z.open.fullName())
	}
	dirStart := z.off
	for _, e := range z.entries {
		var extra []byte
		if e.size >= z.zip64Limit || e.offset >= z.zip64Limit {
			extra = zip64Extra(e.size, e.offset, z.zip64Limit, false)
		}
		var h [46]byte
		binary.LittleEndian.PutUint32(h[0:], sigCentralHeader)
		binary.LittleEndian.PutUint16(h[8:], zipFlags)
		binary.LittleEndian.PutUint32(h[16:], e.crc)
		binary.LittleEndian.PutUint32(h[20:], z.field32(e.size))
		binary.LittleEndian.PutUint32(h[24:], z.field32(e.size))
		binary.LittleEndian.PutUint16(h[28:], uint16(len(e.dir)+len(e.name)))
		binary.LittleEndian.PutUint16(h[30:], uint16(len(extra)))
		binary.LittleEndian.PutUint32(h[42:], z.field32(e.offset))
		z.header(h[:])
		z.headerString(e.dir)
		z.headerString(e.name)
		z.header(extra)
	}
	dirEnd := z.off
	dirSize := dirEnd - dirStart
	count := int64(len(z.entries))

	var end64 [56]byte
	binary.LittleEndian.PutUint32(end64[0:], sigZip64End)
	binary.LittleEndian.PutUint64(end64[4:], 56-12)
	binary.LittleEndian.PutUint16(end64[12:], zip64VersionMadeBy)
	binary.LittleEndian.PutUint16(end64[14:], zip64VersionNeeded)
	binary.LittleEndian.PutUint64(end64[24:], uint64(count))
	binary.LittleEndian.PutUint64(end64[32:], uint64(count))
	binary.LittleEndian.PutUint64(end64[40:], uint64(dirSize))
	binary.LittleEndian.PutUint64(end64[48:], uint64(dirStart))
	z.header(end64[:])

	var loc [20]byte
	binary.LittleEndian.PutUint32(loc[0:], sigZip64Locator)
	binary.LittleEndian.PutUint64(loc[8:], uint64(dirEnd))
	binary.LittleEndian.PutUint32(loc[16:], 1)
	z.header(loc[:])

	var end [22]byte
	binary.LittleEndian.PutUint32(end[0:], sigEnd)
	binary.LittleEndian.PutUint16(end[8:], uint16(min(count, 0xFFFF)))
	binary.LittleEndian.PutUint16(end[10:], uint16(min(count, 0xFFFF)))
	binary.LittleEndian.PutUint32(end[12:], z.field32(dirSize))
	binary.LittleEndian.PutUint32(end[16:], z.field32(dirStart))
	z.header(end[:])
	return z.buf.Flush()
}
