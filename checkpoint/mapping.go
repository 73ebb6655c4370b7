package checkpoint

import (
	"errors"
	"fmt"
	"os"

	"github.com/pt2conv/pt2conv/internal/osfile"
)

// ErrChanged: the checkpoint's file changed size or modification time while it was open,
// so what was read from it may mix two versions.
var ErrChanged = errors.New("file changed while it was being read")

// mapped is a checkpoint's mapping of its source file and what the file was like then.
type mapped struct {
	m    *osfile.Mapping
	info os.FileInfo
}

// Map maps the checkpoint's source file read-only, so that MappedBytes hands out storages'
// bytes without reading them into the process's memory: they stay page cache pages, shared
// with every other reader of the file. It fails, and the storages are read as before,
// when the source is not a file, when the platform does not map files, or when the file
// is shorter than the storages need. Close unmaps it.
//
// A file that is truncated while mapped makes reading the lost pages fault: readers of
// mapped bytes run under debug.SetPanicOnFault and turn the fault into an error, and call
// Unchanged after reading to catch a file rewritten in place.
func (c *Checkpoint) Map() error {
	if c.mapped != nil {
		return nil
	}
	f, _, ok := c.SourceFile()
	if !ok {
		return fmt.Errorf("%s: %w: the checkpoint is not read from a file", c.Name, osfile.ErrNoMap)
	}
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if info.Size() < c.size {
		return fmt.Errorf("%s: %w: %d bytes, %d when it was opened", c.Name, ErrChanged, info.Size(), c.size)
	}
	m, err := osfile.Map(f)
	if err != nil {
		return err
	}
	c.mapped = &mapped{m: m, info: info}
	return nil
}

// MappedBytes returns the storage's raw little-endian element bytes from the mapping made
// by Map, without copying them; ok is false when the checkpoint is not mapped. The bytes
// are read-only: writing to them faults.
func (c *Checkpoint) MappedBytes(s *Storage) (b []byte, ok bool) {
	if c.mapped == nil {
		return nil, false
	}
	data := c.mapped.m.Bytes()
	n := s.ByteLen()
	if s.Offset < 0 || n < 0 || s.Offset > int64(len(data))-n {
		return nil, false
	}
	return data[s.Offset : s.Offset+n : s.Offset+n], true
}

// Prefault asks the kernel to map the pages of the storage's bytes in a mapped checkpoint
// at once, instead of one fault at a time as they are first read; it does nothing for a
// checkpoint that is not mapped. It is only advice: a reader calls it before going through
// a large storage.
func (c *Checkpoint) Prefault(s *Storage) {
	if c.mapped != nil {
		c.mapped.m.Populate(s.Offset, s.ByteLen())
	}
}

// Unchanged returns an error wrapping ErrChanged when the mapped file's size or
// modification time is no longer what it was when Map mapped it, and nil otherwise, also
// when the checkpoint is not mapped.
func (c *Checkpoint) Unchanged() error {
	if c.mapped == nil {
		return nil
	}
	f, _, _ := c.SourceFile()
	now, err := f.Stat()
	if err != nil {
		return err
	}
	was := c.mapped.info
	if now.Size() != was.Size() || !now.ModTime().Equal(was.ModTime()) {
		return fmt.Errorf("%s: %w", c.Name, ErrChanged)
	}
	return nil
}
