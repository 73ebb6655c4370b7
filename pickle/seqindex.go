package pickle

// seqIndex maps string keys to values. torch names storages 0, 1, 2, ... (in the order it
// first meets them; their records come sorted as text, data/0, data/1, data/10, ...), so
// a key that is a number below the expected count finds its value by position in a slice,
// and only other keys are hashed: a checkpoint of many tensors is opened without a map of
// all its storage keys. Its zero value hashes every key.
type seqIndex[T any] struct {
	vals []T
	set  []bool // set[k]: key k has a value in vals
	m    map[string]T
}

// newSeqIndex returns an index with room by position for the keys 0 to n-1.
func newSeqIndex[T any](n int) seqIndex[T] {
	return seqIndex[T]{vals: make([]T, n), set: make([]bool, n)}
}

// get returns the value of key.
func (x *seqIndex[T]) get(key string) (T, bool) {
	if k, ok := sequenceNumber(key); ok && k < len(x.set) {
		return x.vals[k], x.set[k]
	}
	v, ok := x.m[key]
	return v, ok
}

// add records key's value; it reports false, and changes nothing, when key has one already.
func (x *seqIndex[T]) add(key string, v T) bool {
	if k, ok := sequenceNumber(key); ok && k < len(x.set) {
		if x.set[k] {
			return false
		}
		x.vals[k], x.set[k] = v, true
		return true
	}
	if _, ok := x.m[key]; ok {
		return false
	}
	if x.m == nil {
		x.m = map[string]T{}
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
