//go:build !amd64 || purego

package sgemm

const haveKernel = false

var (
	kernel     microKernel = kernelGeneric
	kernelRows rowsKernel  = kernelRowsGeneric
)
