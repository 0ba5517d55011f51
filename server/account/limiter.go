package account

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/espadmin/espadmin/store"
)

// limitForget is how long a key must go without a failure (and be unlocked) to start over.
// The sweep removes records older than that, which nobody can then tell from no record.
const limitForget = time.Hour

// limiter is one rate-limit policy: it answers how long a key must wait before it may try
// again. After free failures, each further failure doubles the wait, from base up to max; a key
// with no failure for limitForget and no active lock starts over.
//
// The counts live in the store (store.LoginLimitStore), so every replica draws on one budget
// and a restart forgets no lock-out; the store only counts atomically, and this type holds
// the policy and the backoff arithmetic. Keys are stored as the limiter's kind and the SHA-256
// of the subject, so the table holds no email of anyone, account or not.
type limiter struct {
	st     store.LoginLimitStore
	kind   string // what is counted; the stored key's prefix
	free   int
	base   time.Duration
	max    time.Duration
	forget time.Duration
}

func newLimiter(st store.LoginLimitStore, kind string, free int, base, max time.Duration) *limiter {
	return &limiter{st: st, kind: kind, free: free, base: base, max: max, forget: limitForget}
}

// key is the stored key for subject (an email, a client address, a user ID).
func (l *limiter) key(subject string) string {
	h := sha256.Sum256([]byte(subject))
	return l.kind + ":" + hex.EncodeToString(h[:])
}

// wait returns how long subject must still wait at now (0: it may try). A store error is
// returned, never taken for "no limit": callers fail closed.
func (l *limiter) wait(ctx context.Context, subject string, now time.Time) (time.Duration, error) {
	r, err := l.st.LoginLimit(ctx, l.key(subject))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("account: check %s limit: %w", l.kind, err)
	}
	now = store.Timestamp(now)
	if now.Before(r.LockedUntil) {
		return r.LockedUntil.Sub(now), nil
	}
	return 0, nil
}

// fail records a failure of subject at now and, past the free failures, locks it for the
// backoff the new count earns. Two replicas counting at once each lock for their own count;
// the store keeps the later lock.
func (l *limiter) fail(ctx context.Context, subject string, now time.Time) error {
	now = store.Timestamp(now)
	key := l.key(subject)
	r, err := l.st.AddLoginFailure(ctx, key, now, now.Add(-l.forget))
	if err != nil {
		return fmt.Errorf("account: count %s failure: %w", l.kind, err)
	}
	if over := r.Failures - l.free; over > 0 {
		// ErrNotFound: a successful login on another replica reset the key meanwhile.
		if err := l.st.LockLogin(ctx, key, now.Add(l.backoff(over))); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("account: lock %s: %w", l.kind, err)
		}
	}
	return nil
}

// backoff is the lock earned by the over-th failure past the free ones: base, doubled for
// each further failure, at most max.
func (l *limiter) backoff(over int) time.Duration {
	d := l.base
	for i := 1; i < over && d < l.max; i++ {
		d *= 2
	}
	return min(d, l.max)
}

// reset forgets subject, after a successful login.
func (l *limiter) reset(ctx context.Context, subject string) error {
	if err := l.st.DeleteLoginLimit(ctx, l.key(subject)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("account: reset %s limit: %w", l.kind, err)
	}
	return nil
}
