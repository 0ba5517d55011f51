package store

import (
	"context"
	"time"
)

// LoginLimit is the failure count behind one rate-limit key (an account, a client address, a
// mailbox for reset links). Keeping it in the database instead of in each process means every
// replica enforces one budget and a restart forgets no lock-out.
//
// Key is opaque to the store. The account package makes it from a kind and the SHA-256 of the
// subject ("login-account:" + hex digest of the email), so the table never holds the emails
// or addresses of people who have no account.
type LoginLimit struct {
	Key      string
	Failures int
	// LastFailure is the time of the latest counted failure.
	LastFailure time.Time
	// LockedUntil ends the current lock-out; zero when the key was never locked.
	LockedUntil time.Time
}

// LoginLimitStore keeps the counts behind login rate limiting. The policy (how many failures
// are free, how long a lock-out lasts, when a key starts over) belongs to the account package;
// the store only counts, atomically, so concurrent failures on several replicas lose nothing.
type LoginLimitStore interface {
	// LoginLimit returns the record of key, or ErrNotFound when it has none.
	LoginLimit(ctx context.Context, key string) (LoginLimit, error)
	// AddLoginFailure counts one failure of key at now, creating the record when missing, and
	// returns the record as it is after the update, in one atomic step. The count starts over
	// at 1 when the last failure is before forgetBefore and no lock is active at now (LockedUntil
	// is at or before now); otherwise it grows by one. LastFailure becomes the later of the
	// stored time and now, so replicas whose clocks disagree slightly never move it back.
	AddLoginFailure(ctx context.Context, key string, now, forgetBefore time.Time) (LoginLimit, error)
	// LockLogin sets LockedUntil to until when that is later than the stored lock: a lock is
	// only ever extended, so replicas racing to lock a key keep the longest lock-out.
	// ErrNotFound when key has no record.
	LockLogin(ctx context.Context, key string, until time.Time) error
	// DeleteLoginLimit forgets key (after a successful login). ErrNotFound when it has no
	// record.
	DeleteLoginLimit(ctx context.Context, key string) error
	// DeleteStaleLoginLimits removes the records whose last failure and lock (if any) are both
	// before before, and returns how many it removed.
	DeleteStaleLoginLimits(ctx context.Context, before time.Time) (int64, error)
}
