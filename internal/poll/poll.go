// Package poll is the one way tests wait for something asynchronous: check a condition on a
// ticker until it holds or a deadline passes. Tests never sleep to synchronise.
package poll

import (
	"testing"
	"time"
)

// Interval is how often Until checks its condition.
const Interval = 5 * time.Millisecond

// Until checks cond until it returns true, failing tb when timeout passes first.
func Until(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if cond() {
		return
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(Interval)
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
