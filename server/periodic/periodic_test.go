package periodic

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/espadmin/espadmin/tests/testkit/testclock"
)

// The first call comes at once, the next ones one interval apart, and none after ctx ends.
func TestRunAtStartThenEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		var at []time.Duration
		done := make(chan error)
		go func() {
			done <- Run(ctx, time.Minute, func(context.Context) { at = append(at, time.Since(start)) })
		}()
		testclock.Advance(3*time.Minute + time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil when ctx ends", err)
		}
		want := []time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute}
		if len(at) != len(want) {
			t.Fatalf("calls at %v, want %v", at, want)
		}
		for i := range want {
			if at[i] != want[i] {
				t.Fatalf("calls at %v, want %v", at, want)
			}
		}
	})
}
