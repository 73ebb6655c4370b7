package rewrite

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// ErrRename: a rename matches no key, or makes two keys one.
var ErrRename = errors.New("rename does not fit the checkpoint")

// A Rename maps a module-name prefix of state_dict keys to another, so converted weights
// load into a model whose modules have other names: {Old: "classifier.0", New: "fc6"} turns
// "classifier.0.weight" into "fc6.weight". Prefixes match whole module names only
// ("classifier.1" does not match "classifier.10.weight"). An empty New removes the prefix
// ({"module", ""}: DataParallel's "module.fc.weight" becomes "fc.weight"); an empty Old adds
// New in front of every key.
type Rename struct {
	Old string `json:"old"`
	New string `json:"new"`
}

func (r Rename) String() string { return r.Old + "=" + r.New }

// ParseRename reads "OLD=NEW". A trailing "." on either side is dropped: "module.=" is
// "module=".
func ParseRename(s string) (Rename, error) {
	old, new, ok := strings.Cut(s, "=")
	if !ok {
		return Rename{}, fmt.Errorf("want OLD=NEW, a module-name prefix and what replaces it (classifier.0=fc6)")
	}
	r := Rename{Old: strings.TrimSuffix(old, "."), New: strings.TrimSuffix(new, ".")}
	if r.Old == r.New {
		return Rename{}, fmt.Errorf("OLD and NEW are the same")
	}
	return r, nil
}

// apply returns key renamed and true when r's Old prefix matches it.
func (r Rename) apply(key string) (string, bool) {
	if r.Old == "" {
		return r.New + "." + key, true
	}
	rest, ok := strings.CutPrefix(key, r.Old)
	if !ok || (rest != "" && rest[0] != '.') {
		return "", false
	}
	if r.New == "" {
		if rest == "" {
			return "", false // the key would vanish
		}
		return rest[1:], true
	}
	return r.New + rest, true
}

// Renamed counts the keys one Rename changed, over all state_dicts.
type Renamed struct {
	Rename
	Keys int `json:"keys"`
}

func (r Renamed) String() string { return fmt.Sprintf("%s -> %s (%d keys)", r.Old, r.New, r.Keys) }

// RenameKeys returns c with the keys of every state_dict renamed, and the number of keys
// each rename changed. Where several renames match a key the longest Old wins. The
// state_dict's order, values and _metadata (renamed alike, which load_state_dict reads) are
// kept, so optimizer state, which refers to parameters by position, still fits. c is not
// modified; containers are copied along the paths to renamed dicts only. A rename that
// matches no key, or two keys that would end up the same, is an error wrapping ErrRename.
func RenameKeys(c *checkpoint.Checkpoint, renames []Rename) (*checkpoint.Checkpoint, []Renamed, error) {
	if len(renames) == 0 {
		return c, nil, nil
	}
	order := slices.Clone(renames)
	// Longest Old first, so the most specific prefix wins.
	slices.SortStableFunc(order, func(a, b Rename) int { return len(b.Old) - len(a.Old) })
	counts := map[Rename]int{}
	renamed := map[any]checkpoint.Value{} // old state_dict object -> renamed copy
	dicts := findStateDicts(c.Root)
	if len(dicts) == 0 {
		return nil, nil, fmt.Errorf("%w: %w", ErrRename, ErrNoStateDict)
	}
	for _, d := range dicts {
		if _, done := renamed[d.obj]; done {
			continue
		}
		nv, err := renameDict(d, order, counts)
		if err != nil {
			return nil, nil, err
		}
		renamed[d.obj] = nv
	}
	out := make([]Renamed, len(renames))
	for i, r := range renames {
		if counts[r] == 0 {
			return nil, nil, fmt.Errorf("%w: --rename %s: no state_dict key is %s or starts with %s.; modules at the top: %s",
				ErrRename, r, r.Old, r.Old, nameList(topModules(dicts)))
		}
		out[i] = Renamed{r, counts[r]}
	}
	r := replacer{with: renamed, done: map[any]checkpoint.Value{}, active: map[any]bool{}}
	root, _ := r.replace(c.Root)
	return c.WithRoot(root), out, nil
}

func renameKey(key string, order []Rename) (string, Rename, bool) {
	for _, r := range order {
		if nk, ok := r.apply(key); ok {
			return nk, r, true
		}
	}
	return key, Rename{}, false
}

func renameDict(d *stateDict, order []Rename, counts map[Rename]int) (checkpoint.Value, error) {
	entries := make([]checkpoint.Entry, len(d.entries))
	from := make(map[string]string, len(d.entries))
	for i, e := range d.entries {
		key := e.Key.(string)
		nk, r, ok := renameKey(key, order)
		if ok {
			counts[r]++
		}
		if prev, dup := from[nk]; dup {
			return nil, fmt.Errorf("%w: in state_dict %q, %s and %s would both be named %s", ErrRename, dictName(d.path), prev, key, nk)
		}
		from[nk] = key
		entries[i] = checkpoint.Entry{Key: nk, Value: e.Value}
	}
	switch old := d.obj.(type) {
	case *checkpoint.OrderedDict:
		return &checkpoint.OrderedDict{Entries: entries, State: renameMetadata(old.State, order)}, nil
	default:
		return &checkpoint.Dict{Entries: entries}, nil
	}
}

func dictName(p checkpoint.Path) string {
	if len(p) == 0 {
		return "/"
	}
	return p.String()
}

// renameMetadata renames the module prefixes of a state_dict's {"_metadata": {prefix:
// {"version": n}}}. A prefix that would collide with one already there keeps its old name:
// torch treats missing metadata as version None, never as an error.
func renameMetadata(state checkpoint.Value, order []Rename) checkpoint.Value {
	sd, ok := state.(*checkpoint.Dict)
	if !ok {
		return state
	}
	out := &checkpoint.Dict{Entries: slices.Clone(sd.Entries)}
	for i, e := range out.Entries {
		meta, ok := e.Value.(*checkpoint.OrderedDict)
		if k, _ := e.Key.(string); k != "_metadata" || !ok {
			continue
		}
		taken := map[string]bool{}
		for _, me := range meta.Entries {
			if k, ok := me.Key.(string); ok {
				taken[k] = true
			}
		}
		nm := &checkpoint.OrderedDict{Entries: slices.Clone(meta.Entries), State: meta.State}
		for j, me := range nm.Entries {
			k, ok := me.Key.(string)
			if !ok {
				continue
			}
			var nk string
			if k == "" {
				if nk, _, ok = renameKey("", order); !ok || nk == "." {
					continue
				}
				nk = strings.TrimSuffix(nk, ".")
			} else if nk, _, ok = renameKey(k, order); !ok {
				continue
			}
			if !taken[nk] {
				nm.Entries[j].Key = nk
				taken[nk] = true
			}
		}
		out.Entries[i].Value = nm
	}
	return out
}

// topModules lists the first name of every key, for a message that says what there is.
func topModules(dicts []*stateDict) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range dicts {
		for _, e := range d.entries {
			top, _, _ := strings.Cut(e.Key.(string), ".")
			if !seen[top] {
				seen[top] = true
				out = append(out, top)
			}
		}
	}
	return out
}

// replacer rebuilds the containers on the paths to replaced values, sharing everything else.
type replacer struct {
	with   map[any]checkpoint.Value
	done   map[any]checkpoint.Value // containers already rebuilt: shared objects stay shared
	active map[any]bool             // containers on the current path, to cut cycles
}

// replace returns v with the replaced values below it, and whether anything changed (values
// are not compared: some, such as Bytes, are not comparable).
func (r *replacer) replace(v checkpoint.Value) (checkpoint.Value, bool) {
	switch v.(type) {
	case *checkpoint.Dict, *checkpoint.OrderedDict, *checkpoint.List, *checkpoint.Tuple:
	default:
		return v, false
	}
	if nv, ok := r.with[v]; ok {
		return nv, true
	}
	if nv, ok := r.done[v]; ok {
		return nv, nv != v
	}
	if r.active[v] {
		return v, false
	}
	r.active[v] = true
	defer delete(r.active, v)
	var out checkpoint.Value = v
	switch c := v.(type) {
	case *checkpoint.Dict:
		if entries, changed := r.entries(c.Entries); changed {
			out = &checkpoint.Dict{Entries: entries}
		}
	case *checkpoint.OrderedDict:
		if entries, changed := r.entries(c.Entries); changed {
			out = &checkpoint.OrderedDict{Entries: entries, State: c.State}
		}
	case *checkpoint.List:
		if items, changed := r.items(c.Items); changed {
			out = &checkpoint.List{Items: items}
		}
	case *checkpoint.Tuple:
		if items, changed := r.items(c.Items); changed {
			out = &checkpoint.Tuple{Items: items}
		}
	}
	r.done[v] = out
	return out, out != v
}

func (r *replacer) entries(in []checkpoint.Entry) ([]checkpoint.Entry, bool) {
	var out []checkpoint.Entry
	for i, e := range in {
		nv, changed := r.replace(e.Value)
		if changed && out == nil {
			out = slices.Clone(in)
		}
		if changed {
			out[i].Value = nv
		}
	}
	return out, out != nil
}

func (r *replacer) items(in []checkpoint.Value) ([]checkpoint.Value, bool) {
	var out []checkpoint.Value
	for i, it := range in {
		nv, changed := r.replace(it)
		if changed && out == nil {
			out = slices.Clone(in)
		}
		if changed {
			out[i] = nv
		}
	}
	return out, out != nil
}
