// Command testreport summarises a `go test -json` stream for scripts/test.sh: one line per
// package, the store and blob backends the conformance suites ran on, a count of passed,
// failed and skipped tests, and — last, so that the tail of a long CI log shows them — the
// whole output of every failed test and of every package that failed outside a test (a build
// error, a panic, a timeout).
//
//	go test -json ./... | go run ./tests/testreport
//
// It exits 1 when any test or package failed, or when the stream holds no result at all.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	// ImportPath names the package of a "build-output" event.
	ImportPath string
}

// backendLine marks the log lines the conformance suites print to say where they ran.
var backendLine = regexp.MustCompile(`^\s+[a-z_]+\.go:[0-9]+: (conformance|backend)`)

type key struct{ pkg, test string }

type report struct {
	output   map[key]*strings.Builder
	failed   []key // in the order they failed
	packages []string
	counts   map[string]int // "pass", "fail", "skip" of tests
	backends []string
	other    []string // build output and lines that are not JSON, printed before the failures
}

func newReport() *report {
	return &report{output: map[key]*strings.Builder{}, counts: map[string]int{}}
}

func (r *report) add(ev event) {
	k := key{ev.Package, ev.Test}
	switch ev.Action {
	case "output":
		b := r.output[k]
		if b == nil {
			b = &strings.Builder{}
			r.output[k] = b
		}
		b.WriteString(ev.Output)
		if ev.Test != "" && backendLine.MatchString(ev.Output) {
			r.backends = append(r.backends, strings.TrimRight(ev.Output, "\n"))
		}
	case "build-output":
		r.other = append(r.other, strings.TrimRight(ev.Output, "\n"))
	case "pass", "fail", "skip":
		if ev.Test != "" {
			if !strings.Contains(ev.Test, "/") { // subtests are part of their test's result
				r.counts[ev.Action]++
			}
			if ev.Action == "fail" {
				r.failed = append(r.failed, k)
			}
			if ev.Action != "fail" {
				delete(r.output, k) // keep only what will be printed
			}
			return
		}
		if ev.Package == "" {
			return
		}
		r.packages = append(r.packages, fmt.Sprintf("%-4s %s", resultWord(ev.Action), ev.Package))
		if ev.Action == "fail" {
			r.failed = append(r.failed, k)
		}
	}
}

func resultWord(action string) string {
	switch action {
	case "pass":
		return "ok"
	case "fail":
		return "FAIL"
	}
	return "skip"
}

func (r *report) write(w io.Writer) (failed bool) {
	for _, p := range r.packages {
		fmt.Fprintln(w, p)
	}
	for _, b := range r.backends {
		fmt.Fprintln(w, b)
	}
	fmt.Fprintf(w, "go: %d passed, %d failed, %d skipped\n", r.counts["pass"], r.counts["fail"], r.counts["skip"])
	for _, line := range r.other {
		fmt.Fprintln(w, line)
	}
	for _, k := range r.failed {
		name := k.pkg
		if k.test != "" {
			name += " " + k.test
		}
		fmt.Fprintf(w, "\n==== FAILED %s\n", name)
		if b := r.output[k]; b != nil {
			io.WriteString(w, b.String())
		}
	}
	return len(r.failed) > 0 || len(r.packages) == 0
}

func run(in io.Reader, out io.Writer) (failed bool, err error) {
	r := newReport()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			r.other = append(r.other, string(line))
			continue
		}
		r.add(ev)
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	return r.write(out), nil
}

func main() {
	failed, err := run(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}
