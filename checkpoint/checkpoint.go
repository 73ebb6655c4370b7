package checkpoint

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
)

// Checkpoint is an opened checkpoint: its object tree plus lazy references to its storages.
// A codec fills it when it opens a file, reading only the file's index (a pickle, a header);
// storage bytes stay in the file until they are copied or decoded.
type Checkpoint struct {
	// Root is the top object: a state_dict, a training checkpoint dict, ...
	Root Value
	// Name is the file's name, for messages.
	Name string
	// Format names the format the codec read ("zip", "legacy", "safetensors"); empty for a
	// checkpoint built in memory.
	Format string
	// Container is the reading codec's own description of the file (torch's zip records and
	// pickle protocol, for example). A writer of the same format uses it to keep what the
	// reader found; other codecs ignore it. Rewrites carry it over unchanged.
	Container any

	src    io.ReaderAt
	size   int64
	closer io.Closer

	// copyMu serialises copies that move the file offset of src (kernel copies read from
	// the offset); checkpoints made by WithRoot share their parent's.
	copyMu *sync.Mutex

	// mapped is set by Map; checkpoints made by WithRoot share their parent's.
	mapped *mapped
}

// New makes a checkpoint whose storages' bytes live in src, a source of size bytes. Codecs
// call it, then set the storages' offsets as they find them.
func New(root Value, src io.ReaderAt, size int64, name string) *Checkpoint {
	return &Checkpoint{Root: root, Name: name, src: src, size: size, copyMu: &sync.Mutex{}}
}

// Source returns where the storages' bytes live and how many bytes it holds.
func (c *Checkpoint) Source() (io.ReaderAt, int64) { return c.src, c.size }

// SourceFile returns the source as an *os.File, with the lock that a copy which moves the
// file's offset must hold; ok is false when the source is not a file.
func (c *Checkpoint) SourceFile() (f *os.File, mu *sync.Mutex, ok bool) {
	f, ok = c.src.(*os.File)
	return f, c.copyMu, ok
}

// SetCloser makes Close close cl: the codec hands over the file it opened.
func (c *Checkpoint) SetCloser(cl io.Closer) { c.closer = cl }

// StorageReader returns the storage's raw little-endian element bytes.
func (c *Checkpoint) StorageReader(s *Storage) *io.SectionReader {
	return io.NewSectionReader(c.src, s.Offset, s.ByteLen())
}

// Close releases the file the codec opened, and its mapping.
func (c *Checkpoint) Close() error {
	if c.closer == nil {
		return nil
	}
	if c.mapped != nil {
		c.mapped.m.Close()
		c.mapped = nil
	}
	return c.closer.Close()
}

// WithRoot returns a checkpoint that shares c's source and container but holds root.
// Rewrites use it to produce a new checkpoint without touching c.
func (c *Checkpoint) WithRoot(root Value) *Checkpoint {
	return &Checkpoint{
		Root:      root,
		Name:      c.Name,
		Format:    c.Format,
		Container: c.Container,
		src:       c.src,
		size:      c.size,
		closer:    nil, // the original owns the file
		copyMu:    c.copyMu,
		mapped:    c.mapped,
	}
}

// FromBytes makes a checkpoint whose storages live in memory: data holds each storage's
// raw little-endian element bytes (len(data[s]) must be s.ByteLen()). It serves tests and
// programs that build checkpoints from scratch; codecs write it like any other.
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
		s.Offset = int64(buf.Len())
		s.HasCRC = false
		buf.Write(b)
	}
	c := New(root, bytes.NewReader(buf.Bytes()), int64(buf.Len()), "<memory>")
	return c, nil
}

// String summarises the checkpoint for logs.
func (c *Checkpoint) String() string {
	return fmt.Sprintf("%s (%s, %d storages)", c.Name, c.Format, len(Storages(c.Root)))
}

// OpenFile opens the regular file at name and has read make a checkpoint of its bytes; the
// checkpoint keeps the file open until Close. Codecs' Open functions are this with their
// own reader; notRegular is the error they wrap when name is not a regular file.
func OpenFile(name string, notRegular error, read func(r io.ReaderAt, size int64, name string) (*Checkpoint, error)) (*Checkpoint, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		if st.IsDir() {
			return nil, fmt.Errorf("%s: %w: is a directory; give a checkpoint file in it (or a sharded checkpoint's *.index.json)", name, notRegular)
		}
		return nil, fmt.Errorf("%s: %w: not a regular file (a device, pipe or socket); give a checkpoint file", name, notRegular)
	}
	c, err := read(f, st.Size(), name)
	if err != nil {
		f.Close()
		return nil, err
	}
	c.SetCloser(f)
	return c, nil
}
