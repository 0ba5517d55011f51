package main

import (
	"bytes"
	"strings"
	"testing"
)

const stream = `{"Action":"run","Package":"example/a","Test":"TestGood"}
{"Action":"output","Package":"example/a","Test":"TestGood","Output":"    store_test.go:10: conformance on sqlite\n"}
{"Action":"output","Package":"example/a","Test":"TestGood","Output":"    good_test.go:3: noise from a passing test\n"}
{"Action":"pass","Package":"example/a","Test":"TestGood"}
{"Action":"run","Package":"example/a","Test":"TestBad"}
{"Action":"output","Package":"example/a","Test":"TestBad","Output":"    bad_test.go:7: want 2, got 3\n"}
{"Action":"fail","Package":"example/a","Test":"TestBad/sub"}
{"Action":"fail","Package":"example/a","Test":"TestBad"}
{"Action":"skip","Package":"example/a","Test":"TestSkipped"}
{"Action":"fail","Package":"example/a"}
{"Action":"output","Package":"example/b","Output":"panic: boom\n"}
{"Action":"fail","Package":"example/b"}
go: downloading example.com/x v1.0.0
{"Action":"pass","Package":"example/c"}
`

func TestReportPrintsFailuresLast(t *testing.T) {
	var out bytes.Buffer
	failed, err := run(strings.NewReader(stream), &out)
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("a stream with failed tests must be reported as failed")
	}
	got := out.String()
	for _, want := range []string{
		"FAIL example/a\n", "ok   example/c\n",
		"store_test.go:10: conformance on sqlite",
		"go: 1 passed, 1 failed, 1 skipped\n",
		"go: downloading example.com/x v1.0.0\n",
		"==== FAILED example/a TestBad\n    bad_test.go:7: want 2, got 3\n",
		"==== FAILED example/b\npanic: boom\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "noise from a passing test") {
		t.Errorf("a passing test's output was printed:\n%s", got)
	}
	if i, j := strings.Index(got, "go: 1 passed"), strings.Index(got, "==== FAILED"); i > j {
		t.Errorf("failures must come after the summary line:\n%s", got)
	}
}

func TestReportPassesCleanStream(t *testing.T) {
	var out bytes.Buffer
	failed, err := run(strings.NewReader(`{"Action":"pass","Package":"example/a","Test":"TestA"}
{"Action":"pass","Package":"example/a"}
`), &out)
	if err != nil || failed {
		t.Fatalf("clean stream: failed=%v err=%v\n%s", failed, err, out.String())
	}
}

func TestReportFailsEmptyStream(t *testing.T) {
	// A run that produced no package result at all (e.g. go test could not start) is a failure.
	failed, _ := run(strings.NewReader("go: cannot find main module\n"), &bytes.Buffer{})
	if !failed {
		t.Error("a stream without any package result must fail")
	}
}
