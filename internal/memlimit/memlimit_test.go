package memlimit

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestLimit(t *testing.T) {
	tests := []struct {
		budget int64
		live   uint64
		want   int64
	}{
		{96 << 20, 0, 96 << 20},
		{96 << 20, 40 << 20, 96 << 20},
		{96 << 20, 76 << 20, 96 << 20},
		{96 << 20, 80 << 20, 100 << 20}, // 5/4 of the live heap passes the budget
		{96 << 20, 800 << 20, 1000 << 20},
		{96 << 20, math.MaxUint64, math.MaxInt64},
	}
	for _, tt := range tests {
		if got := Limit(tt.budget, tt.live); got != tt.want {
			t.Errorf("Limit(%d, %d) = %d, want %d", tt.budget, tt.live, got, tt.want)
		}
	}
}

// TestStartFollowsTheLiveHeap: the limit starts at the budget, rises past it after a
// collection that finds more live data than the budget leaves headroom for, and stop
// restores the limit that was in force.
func TestStartFollowsTheLiveHeap(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	const budget = 8 << 20
	stop := Start(budget)
	if got := debug.SetMemoryLimit(-1); got != budget {
		t.Fatalf("limit %d after Start, want the budget %d", got, budget)
	}
	live := make([]byte, 16<<20)
	// The watcher runs on its own goroutine after a cycle: give it a few.
	got := int64(0)
	for range 100 {
		runtime.GC()
		if got = debug.SetMemoryLimit(-1); got >= 16<<20*5/4 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if got < 16<<20*5/4 {
		t.Errorf("limit %d with 16 MiB live, want at least %d", got, 16<<20*5/4)
	}
	runtime.KeepAlive(live)
	stop()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit %d after stop, want %d as before", got, before)
	}
}

func TestStartLeavesGOMEMLIMITAlone(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "1GiB")
	before := debug.SetMemoryLimit(-1)
	Start(DefaultBudget)()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit %d with GOMEMLIMIT set, want %d untouched", got, before)
	}
}
