package ckptio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/osfile"
	"github.com/pt2conv/pt2conv/safetensors"
)

// maxIndexBytes bounds the index file read into memory.
const maxIndexBytes = 64 << 20

// Sharded is the Container of a checkpoint opened from a sharded checkpoint's index: a
// model split over several files, with {"metadata": {...}, "weight_map": {name: file}}.
type Sharded struct {
	// Index is the index file's path.
	Index string
	// Metadata is the index's "metadata" object; total_size is recomputed on save.
	Metadata map[string]any
	// Format is the shards' format.
	Format Format
	// Shards are the files, in the order of their names.
	Shards []*Shard

	shardOf map[string]int                              // tensor name -> shard
	origin  map[*checkpoint.Storage]*checkpoint.Storage // merged storage -> the shard's own
}

// Shard is one file of a sharded checkpoint.
type Shard struct {
	// File is the name the index gives it (relative to the index's directory).
	File string
	// Checkpoint is the shard opened on its own.
	Checkpoint *checkpoint.Checkpoint
	// Names are its tensors, in its order.
	Names []string
	base  int64 // where its bytes start in the merged source
	state checkpoint.Value
}

// ShardedOf returns the shards a checkpoint was opened from, or nil.
func ShardedOf(c *checkpoint.Checkpoint) *Sharded {
	s, _ := c.Container.(*Sharded)
	return s
}

// ShardOf names the shard file that holds the tensor name, or "".
func (s *Sharded) ShardOf(name string) string {
	if i, ok := s.shardOf[name]; ok {
		return s.Shards[i].File
	}
	return ""
}

type index struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// OpenIndex opens a sharded checkpoint from its index and every shard the index names.
// The checkpoint's root is one OrderedDict of all tensors, shard by shard; its storages'
// bytes are read from the shards through one merged source, so rewrites and checks see
// the whole model. Every tensor the index names must be in its shard.
func OpenIndex(path string) (c *checkpoint.Checkpoint, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxIndexBytes+1))
	f.Close()
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", path, ErrNotCheckpoint, fmt.Sprintf(format, args...))
	}
	if len(data) > maxIndexBytes {
		return nil, bad("an index of over %d bytes", maxIndexBytes)
	}
	var ix index
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&ix); err != nil {
		return nil, bad("not a sharded checkpoint's index (%v)", err)
	}
	if len(ix.WeightMap) == 0 {
		return nil, bad("the index has no weight_map")
	}
	files := map[string]bool{}
	for name, file := range ix.WeightMap {
		if file == "" || filepath.IsAbs(file) || filepath.Clean(file) != file || strings.HasPrefix(file, "..") || strings.ContainsAny(file, `/\`) {
			return nil, bad("weight_map[%q] = %q is not a file name beside the index", name, file)
		}
		files[file] = true
	}
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)

	sh := &Sharded{Index: path, Metadata: ix.Metadata, shardOf: map[string]int{}, origin: map[*checkpoint.Storage]*checkpoint.Storage{}}
	defer func() {
		if err != nil {
			for _, s := range sh.Shards {
				s.Checkpoint.Close()
			}
		}
	}()
	dir := filepath.Dir(path)
	root := &checkpoint.OrderedDict{}
	var src multiSource
	for i, file := range names {
		sc, err := Open(filepath.Join(dir, file))
		if err != nil {
			return nil, fmt.Errorf("%s: shard: %w", path, err)
		}
		if sc.Container != nil && ShardedOf(sc) != nil {
			sc.Close()
			return nil, bad("shard %s is itself an index", file)
		}
		shard := &Shard{File: file, Checkpoint: sc}
		sh.Shards = append(sh.Shards, shard)
		format := FormatOf(sc)
		if i == 0 {
			sh.Format = format
		} else if format != sh.Format {
			return nil, bad("shards in two formats (%s is %s, %s is %s)", names[0], sh.Format, file, format)
		}
		named, err := safetensors.StateDict(sc.Root)
		if err != nil {
			return nil, fmt.Errorf("%s: shard %s: %w", path, file, err)
		}
		if od, ok := sc.Root.(*checkpoint.OrderedDict); ok {
			shard.state = od.State
		}
		r, size := sc.Source()
		shard.base = src.add(r, size)
		moved := map[*checkpoint.Storage]*checkpoint.Storage{}
		for _, nt := range named {
			name := nt.Path.String()
			if prev, dup := sh.shardOf[name]; dup {
				return nil, bad("tensor %q is in both %s and %s", name, sh.Shards[prev].File, file)
			}
			if want, ok := ix.WeightMap[name]; ok && want != file {
				return nil, bad("tensor %q is in %s but the weight_map says %s", name, file, want)
			}
			sh.shardOf[name] = i
			shard.Names = append(shard.Names, name)
			t := *nt.Tensor
			m := moved[t.Storage]
			if m == nil {
				cp := *t.Storage
				cp.Offset += shard.base
				m = &cp
				moved[t.Storage] = m
				sh.origin[m] = t.Storage
			}
			t.Storage = m
			root.Entries = append(root.Entries, checkpoint.Entry{Key: name, Value: &t})
		}
	}
	for name, file := range ix.WeightMap {
		if _, ok := sh.shardOf[name]; !ok {
			return nil, bad("tensor %q is not in %s, where the weight_map puts it", name, file)
		}
	}
	c = checkpoint.New(root, &src, src.size, path)
	c.Format = string(sh.Format) + " shards"
	c.Container = sh
	c.SetCloser(sh)
	return c, nil
}

// Close closes every shard.
func (s *Sharded) Close() error {
	var errs []error
	for _, sh := range s.Shards {
		errs = append(errs, sh.Checkpoint.Close())
	}
	return errors.Join(errs...)
}

// multiSource reads several sources as one, laid end to end.
type multiSource struct {
	parts []io.ReaderAt
	bases []int64
	size  int64
}

func (m *multiSource) add(r io.ReaderAt, size int64) int64 {
	base := m.size
	m.parts = append(m.parts, r)
	m.bases = append(m.bases, base)
	m.size += size
	return base
}

func (m *multiSource) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for len(p) > 0 {
		if off >= m.size {
			return n, io.EOF
		}
		i := sort.Search(len(m.bases), func(i int) bool { return m.bases[i] > off }) - 1
		end := m.size
		if i+1 < len(m.bases) {
			end = m.bases[i+1]
		}
		k := int(min(int64(len(p)), end-off))
		got, err := m.parts[i].ReadAt(p[:k], off-m.bases[i])
		n += got
		if got < k {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		p, off = p[k:], off+int64(k)
	}
	return n, nil
}

// shardCheckpoint is shard i of a (rewritten) merged checkpoint, over the shard's own file.
func (s *Sharded) shardCheckpoint(c *checkpoint.Checkpoint, i int) (*checkpoint.Checkpoint, int64, error) {
	shard := s.Shards[i]
	entries, _, _ := checkpoint.Children(c.Root)
	od := &checkpoint.OrderedDict{State: shard.state}
	var bytes int64
	tensors := map[*checkpoint.Tensor]*checkpoint.Tensor{} // keeps tied tensors tied
	for _, e := range entries {
		name, _ := e.Key.(string)
		if j, ok := s.shardOf[name]; !ok || j != i {
			continue
		}
		t, ok := checkpoint.AsTensor(e.Value)
		if !ok {
			return nil, 0, fmt.Errorf("%q is a %s, not a tensor", name, checkpoint.TypeName(e.Value))
		}
		nt := tensors[t]
		if nt == nil {
			orig, ok := s.origin[t.Storage]
			if !ok {
				return nil, 0, fmt.Errorf("tensor %q: its storage is not one of the shards'", name)
			}
			cp := *t
			cp.Storage = orig
			nt = &cp
			tensors[t] = nt
		}
		bytes += nt.NumElements() * int64(nt.Storage.Kind.ItemSize())
		od.Entries = append(od.Entries, checkpoint.Entry{Key: name, Value: nt})
	}
	return shard.Checkpoint.WithRoot(od), bytes, nil
}

// saveSharded writes every shard of c in format f beside the index path, then the index,
// into a temporary directory, and moves them into place only when all are written.
func saveSharded(path string, c *checkpoint.Checkpoint, f Format, opts SaveOptions) (err error) {
	sh := ShardedOf(c)
	dir, indexName := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	dir = filepath.Clean(dir)
	if !IsIndex(indexName) {
		return fmt.Errorf("%s: a sharded checkpoint is written as an index (NAME.index.json) and its shards", path)
	}
	if err := notInput(sh, dir, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	parent := filepath.Dir(dir)
	if _, err := os.Stat(dir); err == nil {
		parent = dir
	}
	tmp, err := os.MkdirTemp(parent, ".pt2conv-tmp-shards-*")
	if err != nil {
		return fmt.Errorf("%s: cannot create the output: %w", path, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()

	type result struct {
		name  string
		bytes int64
		err   error
	}
	results := make([]result, len(sh.Shards))
	var mu sync.Mutex
	done := make([]int64, len(sh.Shards))
	var total int64
	for i := range sh.Shards {
		_, b, err := sh.shardCheckpoint(c, i)
		if err != nil {
			return fmt.Errorf("%s: shard %s: %w", path, sh.Shards[i].File, err)
		}
		total += b
	}
	jobs := max(opts.Jobs, 1)
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(jobs, len(sh.Shards)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				name := Rename(sh.Shards[i].File, f)
				sc, b, err := sh.shardCheckpoint(c, i)
				if err == nil {
					so := SaveOptions{Warn: opts.Warn}
					if opts.Progress != nil {
						so.Progress = func(d, _ int64) {
							mu.Lock()
							done[i] = d
							var sum int64
							for _, x := range done {
								sum += x
							}
							mu.Unlock()
							opts.Progress(sum, total)
						}
					}
					err = Save(filepath.Join(tmp, name), sc, f, so)
				}
				results[i] = result{name, b, err}
			}
		}()
	}
	for i := range sh.Shards {
		work <- i
	}
	close(work)
	wg.Wait()
	weightMap := map[string]string{}
	var size int64
	for i, r := range results {
		if r.err != nil {
			return fmt.Errorf("shard %s: %w", sh.Shards[i].File, r.err)
		}
		size += r.bytes
		for _, n := range sh.Shards[i].Names {
			weightMap[n] = r.name
		}
	}
	meta := map[string]any{}
	for k, v := range sh.Metadata {
		meta[k] = v
	}
	meta["total_size"] = size
	ix, err := json.MarshalIndent(index{Metadata: meta, WeightMap: weightMap}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, indexName), append(ix, '\n'), 0o644); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := syncAll(tmp); err != nil {
		return err
	}
	return publishDir(tmp, dir, opts.Force)
}

// syncAll syncs every file in dir and dir itself.
func syncAll(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// publishDir moves the finished directory tmp to dir: by renaming it when dir does not
// exist, else file by file, after checking that none would replace a file without force.
func publishDir(tmp, dir string, force bool) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(tmp, dir); err != nil {
			return err
		}
		return osfile.SyncDir(filepath.Dir(dir))
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	if !force {
		for _, e := range entries {
			if _, err := os.Lstat(filepath.Join(dir, e.Name())); err == nil {
				return fmt.Errorf("%s: %w", filepath.Join(dir, e.Name()), ErrExists)
			}
		}
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(tmp, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	if err := os.Remove(tmp); err != nil {
		return err
	}
	return osfile.SyncDir(dir)
}

// notInput refuses to write shards over the shards being read.
func notInput(sh *Sharded, dir string, f Format) error {
	out, err := os.Stat(dir)
	if err != nil {
		return nil
	}
	in, err := os.Stat(filepath.Dir(sh.Index))
	if err != nil || !os.SameFile(in, out) {
		return nil
	}
	for _, s := range sh.Shards {
		if Rename(s.File, f) == s.File {
			return fmt.Errorf("the output would replace the input shard %s; write to another directory", s.File)
		}
	}
	return nil
}
