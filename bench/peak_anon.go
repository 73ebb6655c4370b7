//go:build ignore

// Command peak_anon runs a command and writes the peak of its anonymous resident memory
// (RssAnon in /proc/PID/status: heap and stacks, not the page cache pages of files it
// reads or maps) to a file, in KiB, polling every 2 ms. Linux only.
//
//	go run peak_anon.go -o FILE -- COMMAND [ARG]...
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

func main() {
	out := flag.String("o", "", "file to write the peak RssAnon to, in KiB")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: peak_anon -o FILE -- COMMAND [ARG]...")
		os.Exit(2)
	}
	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "peak_anon:", err)
		os.Exit(2)
	}
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	var err error
poll:
	for {
		if kb := rssAnon(status); kb > peak {
			peak = kb
		}
		select {
		case err = <-done:
			break poll
		case <-tick.C:
		}
	}
	if werr := os.WriteFile(*out, []byte(strconv.FormatInt(peak, 10)+"\n"), 0o644); werr != nil {
		fmt.Fprintln(os.Stderr, "peak_anon:", werr)
		os.Exit(2)
	}
	if exit, ok := err.(*exec.ExitError); ok {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peak_anon:", err)
		os.Exit(2)
	}
}

// rssAnon reads RssAnon (KiB) from a status file; 0 once the process is gone.
func rssAnon(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("RssAnon:")); ok {
			f := bytes.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(string(f[0]), 10, 64)
				return n
			}
		}
	}
	return 0
}
