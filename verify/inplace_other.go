//go:build !amd64 || purego

package verify

// weightsInPlace: the pure-Go kernel multiplies on gonum's goroutines, which cannot hand a
// fault on a truncated mapping back to Check, so mapped weights are copied out first, in
// Check's own goroutine, where a fault becomes an error.
const weightsInPlace = false
