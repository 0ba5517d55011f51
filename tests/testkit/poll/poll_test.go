package poll

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	Until(t, time.Second, "three checks", func() bool { return n.Add(1) >= 3 })
	if got := n.Load(); got != 3 {
		t.Fatalf("checked %d times, want 3", got)
	}
}

// fakeTB records a fatal failure instead of ending the test.
type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(string, ...any) {
	f.failed = true
	panic(f)
}

func TestUntilFailsAtTheDeadline(t *testing.T) {
	t.Parallel()
	f := &fakeTB{TB: t}
	func() {
		defer func() { _ = recover() }()
		Until(f, 20*time.Millisecond, "never", func() bool { return false })
	}()
	if !f.failed {
		t.Fatal("Until did not fail when the condition never held")
	}
}

func TestEveryChecksAtItsInterval(t *testing.T) {
	t.Parallel()
	const interval = 30 * time.Millisecond
	var n atomic.Int32
	start := time.Now()
	Every(t, interval, 5*time.Second, "three checks", func() bool { return n.Add(1) >= 3 })
	// The first check is immediate and a ticker never ticks early: the third comes no sooner
	// than two intervals in.
	if took := time.Since(start); took < 2*interval {
		t.Fatalf("three checks took %s, want at least %s", took, 2*interval)
	}
	if got := n.Load(); got != 3 {
		t.Fatalf("checked %d times, want 3", got)
	}
}

// logTB records fatal failures and log lines instead of ending the test.
type logTB struct {
	fakeTB
	logs []string
}

func (f *logTB) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

func TestStateLogsTheLastStateOnlyWhenTheWaitFails(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	ok := &logTB{fakeTB: fakeTB{TB: t}}
	State(ok, time.Millisecond, 5*time.Second, "three checks", func() (bool, string) {
		c := n.Add(1)
		return c >= 3, fmt.Sprintf("check %d", c)
	})
	if ok.failed || len(ok.logs) != 0 {
		t.Fatalf("a wait that held failed (%v) or logged %q", ok.failed, ok.logs)
	}

	f := &logTB{fakeTB: fakeTB{TB: t}}
	func() {
		defer func() { _ = recover() }()
		State(f, time.Millisecond, 20*time.Millisecond, "never", func() (bool, string) { return false, "still off" })
	}()
	if !f.failed {
		t.Fatal("State did not fail at the deadline")
	}
	if len(f.logs) != 1 || !strings.Contains(f.logs[0], "still off") {
		t.Fatalf("logs %q, want the last state", f.logs)
	}
}
