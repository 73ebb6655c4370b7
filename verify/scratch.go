package verify

// scratch hands out the buffers of one layer's checks. A checkpoint of many small layers
// (a mixture of experts holds tens of thousands) would otherwise have every layer allocate
// a dozen buffers of its own, a few KiB each, and the collector spend more time on them
// than the products take. A scratch keeps its slabs from one layer to the next: reset makes
// them free again once the layer's results are summed up. Buffers larger than scratchMax
// elements are allocated on their own, so a large layer leaves nothing behind (see check)
// and the slabs stay at most a few MiB.
//
// A nil *scratch allocates every buffer anew.
type scratch struct {
	f32      []float32
	f64      []float64
	denses   []shapedDense
	n32, n64 int // elements of the slabs handed out since reset
	nd       int // denses handed out since reset
}

// scratchMax is the largest buffer, in elements, a scratch hands out from its slabs.
const scratchMax = 1 << 16

// slabMax bounds a slab, in elements: 1 MiB of float32, 2 MiB of float64.
const slabMax = 4 * scratchMax

// reset makes every buffer handed out so far free for reuse.
func (s *scratch) reset() {
	if s != nil {
		s.n32, s.n64, s.nd = 0, 0, 0
	}
}

// floats returns n zeroed float32 values.
func (s *scratch) floats(n int) []float32 {
	if s == nil || n > scratchMax {
		return make([]float32, n)
	}
	return fromSlab(&s.f32, &s.n32, n, 1<<10)
}

// float64s returns n zeroed float64 values.
func (s *scratch) float64s(n int) []float64 {
	if s == nil || n > scratchMax {
		return make([]float64, n)
	}
	return fromSlab(&s.f64, &s.n64, n, 1<<9)
}

// fromSlab hands out the next n elements of *slab, of which *used are handed out already,
// zeroed. When they do not fit, a larger slab (at least least elements) takes its place:
// the buffers already handed out keep the old one alive until reset, after which the new
// one serves a whole layer.
func fromSlab[T float32 | float64](slab *[]T, used *int, n, least int) []T {
	if *used+n > len(*slab) {
		*slab, *used = make([]T, min(max(n, 2*len(*slab), least), slabMax)), 0
	}
	b := (*slab)[*used : *used+n : *used+n]
	*used += n
	clear(b)
	return b
}

// shapedDense is a Dense with room for its shape, so that one allocation makes both.
type shapedDense struct {
	Dense
	shape [4]int
}

// dense returns a zeroed array of the given shape (at most 4 dimensions).
func (s *scratch) dense(shape ...int) *Dense {
	var d *shapedDense
	switch {
	case s == nil:
		d = new(shapedDense)
	case s.nd < len(s.denses):
		d = &s.denses[s.nd]
		s.nd++
	default:
		s.denses, s.nd = make([]shapedDense, max(8, 2*len(s.denses))), 1
		d = &s.denses[0]
	}
	d.Shape = append(d.shape[:0], shape...)
	d.Data = s.floats(numElements(shape))
	return &d.Dense
}
