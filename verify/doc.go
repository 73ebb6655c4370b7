// Package verify proves that a converted checkpoint is the original with layers reshaped, and
// checks numerically that the reshaped layers compute what the originals did.
//
// The proof is exact (Prove): a conversion changes sizes and strides only, so every value,
// tensor view, storage byte and sharing of storages must be bit-identical, and each converted
// weight must read the same storage elements in the same order through its new view. The
// C×H×W split of a converted Linear is an assumption about the model that no computation
// can prove; Check states it per layer and compares it with what the original checkpoint
// says (rewrite.Evidence).
//
// The numeric part owns decoding tensor elements from a checkpoint's storages, the float32
// kernels that run nn.Linear and nn.Conv2d on them (GEMM-based, with float64 references for
// tests), and the equivalence checks that compare a layer's Linear form with its Conv2d form
// on seeded random inputs, with a tolerance from the rounding of the sums themselves (see
// Result): changed values fail it, and layout errors (a weight flattened channels-last, H and
// W swapped, a wrong stride) miss it by orders of magnitude.
package verify
