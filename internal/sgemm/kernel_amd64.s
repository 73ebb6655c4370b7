//go:build amd64 && !purego

#include "textflag.h"

// Register use: Y0..Y11 hold the 6x16 tile of C (row r in Y(2r), Y(2r+1)),
// Y12/Y13 a row of the B sliver, Y14/Y15 broadcasts of A. AX walks A (the
// packed sliver, or rows 0..2 of the unpacked one, with R9 walking rows
// 3..5 and R8 their stride in bytes), BX walks the packed B sliver, DX
// points at the C tile and SI is its row stride in bytes. CX and DI count
// k; R10..R12 are prefetch pointers.

// STEP does one k step at byte offsets ao into A and bo into B.
#define STEP(ao, bo) \
	VMOVUPS      bo(BX), Y12;           \
	VMOVUPS      bo+32(BX), Y13;        \
	VBROADCASTSS ao(AX), Y14;           \
	VFMADD231PS  Y12, Y14, Y0;          \
	VFMADD231PS  Y13, Y14, Y1;          \
	VBROADCASTSS ao+4(AX), Y15;         \
	VFMADD231PS  Y12, Y15, Y2;          \
	VFMADD231PS  Y13, Y15, Y3;          \
	VBROADCASTSS ao+8(AX), Y14;         \
	VFMADD231PS  Y12, Y14, Y4;          \
	VFMADD231PS  Y13, Y14, Y5;          \
	VBROADCASTSS ao+12(AX), Y15;        \
	VFMADD231PS  Y12, Y15, Y6;          \
	VFMADD231PS  Y13, Y15, Y7;          \
	VBROADCASTSS ao+16(AX), Y14;        \
	VFMADD231PS  Y12, Y14, Y8;          \
	VFMADD231PS  Y13, Y14, Y9;          \
	VBROADCASTSS ao+20(AX), Y15;        \
	VFMADD231PS  Y12, Y15, Y10;         \
	VFMADD231PS  Y13, Y15, Y11

// STEPROWS does one k step like STEP, but reads the six elements of A
// from six rows of the unpacked matrix: rows 0..2 at AX, AX+R8, AX+2*R8 and
// rows 3..5 at R9, R9+R8, R9+2*R8, each at byte offset ao.
#define STEPROWS(ao, bo) \
	VMOVUPS      bo(BX), Y12;           \
	VMOVUPS      bo+32(BX), Y13;        \
	VBROADCASTSS ao(AX), Y14;           \
	VFMADD231PS  Y12, Y14, Y0;          \
	VFMADD231PS  Y13, Y14, Y1;          \
	VBROADCASTSS ao(AX)(R8*1), Y15;     \
	VFMADD231PS  Y12, Y15, Y2;          \
	VFMADD231PS  Y13, Y15, Y3;          \
	VBROADCASTSS ao(AX)(R8*2), Y14;     \
	VFMADD231PS  Y12, Y14, Y4;          \
	VFMADD231PS  Y13, Y14, Y5;          \
	VBROADCASTSS ao(R9), Y15;           \
	VFMADD231PS  Y12, Y15, Y6;          \
	VFMADD231PS  Y13, Y15, Y7;          \
	VBROADCASTSS ao(R9)(R8*1), Y14;     \
	VFMADD231PS  Y12, Y14, Y8;          \
	VFMADD231PS  Y13, Y14, Y9;          \
	VBROADCASTSS ao(R9)(R8*2), Y15;     \
	VFMADD231PS  Y12, Y15, Y10;         \
	VFMADD231PS  Y13, Y15, Y11

// STORE adds one row of the tile to C and moves to the next row.
#define STORE(lo, hi) \
	VADDPS  (DX), lo, lo;   \
	VADDPS  32(DX), hi, hi; \
	VMOVUPS lo, (DX);       \
	VMOVUPS hi, 32(DX);     \
	ADDQ    SI, DX

// PREFETCHC asks for the six rows of the C tile, which the kernel reads
// only at its end, while the multiplication runs. A row of 16 floats may
// straddle two cache lines.
#define PREFETCHC \
	MOVQ       DX, R12;    \
	PREFETCHT0 (R12);      \
	PREFETCHT0 60(R12);    \
	ADDQ       SI, R12;    \
	PREFETCHT0 (R12);      \
	PREFETCHT0 60(R12);    \
	ADDQ       SI, R12;    \
	PREFETCHT0 (R12);      \
	PREFETCHT0 60(R12);    \
	ADDQ       SI, R12;    \
	PREFETCHT0 (R12);      \
	PREFETCHT0 60(R12);    \
	ADDQ       SI, R12;    \
	PREFETCHT0 (R12);      \
	PREFETCHT0 60(R12);    \
	ADDQ       SI, R12;    \
	PREFETCHT0 (R12);      \
	PREFETCHT0 60(R12)

#define ZERO \
	VXORPS Y0, Y0, Y0;    \
	VXORPS Y1, Y1, Y1;    \
	VXORPS Y2, Y2, Y2;    \
	VXORPS Y3, Y3, Y3;    \
	VXORPS Y4, Y4, Y4;    \
	VXORPS Y5, Y5, Y5;    \
	VXORPS Y6, Y6, Y6;    \
	VXORPS Y7, Y7, Y7;    \
	VXORPS Y8, Y8, Y8;    \
	VXORPS Y9, Y9, Y9;    \
	VXORPS Y10, Y10, Y10; \
	VXORPS Y11, Y11, Y11

#define STORETILE \
	STORE(Y0, Y1);   \
	STORE(Y2, Y3);   \
	STORE(Y4, Y5);   \
	STORE(Y6, Y7);   \
	STORE(Y8, Y9);   \
	STORE(Y10, Y11); \
	VZEROUPPER

// func kernel6x16(kb int, a, b, c *float32, ldc int)
TEXT ·kernel6x16(SB), NOSPLIT, $0-40
	MOVQ kb+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ b+16(FP), BX
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), SI
	SHLQ $2, SI

	PREFETCHC
	ZERO

	MOVQ  CX, DI
	SHRQ  $2, DI
	ANDQ  $3, CX
	TESTQ DI, DI
	JZ    tail

loop4:
	PREFETCHT0 384(AX)
	STEP(0, 0)
	STEP(24, 64)
	PREFETCHT0 512(BX)
	STEP(48, 128)
	STEP(72, 192)
	ADDQ $96, AX
	ADDQ $256, BX
	DECQ DI
	JNZ  loop4

tail:
	TESTQ CX, CX
	JZ    store

loop1:
	STEP(0, 0)
	ADDQ $24, AX
	ADDQ $64, BX
	DECQ CX
	JNZ  loop1

store:
	STORETILE
	RET

// func kernel6x16Rows(kb int, a *float32, lda int, b, c *float32, ldc int, next *float32)
//
// Rows of A are short streams (kc floats each) that the hardware prefetcher
// barely follows, so the caller points next at rows still to come and the
// loop prefetches them alongside its own.
TEXT ·kernel6x16Rows(SB), NOSPLIT, $0-56
	MOVQ kb+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ lda+16(FP), R8
	MOVQ b+24(FP), BX
	MOVQ c+32(FP), DX
	MOVQ ldc+40(FP), SI
	MOVQ next+48(FP), R10
	SHLQ $2, SI
	SHLQ $2, R8
	LEAQ (AX)(R8*2), R9
	ADDQ R8, R9
	LEAQ (R10)(R8*2), R11
	ADDQ R8, R11

	PREFETCHC
	ZERO

	MOVQ  CX, DI
	SHRQ  $2, DI
	ANDQ  $3, CX
	TESTQ DI, DI
	JZ    rowstail

rowsloop4:
	STEPROWS(0, 0)
	PREFETCHT0 (R10)
	PREFETCHT0 (R10)(R8*1)
	PREFETCHT0 (R10)(R8*2)
	STEPROWS(4, 64)
	PREFETCHT0 512(BX)
	STEPROWS(8, 128)
	PREFETCHT0 (R11)
	PREFETCHT0 (R11)(R8*1)
	PREFETCHT0 (R11)(R8*2)
	STEPROWS(12, 192)
	ADDQ $16, AX
	ADDQ $16, R9
	ADDQ $16, R10
	ADDQ $16, R11
	ADDQ $256, BX
	DECQ DI
	JNZ  rowsloop4

rowstail:
	TESTQ CX, CX
	JZ    rowsstore

rowsloop1:
	STEPROWS(0, 0)
	ADDQ $4, AX
	ADDQ $4, R9
	ADDQ $64, BX
	DECQ CX
	JNZ  rowsloop1

rowsstore:
	STORETILE
	RET
