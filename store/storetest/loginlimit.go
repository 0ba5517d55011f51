package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
)

// limitKey returns a new key shaped like the account package's: a kind and a hex digest.
func (f *fixture) limitKey() string {
	return "login-account:" + f.name("digest")
}

// addFailure counts a failure of key at now, forgetting failures before forgetBefore.
func (f *fixture) addFailure(t *testing.T, key string, now, forgetBefore time.Time) store.LoginLimit {
	t.Helper()
	l, err := f.s.AddLoginFailure(t.Context(), key, now, forgetBefore)
	f.must(t, err, "AddLoginFailure(%s)", fmtTime(now))
	return l
}

func testLoginLimit(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"CountsAndReadsBack", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			key := f.limitKey()
			for i := 1; i <= 3; i++ {
				got := f.addFailure(t, key, at(i), at(-60))
				f.equal(t, "AddLoginFailure result", got, store.LoginLimit{Key: key, Failures: i, LastFailure: at(i)})
			}
			got, err := f.s.LoginLimit(ctx, key)
			f.must(t, err, "LoginLimit")
			f.equal(t, "LoginLimit after three failures", got, store.LoginLimit{Key: key, Failures: 3, LastFailure: at(3)})

			// Keys are independent.
			other := f.addFailure(t, f.limitKey(), at(4), at(-60))
			if other.Failures != 1 {
				t.Errorf("%s: first failure of another key: Failures = %d, want 1", f.s.Backend(), other.Failures)
			}
		}},
		{"NotFound", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			key := f.limitKey()
			_, err := f.s.LoginLimit(ctx, key)
			f.wantErr(t, err, store.ErrNotFound, "LoginLimit of a key without failures")
			f.wantErr(t, f.s.LockLogin(ctx, key, at(10)), store.ErrNotFound, "LockLogin of a key without failures")
			f.wantErr(t, f.s.DeleteLoginLimit(ctx, key), store.ErrNotFound, "DeleteLoginLimit of a key without failures")
		}},
		{"StartsOverAfterForgetBefore", func(t *testing.T, f *fixture) {
			key := f.limitKey()
			f.addFailure(t, key, at(0), at(-60))
			f.addFailure(t, key, at(1), at(-59))
			// The last failure (at 1) is not before forgetBefore: the count goes on.
			got := f.addFailure(t, key, at(61), at(1))
			f.equal(t, "failure when the last one is exactly at forgetBefore", got, store.LoginLimit{Key: key, Failures: 3, LastFailure: at(61)})
			// Now it is before: the count starts over.
			got = f.addFailure(t, key, at(200), at(140))
			f.equal(t, "failure after forgetBefore", got, store.LoginLimit{Key: key, Failures: 1, LastFailure: at(200)})
		}},
		{"NoStartOverWhileLocked", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			key := f.limitKey()
			f.addFailure(t, key, at(0), at(-60))
			f.must(t, f.s.LockLogin(ctx, key, at(100)), "LockLogin")
			// The last failure is long forgotten, but the lock is active at now: no start-over.
			got := f.addFailure(t, key, at(90), at(30))
			f.equal(t, "failure while locked", got, store.LoginLimit{Key: key, Failures: 2, LastFailure: at(90), LockedUntil: at(100)})
			// A lock that ends at now is over: with the last failure forgotten, it starts over.
			got = f.addFailure(t, key, at(100), at(95))
			if got.Failures != 1 || !got.LastFailure.Equal(at(100)) {
				t.Errorf("%s: failure when the lock has just ended and the last failure is forgotten = %+v, want Failures 1 at %s",
					f.s.Backend(), got, fmtTime(at(100)))
			}
		}},
		{"LastFailureNeverMovesBack", func(t *testing.T, f *fixture) {
			key := f.limitKey()
			f.addFailure(t, key, at(10), at(-60))
			// A replica whose clock is behind counts its failure without moving the time back.
			got := f.addFailure(t, key, at(5), at(-65))
			f.equal(t, "failure with an earlier clock", got, store.LoginLimit{Key: key, Failures: 2, LastFailure: at(10)})
		}},
		{"LockOnlyExtends", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			key := f.limitKey()
			f.addFailure(t, key, at(0), at(-60))
			for _, step := range []struct {
				until, want int
			}{{30, 30}, {20, 30}, {30, 30}, {45, 45}} {
				f.must(t, f.s.LockLogin(ctx, key, at(step.until)), "LockLogin(%d)", step.until)
				got, err := f.s.LoginLimit(ctx, key)
				f.must(t, err, "LoginLimit")
				f.equal(t, "LoginLimit after LockLogin", got, store.LoginLimit{Key: key, Failures: 1, LastFailure: at(0), LockedUntil: at(step.want)})
			}
		}},
		{"Delete", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			key, other := f.limitKey(), f.limitKey()
			f.addFailure(t, key, at(0), at(-60))
			f.addFailure(t, key, at(1), at(-59))
			f.must(t, f.s.LockLogin(ctx, key, at(50)), "LockLogin")
			f.addFailure(t, other, at(0), at(-60))
			f.must(t, f.s.DeleteLoginLimit(ctx, key), "DeleteLoginLimit")
			_, err := f.s.LoginLimit(ctx, key)
			f.wantErr(t, err, store.ErrNotFound, "LoginLimit after DeleteLoginLimit")
			f.wantErr(t, f.s.DeleteLoginLimit(ctx, key), store.ErrNotFound, "second DeleteLoginLimit")
			_, err = f.s.LoginLimit(ctx, other)
			f.must(t, err, "LoginLimit of another key after DeleteLoginLimit")
			// Counting starts again from nothing, lock included.
			got := f.addFailure(t, key, at(2), at(-58))
			f.equal(t, "failure after DeleteLoginLimit", got, store.LoginLimit{Key: key, Failures: 1, LastFailure: at(2)})
		}},
		{"DeleteStale", testDeleteStaleLoginLimits},
		{"ConcurrentFailuresLoseNothing", func(t *testing.T, f *fixture) {
			testConcurrentLoginFailures(t, f, false)
		}},
		{"ConcurrentStartOverLosesNothing", func(t *testing.T, f *fixture) {
			testConcurrentLoginFailures(t, f, true)
		}},
	})
}

func testDeleteStaleLoginLimits(t *testing.T, f *fixture) {
	f = f.fresh(t) // the count must not include other cases' records
	ctx := t.Context()
	before := at(60)
	mk := func(last, lock int) string {
		key := f.limitKey()
		f.addFailure(t, key, at(last), at(last-60))
		if lock != 0 {
			f.must(t, f.s.LockLogin(ctx, key, at(lock)), "LockLogin")
		}
		return key
	}
	stale := []string{
		mk(0, 0),  // old failure, never locked
		mk(0, 30), // old failure, lock over before before
	}
	kept := []string{
		mk(0, 90),  // old failure, lock still running at before
		mk(0, 60),  // lock ends exactly at before: not before it
		mk(60, 0),  // failure exactly at before
		mk(70, 80), // recent failure
	}
	n, err := f.s.DeleteStaleLoginLimits(ctx, before)
	f.must(t, err, "DeleteStaleLoginLimits")
	if n != int64(len(stale)) {
		t.Errorf("%s: DeleteStaleLoginLimits = %d, want %d", f.s.Backend(), n, len(stale))
	}
	for _, key := range stale {
		_, err := f.s.LoginLimit(ctx, key)
		f.wantErr(t, err, store.ErrNotFound, "LoginLimit of a stale key after DeleteStaleLoginLimits")
	}
	for _, key := range kept {
		_, err := f.s.LoginLimit(ctx, key)
		f.must(t, err, "LoginLimit of a live key after DeleteStaleLoginLimits")
	}
	n, err = f.s.DeleteStaleLoginLimits(ctx, before)
	f.must(t, err, "second DeleteStaleLoginLimits")
	if n != 0 {
		t.Errorf("%s: second DeleteStaleLoginLimits = %d, want 0", f.s.Backend(), n)
	}
}

// testConcurrentLoginFailures counts failures of one key from many goroutines at once (as
// replicas do) and checks that none is lost and each caller saw its own count. With stale,
// the key starts with a forgotten failure, so the writers race on the start-over too.
func testConcurrentLoginFailures(t *testing.T, f *fixture, stale bool) {
	if !f.isolated(t) {
		return
	}
	const writers = 50
	key := f.limitKey()
	now, forgetBefore := at(100), at(40)
	if stale {
		f.addFailure(t, key, at(0), at(-60))
	}
	counts := make([]int, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			l, err := f.s.AddLoginFailure(t.Context(), key, now, forgetBefore)
			counts[i], errs[i] = l.Failures, err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		f.must(t, err, "concurrent AddLoginFailure #%d", i)
	}
	got, err := f.s.LoginLimit(t.Context(), key)
	f.must(t, err, "LoginLimit")
	f.equal(t, "LoginLimit after concurrent failures", got, store.LoginLimit{Key: key, Failures: writers, LastFailure: now})
	slices.Sort(counts)
	for i, c := range counts {
		if c != i+1 {
			t.Errorf("%s: the concurrent AddLoginFailure calls returned counts %v, want each of 1…%d once", f.s.Backend(), counts, writers)
			break
		}
	}
}
