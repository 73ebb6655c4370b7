package pickle

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/osfile"
)

// A conversion changes data.pkl only, so the input's storage records (local headers,
// data, data descriptors) can go to the output unchanged, as one run: one kernel copy
// instead of one per record, and, with the run placed at an offset congruent modulo
// osfile.CloneBlock to where it lies in the input, a clone of every whole block on file
// systems that share blocks. Only data.pkl and the records around the run are written
// anew. The run's record names keep the input's top folder, so the whole output takes it.

// storageRun is the input's storage records, contiguous, in file order.
type storageRun struct {
	prefix   string                // the input's top folder
	storages []*checkpoint.Storage // in file order
	headers  []int64               // local header offset of storages[i], for i >= 1
	start    int64                 // first storage's data
	end      int64                 // end of the last storage's data
}

// findRun returns the run of storage records that the output can copy whole, or nil when
// the storages cannot be copied that way: the input is not a torch zip file, the output
// holds other storages than the input's records, or other records lie between them.
func findRun(c *checkpoint.Checkpoint, storages []*checkpoint.Storage) *storageRun {
	a := ArchiveOf(c)
	_, _, ok := c.SourceFile()
	if a == nil || !ok || len(storages) == 0 || len(storages) != a.dataRecords || len(storages) != len(a.storages) {
		return nil
	}
	// Each storage must be the input's record at its offset: both lists in file order,
	// pair by pair. The input's are sorted here, not when it was read: only a save needs it.
	order := offsetOrder(storages)
	sorted := make([]*checkpoint.Storage, len(order))
	for k, i := range order {
		sorted[k] = storages[i]
	}
	in := order // a conversion keeps the input's storages, in the same order
	if !slices.Equal(storages, a.storages) {
		in = offsetOrder(a.storages)
	}
	for i, s := range sorted {
		if x := a.storages[in[i]]; x.Offset != s.Offset || x.Key != s.Key || !s.HasCRC {
			return nil
		}
	}
	r := &storageRun{prefix: a.Prefix, storages: sorted, headers: make([]int64, len(sorted))}
	r.start = sorted[0].Offset
	last := sorted[len(sorted)-1]
	r.end = last.Offset + last.ByteLen()
	inside := func(off int64) bool { return off >= r.start && off < r.end }
	if inside(a.pklOffset) {
		return nil
	}
	for i := range a.Records {
		if rec := &a.Records[i]; rec.size >= 0 && inside(rec.offset) {
			return nil
		}
	}
	// Between two storages lie only the first one's data descriptor (12 to 24 bytes: with
	// or without its signature, with 32- or 64-bit sizes, or none) and the second one's
	// local header, which opening the file read and found naming the record as the
	// directory does.
	if len(a.headers) != len(sorted) {
		return nil
	}
	for i := 1; i < len(sorted); i++ {
		prevEnd := sorted[i-1].Offset + sorted[i-1].ByteLen()
		h := a.headers[in[i]]
		switch h - prevEnd {
		case 0, 12, 16, 20, 24:
		default:
			return nil
		}
		r.headers[i] = h
	}
	return r
}

// regularFileAtStart returns w as a regular file whose offset is 0, where a run may be
// copied with explicit offsets.
func regularFileAtStart(w io.Writer) (*os.File, bool) {
	f, ok := w.(*os.File)
	if !ok {
		return nil, false
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, false
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	return f, err == nil && pos == 0
}

// run writes the first storage's local header so that its data lands congruent to the
// input's modulo osfile.CloneBlock, then copies the rest of the run with osfile.CopyRange,
// in chunks so that the context and progress are looked at.
func (sv *saver) run(r *storageRun, prefix string) error {
	src, _, _ := sv.c.SourceFile()
	dst := sv.z.raw.(*os.File)
	first := r.storages[0]
	if err := sv.z.createAt(prefix+storageDir+first.Key, first.ByteLen(), r.start%osfile.CloneBlock, osfile.CloneBlock); err != nil {
		return err
	}
	if err := sv.z.Flush(); err != nil {
		return err
	}
	out := sv.z.off
	n := r.end - r.start
	var data int64
	for _, s := range r.storages {
		data += s.ByteLen()
	}
	base := sv.done
	for done := int64(0); done < n; {
		if err := sv.ctx.Err(); err != nil {
			return err
		}
		// Chunks end at multiples of copyChunk in the output, which are whole blocks at both
		// ends, so each chunk but the first clones from its start.
		m := min(n-done, copyChunk-(out+done)%copyChunk)
		cloned, err := osfile.CopyRange(dst, src, out+done, r.start+done, m)
		if err != nil {
			return fmt.Errorf("copying the storages: %w", err)
		}
		if cloned == 0 { // copied, not shared: let the disk start on it
			osfile.StartWriteback(dst, out+done, m)
		}
		done += m
		sv.done = base + min(done, data)
		sv.report()
	}
	sv.done = base + data
	if _, err := dst.Seek(out+n, io.SeekStart); err != nil {
		return err
	}
	shift := out - r.start
	dir := r.prefix + "/" + storageDir
	sv.z.adoptRun(first.CRC32, n, len(r.storages)-1, func(i int) zipEntry {
		s := r.storages[i+1]
		return zipEntry{dir: dir, name: s.Key, offset: r.headers[i+1] + shift, size: s.ByteLen(), crc: s.CRC32}
	})
	return sv.z.closeRecord(r.storages[len(r.storages)-1].CRC32)
}

// offsetOrder returns the indices of the storages in the order of their offsets in the
// source. The offsets are sorted as a list of their own: a sort that went through the
// storages to compare them would wait on memory at each step.
func offsetOrder(storages []*checkpoint.Storage) []int {
	type at struct {
		off int64
		i   int
	}
	byOff := make([]at, len(storages))
	for i, s := range storages {
		byOff[i] = at{s.Offset, i}
	}
	slices.SortFunc(byOff, func(x, y at) int { return cmp.Compare(x.off, y.off) })
	order := make([]int, len(byOff))
	for k, x := range byOff {
		order[k] = x.i
	}
	return order
}
