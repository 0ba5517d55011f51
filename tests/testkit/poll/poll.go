// Package poll is the one way tests wait for something asynchronous: check a condition on a
// ticker until it holds or a deadline passes. Tests never sleep to synchronise.
package poll

import (
	"testing"
	"time"
)

// Interval is how often Until checks its condition.
const Interval = 5 * time.Millisecond

// Timeout is Wait's deadline: generous, because tests share a loaded machine.
const Timeout = 10 * time.Second

// Wait checks cond every Interval until it returns true, failing tb when Timeout passes first.
func Wait(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	Every(tb, Interval, Timeout, what, cond)
}

// Until checks cond every Interval until it returns true, failing tb when timeout passes first.
func Until(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	Every(tb, Interval, timeout, what, cond)
}

// Every is Until checking cond every interval instead: for a condition that costs something
// to check (an HTTP request, a database query, a publish), where checking every Interval would
// load the system under test.
func Every(tb testing.TB, interval, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if cond() {
		return
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			if cond() {
				return
			}
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
			if cond() {
				return
			}
		}
	}
}

// State is Every for a condition that also describes the state it saw: when the wait fails,
// the last description is logged right after the failure, so the log shows what was there
// instead. (A timeout ends the test with Fatalf, through runtime.Goexit, which still runs
// deferred calls.)
func State(tb testing.TB, interval, timeout time.Duration, what string, fn func() (ok bool, state string)) {
	tb.Helper()
	var last string
	held := false
	defer func() {
		if !held && last != "" {
			tb.Logf("last state while waiting for %s: %s", what, last)
		}
	}()
	Every(tb, interval, timeout, what, func() bool {
		ok, state := fn()
		last = state
		return ok
	})
	held = true
}
