// Package memlimit keeps the process's heap close to what its live data needs.
//
// Go's collector lets the heap grow to twice the live data (GOGC=100) before it collects.
// pt2conv's live data is small — the object model of the checkpoints it has open, a few
// hundred bytes per tensor, and a few blocks of tensor bytes — but opening, planning and
// verifying a checkpoint of many tensors allocate many short-lived values, so with the
// default pacing the peak is about twice the live data. A soft memory limit (a budget) makes
// the collector run earlier as the heap nears it, so the peak stays near the budget.
//
// A fixed limit goes wrong when the live data itself nears it (a checkpoint of millions of
// tensors): the collector would run back to back. So after each collection the limit
// becomes the larger of the budget and 5/4 of the live heap. The headroom of a quarter of
// the live data bounds the collector's work at about four times the default's, which only
// checkpoints whose live data outgrows the budget pay; pt2conv's peak memory then stays at
// 5/4 of what it holds, where the default would let it reach twice that.
package memlimit

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DefaultBudget is the heap pt2conv aims for when GOMEMLIMIT does not say otherwise.
const DefaultBudget = 96 << 20

// liveMetric is the heap that survived the last collection.
const liveMetric = "/gc/heap/live:bytes"

// Start sets a soft memory limit of budget bytes that follows the live heap as the package
// comment describes, unless the environment sets GOMEMLIMIT (the user's limit wins) or
// budget is not positive. The returned function stops following and restores the limit
// in force before.
func Start(budget int64) (stop func()) {
	if budget <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	w := &watcher{budget: budget, before: debug.SetMemoryLimit(-1)}
	w.sample = []metrics.Sample{{Name: liveMetric}}
	debug.SetMemoryLimit(budget)
	w.arm()
	return w.stop
}

// watcher is called back after each collection through a cleanup on an object nobody
// references, re-armed each time: the runtime offers no other hook on the end of a cycle.
type watcher struct {
	mu      sync.Mutex
	budget  int64
	before  int64
	sample  []metrics.Sample
	stopped bool
}

// sentinel is large enough, and holds a pointer, so that it is not a tiny allocation,
// which would share its memory with other objects and be collected late or never.
type sentinel struct {
	_ *sentinel
	_ [3]uintptr
}

func (w *watcher) arm() {
	runtime.AddCleanup(new(sentinel), (*watcher).collected, w)
}

func (w *watcher) collected() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	debug.SetMemoryLimit(Limit(w.budget, w.live()))
	w.arm()
}

func (w *watcher) live() uint64 {
	metrics.Read(w.sample)
	if w.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return w.sample[0].Value.Uint64()
}

func (w *watcher) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.stopped = true
		debug.SetMemoryLimit(w.before)
	}
}

// Limit is the memory limit for a live heap of live bytes under budget: the budget, or 5/4
// of the live heap when that is larger.
func Limit(budget int64, live uint64) int64 {
	if live > math.MaxInt64/5 {
		return math.MaxInt64
	}
	return max(budget, int64(live)*5/4)
}
