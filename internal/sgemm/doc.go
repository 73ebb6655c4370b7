// Package sgemm provides a fast single-precision general matrix multiply
// (C = alpha*op(A)*op(B) + beta*C, row-major, BLAS semantics) for the
// numerical verification kernels.
//
// It is hand-written because no maintained pure-Go library comes close to
// the rate the verification needs: checking a converted VGG16 head
// multiplies 4096x25088 weights by im2col matrices of a few dozen columns,
// and gonum's Sgemm runs such products at a small fraction of what the
// hardware can do.
//
// The algorithm follows the Goto/BLIS blocking scheme with these
// parameters:
//
//   - kc = 256: the depth of every block of the k dimension;
//   - nc = 4080: for each k block, a kc x nc panel of op(B), scaled by
//     alpha, is packed into slivers of nr = 16 columns (16 KiB each, kept
//     in L1 while in use);
//   - mc = 120: op(A) is taken in blocks of mc x kc (120 KiB, kept in L2),
//     in slivers of mr = 6 rows.
//
// The micro-kernel keeps a 6x16 tile of C in twelve YMM registers,
// broadcasting one element of A and multiplying it with two 8-wide vectors
// of B by fused multiply-add (VFMADD231PS); it is written in Go assembly
// for amd64 with AVX2 and FMA. When A is not transposed the kernel reads
// its six rows in place rather than from a packed copy: with few columns
// in B, packing A costs as much as the arithmetic, and the kernel
// prefetches the rows of the next A block instead. A transposed A is
// packed. Tiles at the edges of C are computed into a scratch tile and
// copied. Large products are split along m (or n when it is the larger)
// over goroutines, each running the blocked algorithm on its share with
// its own packing buffers taken from a sync.Pool.
//
// Where AVX2 and FMA are missing (detected at run time), on other
// architectures, or when built with the purego tag, Sgemm delegates to
// gonum's pure-Go implementation.
package sgemm
