//go:build !windows

package main

import (
	"os"

	"golang.org/x/term"
)

// ansiTerminal reports whether f is a terminal, where the progress bars are drawn.
func ansiTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
