package main

import (
	"os"

	"golang.org/x/sys/windows"
)

// ansiTerminal reports whether f is a console that understands the escape sequences the
// progress bars draw with. Windows consoles do once virtual terminal processing is on
// (Windows 10 and later); where it cannot be turned on, the batch prints plain lines.
func ansiTerminal(f *os.File) bool {
	h := windows.Handle(f.Fd())
	var mode uint32
	if windows.GetConsoleMode(h, &mode) != nil {
		return false
	}
	if mode&windows.ENABLE_VIRTUAL_TERMINAL_PROCESSING != 0 {
		return true
	}
	return windows.SetConsoleMode(h, mode|windows.ENABLE_VIRTUAL_TERMINAL_PROCESSING) == nil
}
