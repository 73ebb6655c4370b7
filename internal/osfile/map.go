package osfile

import (
	"errors"
	"fmt"
	"os"
)

// ErrNoMap: the platform or the file cannot be mapped; read it instead.
var ErrNoMap = errors.New("file cannot be memory-mapped")

// Mapping is a read-only memory mapping of a whole file.
type Mapping struct {
	data []byte
}

// Map maps the whole of f read-only and shared: pages come from the page cache and count
// as file-backed memory, not as the process's own. Bytes is valid until Close. A file that
// shrinks while mapped makes reading past its new end fault (SIGBUS on unix); readers that
// must survive that run under debug.SetPanicOnFault. Where mapping is not offered (windows
// here, an empty file) it returns an error wrapping ErrNoMap.
func Map(f *os.File) (*Mapping, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() == 0 || int64(int(fi.Size())) != fi.Size() {
		return nil, fmt.Errorf("%s: %w: not a regular, non-empty file", f.Name(), ErrNoMap)
	}
	data, err := mapFile(f, int(fi.Size()))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", f.Name(), ErrNoMap, err)
	}
	return &Mapping{data: data}, nil
}

// populateMin is the smallest range Populate asks the kernel to map ahead: 16 pages of 4 KiB.
const populateMin = 64 << 10

// Bytes returns the mapped file. Writing to it faults.
func (m *Mapping) Bytes() []byte { return m.data }

// Close unmaps the file; slices of Bytes must not be used afterwards.
func (m *Mapping) Close() error {
	if m.data == nil {
		return nil
	}
	data := m.data
	m.data = nil
	return unmapFile(data)
}

// Populate asks the kernel to map the pages under [off, off+n) of the mapping in one call
// rather than one fault at a time as they are first read (madvise MADV_POPULATE_READ on
// linux ≥ 5.14). Pages not in the page cache are read from disk. It is only advice: errors
// and a range outside the mapping are ignored, and elsewhere it does nothing. So is a
// range under populateMin bytes: its few faults cost no more than the call, and a
// checkpoint of 100,000 small tensors would make 100,000 calls.
func (m *Mapping) Populate(off, n int64) {
	if off < 0 || n < populateMin || off > int64(len(m.data))-n {
		return
	}
	start := off / int64(os.Getpagesize()) * int64(os.Getpagesize())
	_ = madvisePopulate(m.data[start : off+n])
}
