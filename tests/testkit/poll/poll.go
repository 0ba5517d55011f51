// Package poll is the one way tests wait for something asynchronous: check a condition on a
// ticker until it holds or a deadline passes. Tests never sleep to synchronise.
package poll

import (
	"testing"
	"time"
)

// Interval is how often Until checks its condition.
const Interval = 5 * time.Millisecond

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
