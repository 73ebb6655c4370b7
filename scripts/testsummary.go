//go:build ignore

// Testsummary reads `go test -json` on stdin and prints what a plain `go test` prints (each
// package's result line, build errors, and the output of failed tests), then a count of
// tests and subtests that passed, were skipped and failed. With -list FILE it also writes the
// name and result of every top-level test, sorted, so that two runs (native and emulated) can
// be compared with diff. It exits 1 when anything failed.
//
//	go test -json ./... | go run scripts/testsummary.go -list native.txt
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	list := flag.String("list", "", "write every top-level test and its result to `FILE`")
	flag.Parse()

	counts := map[string]int{}
	var results []string
	output := map[string][]string{} // test output kept until the test's result is known
	failed := false
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		line := in.Bytes()
		var e event
		if json.Unmarshal(line, &e) != nil || e.Action == "" {
			fmt.Println(string(line)) // build output that is not JSON
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			if e.Test == "" {
				if e.Output != "PASS\n" { // plain go test prints only the "ok" line then
					fmt.Print(e.Output)
				}
			} else {
				output[key] = append(output[key], e.Output)
			}
		case "pass", "skip", "fail":
			if e.Action == "fail" {
				failed = true
			}
			if e.Test == "" {
				continue
			}
			if e.Action == "fail" {
				fmt.Print(strings.Join(output[key], ""))
			}
			delete(output, key)
			counts[e.Action]++
			if !strings.Contains(e.Test, "/") {
				counts["top-"+e.Action]++
				results = append(results, fmt.Sprintf("%s %s %s", e.Package, e.Test, e.Action))
			}
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
	fmt.Printf("tests: %d passed, %d skipped, %d failed (with subtests: %d, %d, %d)\n",
		counts["top-pass"], counts["top-skip"], counts["top-fail"], counts["pass"], counts["skip"], counts["fail"])
	if *list != "" {
		sort.Strings(results)
		if err := os.WriteFile(*list, []byte(strings.Join(results, "\n")+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(1)
		}
	}
	if failed {
		os.Exit(1)
	}
}
