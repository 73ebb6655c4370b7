//go:build amd64 && !purego

package sgemm

import "golang.org/x/sys/cpu"

var haveKernel = cpu.X86.HasAVX2 && cpu.X86.HasFMA

var (
	kernel     microKernel = kernel6x16
	kernelRows rowsKernel  = kernel6x16Rows
)

// kernel6x16 is the AVX2/FMA micro-kernel; see microKernel.
//
//go:noescape
func kernel6x16(kb int, a, b, c *float32, ldc int)

// kernel6x16Rows is the AVX2/FMA rowsKernel.
//
//go:noescape
func kernel6x16Rows(kb int, a *float32, lda int, b, c *float32, ldc int, next *float32)
