// Package verify checks numerically that a converted checkpoint computes what the original
// did. It owns decoding tensor elements from a checkpoint's storages, the float32 kernels
// that run nn.Linear and nn.Conv2d on them (GEMM-based, with float64 references for tests),
// and the equivalence checks that compare a layer's Linear form with its Conv2d form on
// seeded random inputs.
//
// A weight converted from Linear to Conv2d is only a new view of the same bytes, so both
// forms see identical element values: any disagreement beyond summation-order rounding is a
// layout error (a weight flattened channels-last, H and W swapped, a wrong stride), and such
// errors miss the tolerance by orders of magnitude.
package verify
