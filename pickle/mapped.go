package pickle

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/pt2conv/pt2conv/internal/osfile"
)

// Opening a zip checkpoint reads two large pieces whole: the zip directory and data.pkl.
// On a checkpoint of 100,000 tensors they are 20 MB, a third of the heap opening it
// needed, and touching fresh heap pages for the first time is most of what opening costs.
// So while a file is opened they are read in place from a read-only mapping of it, whose
// pages are the page cache's own, and only what the model keeps (keys, names) is copied.
// Where files are not mapped (windows) or the source is not a file, they are read into
// buffers as before.

// mappedFile is a source mapped into memory. It is an io.ReaderAt like the file, and
// window hands out its bytes without copying them.
type mappedFile struct {
	data []byte
	file *os.File
}

// cutShort reports whether the file is now shorter than its mapping, which makes reading
// the lost pages fault.
func (m *mappedFile) cutShort() bool {
	if m == nil || m.file == nil {
		return false
	}
	fi, err := m.file.Stat()
	return err == nil && fi.Size() < int64(len(m.data))
}

func (m *mappedFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// window returns the n bytes at off of r: a slice of the mapping when r is mapped, valid
// while it is, and otherwise a new buffer read from r.
func window(r io.ReaderAt, off, n int64) ([]byte, error) {
	if m, ok := r.(*mappedFile); ok {
		if off < 0 || n < 0 || off > int64(len(m.data))-n {
			return nil, io.ErrUnexpectedEOF
		}
		return m.data[off : off+n : off+n], nil
	}
	if n < 0 {
		return nil, io.ErrUnexpectedEOF
	}
	buf := make([]byte, n)
	if n == 0 {
		return buf, nil
	}
	if _, err := r.ReadAt(buf, off); err != nil {
		return nil, err
	}
	return buf, nil
}

// mapSource maps r when it is a file of the given size that can be mapped. The caller
// unmaps it with the returned function once nothing refers to its bytes, and reads it
// under readingMapped.
func mapSource(r io.ReaderAt, size int64) (*mappedFile, func()) {
	f, ok := r.(*os.File)
	if !ok {
		return nil, nil
	}
	m, err := osfile.Map(f)
	if err != nil || int64(len(m.Bytes())) < size {
		if err == nil {
			m.Close()
		}
		return nil, nil
	}
	return &mappedFile{data: m.Bytes()[:size], file: f}, func() { m.Close() }
}

// errCutShort is what reading a mapping finds when the file was truncated under it.
var errCutShort = fmt.Errorf("%w: the file was cut short while it was being read", ErrTruncated)

// readingMapped makes a fault on the mapped file m (a page past the end of a file another
// process truncated) a panic on this goroutine rather than a crash, and turns it into
// errCutShort in *err. Call it deferred, as defer readingMapped(m)(&err): it restores the
// goroutine's setting when it returns. m may be nil when nothing is mapped.
func readingMapped(m *mappedFile) func(err *error) {
	was := debug.SetPanicOnFault(true)
	return func(err *error) {
		debug.SetPanicOnFault(was)
		r := recover()
		if r == nil {
			return
		}
		// A file cut short explains any panic reading it, whatever the signal says: under
		// user-mode emulation a SIGBUS arrives without its address, as a nil dereference.
		if _, fault := r.(interface{ Addr() uintptr }); fault || m.cutShort() {
			*err = errCutShort
			return
		}
		panic(r)
	}
}
