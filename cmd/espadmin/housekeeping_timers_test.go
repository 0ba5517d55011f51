package main

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/tests/testkit/testclock"
)

// timedSweeper records when each sweep started and the deadline it was given, and blocks
// until that deadline when block is set.
type timedSweeper struct {
	block     bool
	mu        sync.Mutex
	starts    []time.Time
	deadlines []time.Time
}

func (s *timedSweeper) Sweep(ctx context.Context) (account.SweepStats, error) {
	dl, _ := ctx.Deadline()
	s.mu.Lock()
	s.starts = append(s.starts, time.Now())
	s.deadlines = append(s.deadlines, dl)
	s.mu.Unlock()
	if s.block {
		<-ctx.Done()
		return account.SweepStats{}, ctx.Err()
	}
	return account.SweepStats{Sessions: 1}, nil
}

// TestRunSweepsTimers runs the housekeeping loop on a fake clock: a sweep at start, then one
// per interval, each bounded by sweepTimeout; a sweep that hangs is cut off and the next one
// still comes.
func TestRunSweepsTimers(t *testing.T) {
	for _, block := range []bool{false, true} {
		t.Run(map[bool]string{false: "quick sweeps", true: "hanging sweeps"}[block], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const interval = 3 * sweepTimeout // a hanging sweep ends before the next tick
				s := &timedSweeper{block: block}
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				start := time.Now()
				go func() { done <- runSweeps(ctx, s, interval, slog.New(slog.DiscardHandler)) }()
				testclock.Advance(2*interval + interval/2)
				cancel()
				if err := <-done; err != nil {
					t.Fatalf("runSweeps = %v", err)
				}
				s.mu.Lock()
				defer s.mu.Unlock()
				if len(s.starts) != 3 {
					t.Fatalf("%d sweeps in 2.5 intervals, want 3 (at start, then one per interval)", len(s.starts))
				}
				for i, at := range s.starts {
					want := start.Add(time.Duration(i) * interval)
					if !at.Equal(want) {
						t.Errorf("sweep %d at +%s, want +%s", i, at.Sub(start), want.Sub(start))
					}
					if dl := s.deadlines[i]; !dl.Equal(at.Add(sweepTimeout)) {
						t.Errorf("sweep %d deadline +%s after its start, want %s", i, dl.Sub(at), sweepTimeout)
					}
				}
			})
		})
	}
}
