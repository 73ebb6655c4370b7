package pickle

import (
	"encoding/binary"
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"io"
	"math/big"
)

// The legacy container (torch < 1.6, or _use_new_zipfile_serialization=False) is a stream
// of five pickles — magic number, protocol version, sys_info, the object, the list of
// storage keys — followed by each storage in key order as an 8-byte little-endian element
// count and the raw elements.
var legacyMagic = func() *big.Int {
	v, _ := new(big.Int).SetString("1950a86a20f9469cfc6c", 16)
	return v
}()

const legacyProtocolVersion = 1001

func (c *fileReader) readLegacy(lim Limits) error {
	c.format = FormatLegacy
	pos := int64(0)
	next := func(what string, d *decoder) (checkpoint.Value, error) {
		n, err := scanStream(io.NewSectionReader(c.src, pos, c.size-pos), c.size-pos, lim)
		if err != nil {
			return nil, fmt.Errorf("legacy %s: %w", what, err)
		}
		d.record = "the legacy " + what + " pickle"
		v, proto, err := c.decodePickle(d, pos, n, lim)
		if err != nil {
			return nil, err
		}
		if what == "object" {
			c.arch.Protocol = proto
		}
		pos += n
		return v, nil
	}
	header := &decoder{lim: lim}
	magic, err := next("magic number", header)
	if err != nil {
		return err
	}
	if !isBigValue(magic, legacyMagic) {
		return fmt.Errorf("%w: a pickle, but without torch's legacy magic number", ErrNotCheckpoint)
	}
	version, err := next("protocol version", header)
	if err != nil {
		return err
	}
	if version != int64(legacyProtocolVersion) {
		return fmt.Errorf("%w: legacy protocol version %s (torch writes %d)", ErrUnsupported, brief(version), legacyProtocolVersion)
	}
	info, err := next("sys_info", header)
	if err != nil {
		return err
	}
	if le, ok := dictLookup(info, "little_endian"); ok && le != true {
		return fmt.Errorf("%w: a big-endian legacy file", ErrUnsupported)
	}
	d := &decoder{lim: lim, legacy: true}
	root, err := next("object", d)
	if err != nil {
		return err
	}
	keysV, err := next("storage keys", header)
	if err != nil {
		return err
	}
	keys, ok := keysV.(*checkpoint.List)
	if !ok {
		return fmt.Errorf("%w: the legacy storage key list is a %s", ErrCorrupt, checkpoint.TypeName(keysV))
	}
	if len(keys.Items) != len(d.order) {
		return fmt.Errorf("%w: %d storage keys listed, %d referenced", ErrCorrupt, len(keys.Items), len(d.order))
	}
	placed := map[*checkpoint.Storage]bool{}
	for _, kv := range keys.Items {
		key, _ := kv.(string)
		s, ok := d.storages.get(key)
		if !ok {
			return fmt.Errorf("%w: storage key %s is listed but never referenced", ErrCorrupt, brief(kv))
		}
		if placed[s] {
			// Listed twice means another storage is not listed: its bytes would be unknown.
			return fmt.Errorf("%w: storage key %q is listed twice", ErrCorrupt, key)
		}
		placed[s] = true
		var count [8]byte
		if _, err := c.src.ReadAt(count[:], pos); err != nil {
			return fmt.Errorf("%w: storage %q: its element count is missing", ErrTruncated, key)
		}
		if n := binary.LittleEndian.Uint64(count[:]); n != uint64(s.Len) {
			return fmt.Errorf("%w: storage %q holds %d elements but its reference says %d", ErrCorrupt, key, n, s.Len)
		}
		pos += 8
		if s.ByteLen() > c.size-pos {
			return fmt.Errorf("%w: storage %q needs %d bytes, %d remain", ErrTruncated, key, s.ByteLen(), c.size-pos)
		}
		s.Offset = pos
		pos += s.ByteLen()
	}
	c.root = root
	return nil
}

func isBigValue(v checkpoint.Value, want *big.Int) bool {
	b, ok := v.(*big.Int)
	return ok && b.Cmp(want) == 0
}

func dictLookup(v checkpoint.Value, key string) (checkpoint.Value, bool) {
	var entries []checkpoint.Entry
	switch d := v.(type) {
	case *checkpoint.Dict:
		entries = d.Entries
	case *checkpoint.OrderedDict:
		entries = d.Entries
	}
	for _, e := range entries {
		if e.Key == key {
			return e.Value, true
		}
	}
	return nil, false
}
