//go:build amd64 && !purego

package verify

// weightsInPlace: mapped float32 weights go to the matrix kernel as they lie in the mapping.
// internal/sgemm's own workers hand a fault (a file truncated meanwhile) back to Check.
const weightsInPlace = true
