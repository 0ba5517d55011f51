package account

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/testclock"
)

func TestSweep(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, clock := newTestDB(t), testclock.New()
	st := db.open()
	svc := New(st, Options{Now: clock.Now, Hash: cheapHash, SessionIdle: 24 * time.Hour})
	u, err := svc.CreateUser(ctx, SignupInput{Email: "ada@example.com", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	old, err := svc.CreateSession(ctx, u.ID, "test", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	// Failures now leave two records (the account and the address) that grow stale.
	if _, err := svc.Login(ctx, "ada@example.com", "wrong password", "192.0.2.1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}

	clock.Advance(25 * time.Hour) // the first session is idle-expired, the failures forgotten
	live, err := svc.CreateSession(ctx, u.ID, "test", "192.0.2.2")
	if err != nil {
		t.Fatal(err)
	}
	// Recent failures of another account from another address: not stale.
	if _, err := svc.Login(ctx, "bob@example.com", "wrong password", "192.0.2.2"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}

	stats, err := svc.Sweep(ctx)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if want := (SweepStats{Sessions: 1, LoginLimits: 2}); stats != want {
		t.Errorf("Sweep removed %+v, want %+v", stats, want)
	}
	if _, err := st.SessionByTokenHash(ctx, HashSecret(old.Token)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired session after Sweep: %v, want ErrNotFound", err)
	}
	if _, err := svc.Session(ctx, live.Token); err != nil {
		t.Errorf("live session after Sweep: %v", err)
	}
	for subject, l := range map[string]*limiter{"ada@example.com": svc.accounts, "192.0.2.1": svc.addrs} {
		if _, err := st.LoginLimit(ctx, l.key(subject)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("stale limit of %s after Sweep: %v, want ErrNotFound", subject, err)
		}
	}
	for subject, l := range map[string]*limiter{"bob@example.com": svc.accounts, "192.0.2.2": svc.addrs} {
		if r, err := st.LoginLimit(ctx, l.key(subject)); err != nil || r.Failures != 1 {
			t.Errorf("recent limit of %s after Sweep = %+v, %v; want kept", subject, r, err)
		}
	}

	// Nothing left to remove.
	if stats, err := svc.Sweep(ctx); err != nil || stats != (SweepStats{}) {
		t.Errorf("second Sweep = %+v, %v; want nothing removed", stats, err)
	}
}

// failingSweep is a store whose session sweep fails.
type failingSweep struct {
	store.Store
	err error
}

func (f failingSweep) DeleteExpiredSessions(context.Context, time.Time) (int64, error) {
	return 0, f.err
}

// TestSweepGoesOnAfterAnError: one failed delete does not keep the other from running.
func TestSweepGoesOnAfterAnError(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, clock := newTestDB(t), testclock.New()
	down := errors.New("sessions table locked")
	svc := New(failingSweep{Store: db.open(), err: down}, Options{Now: clock.Now, Hash: cheapHash})
	if _, err := svc.Login(ctx, "nobody@example.com", "wrong password", "192.0.2.1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	stats, err := svc.Sweep(ctx)
	if !errors.Is(err, down) {
		t.Errorf("Sweep error = %v, want the session sweep's", err)
	}
	if stats.LoginLimits != 2 {
		t.Errorf("Sweep removed %+v, want the 2 stale login limits despite the error", stats)
	}
}
