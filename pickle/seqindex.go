package pickle

import "strconv"

// seqIndex maps string keys to values. torch names storages 0, 1, 2, ... in the order it
// first meets them, and their records data/0, data/1, ... in that order, so while the keys
// come in that sequence a slice is the index: a checkpoint of many tensors is opened
// without hashing each key twice. The first key out of sequence moves every key into a map.
type seqIndex[T any] struct {
	seq []T          // seq[k] is the value of key k, while m is nil
	m   map[string]T // every key, once one broke the sequence
}

// get returns the value of key.
func (x *seqIndex[T]) get(key string) (T, bool) {
	if x.m != nil {
		v, ok := x.m[key]
		return v, ok
	}
	var zero T
	k, ok := sequenceNumber(key)
	if !ok || k >= len(x.seq) {
		return zero, false
	}
	return x.seq[k], true
}

// add records key's value; it reports false, and changes nothing, when key has one already.
func (x *seqIndex[T]) add(key string, v T) bool {
	if x.m == nil {
		if k, ok := sequenceNumber(key); ok && k == len(x.seq) {
			x.seq = append(x.seq, v)
			return true
		}
		x.m = make(map[string]T, 2*len(x.seq)+1)
		for k, v := range x.seq {
			x.m[strconv.Itoa(k)] = v
		}
		x.seq = nil
	}
	if _, ok := x.m[key]; ok {
		return false
	}
	x.m[key] = v
	return true
}

// sequenceNumber reads key as a number written the way strconv.Itoa writes it ("0", "17";
// not "017" or "+1"), so that each number has one key.
func sequenceNumber(key string) (int, bool) {
	if len(key) == 0 || len(key) > 9 || key[0] == '0' && len(key) > 1 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
