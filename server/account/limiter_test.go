package account

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/sqlstore"
	"github.com/espadmin/espadmin/tests/testkit/testclock"
)

// cheapHash keeps the tests' argon2 work small.
var cheapHash = HashParams{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

const testPassword = "correct horse battery"

// testDB is one migrated SQLite database; open gives a new store on it, as each replica of a
// deployment has its own connections to the shared database.
type testDB struct {
	t   *testing.T
	url string
}

func newTestDB(t *testing.T) *testDB {
	t.Helper()
	db := &testDB{t: t, url: "sqlite://" + filepath.ToSlash(filepath.Join(t.TempDir(), "espadmin.db"))}
	if _, err := db.open().Migrate(t.Context()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

func (db *testDB) open() store.Store {
	db.t.Helper()
	st, err := sqlstore.Open(context.Background(), db.url, sqlstore.Options{})
	if err != nil {
		db.t.Fatalf("open store: %v", err)
	}
	db.t.Cleanup(func() { _ = st.Close() })
	return st
}

// replica is an account service on its own store connections to db.
func (db *testDB) replica(clock *testclock.Clock) *Service {
	return New(db.open(), Options{Now: clock.Now, Hash: cheapHash})
}

func TestLimiterBackoff(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newTestDB(t).open()
	now := time.Unix(0, 0)
	l := newLimiter(st, "test", 2, time.Second, 4*time.Second)
	var waits []time.Duration
	for range 6 {
		if err := l.fail(ctx, "k", now); err != nil {
			t.Fatal(err)
		}
		w, err := l.wait(ctx, "k", now)
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	want := []time.Duration{0, 0, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
	// The lock runs out; then, after an hour without failures, the count starts over.
	if w, err := l.wait(ctx, "k", now.Add(4*time.Second)); err != nil || w != 0 {
		t.Fatalf("wait when the lock has run out = %v, %v", w, err)
	}
	later := now.Add(limitForget + 5*time.Second)
	if err := l.fail(ctx, "k", later); err != nil {
		t.Fatal(err)
	}
	if w, err := l.wait(ctx, "k", later); err != nil || w != 0 {
		t.Errorf("wait after the first failure of a new hour = %v, %v; want 0 (started over)", w, err)
	}
	// reset forgets the key.
	if err := l.reset(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.LoginLimit(ctx, l.key("k")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LoginLimit after reset: %v, want ErrNotFound", err)
	}
	if err := l.reset(ctx, "never failed"); err != nil {
		t.Errorf("reset of a key without failures: %v", err)
	}
}

func TestLimiterStoresHashedKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newTestDB(t).open()
	l := newLimiter(st, "login-account", 5, time.Second, time.Minute)
	if err := l.fail(ctx, "ada@example.com", time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("ada@example.com"))
	key := "login-account:" + hex.EncodeToString(sum[:])
	if l.key("ada@example.com") != key {
		t.Fatalf("key = %q, want %q", l.key("ada@example.com"), key)
	}
	if got, err := st.LoginLimit(ctx, key); err != nil || got.Failures != 1 {
		t.Fatalf("LoginLimit(%q) = %+v, %v", key, got, err)
	}
}

// TestReplicasShareLoginBudget is the reason the counts live in the store: failures spread
// over two replicas lock the account on both, and a restarted replica still knows the lock.
func TestReplicasShareLoginBudget(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, clock := newTestDB(t), testclock.New()
	a, b := db.replica(clock), db.replica(clock)
	if _, err := a.CreateUser(ctx, SignupInput{Email: "ada@example.com", Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	// Different client addresses, so only the account's budget is in play: 3 failures on a
	// and 2 on b use up the 5 free ones; the sixth, on b, locks for a second.
	for i, r := range []*Service{a, b, a, b, a, b} {
		if _, err := r.Login(ctx, "ada@example.com", "wrong password", "192.0.2.1"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v, want ErrInvalidCredentials", i+1, err)
		}
		clock.Advance(time.Millisecond)
	}
	restarted := db.replica(clock)
	for name, r := range map[string]*Service{"a": a, "b": b, "restarted": restarted} {
		var rerr *RateLimitError
		if _, err := r.Login(ctx, "Ada@Example.com", testPassword, "198.51.100.7"); !errors.As(err, &rerr) || rerr.RetryAfter <= 0 || rerr.RetryAfter > time.Second {
			t.Errorf("replica %s: good password while locked: %v, want a RateLimitError of at most 1s", name, err)
		}
	}

	clock.Advance(time.Second)
	if _, err := a.Login(ctx, "ada@example.com", testPassword, "198.51.100.7"); err != nil {
		t.Fatalf("good password after the lock: %v", err)
	}
	// The success on a forgot the account's count on b too: 5 more free failures there.
	for i := range 5 {
		if _, err := b.Login(ctx, "ada@example.com", "wrong password", "192.0.2.1"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d after the reset: %v, want ErrInvalidCredentials", i+1, err)
		}
	}
	if _, err := b.Login(ctx, "ada@example.com", testPassword, "198.51.100.7"); err != nil {
		t.Fatalf("good password after 5 failures: %v", err)
	}
}

func TestReplicasShareAddressBudget(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, clock := newTestDB(t), testclock.New()
	a, b := db.replica(clock), db.replica(clock)
	// 20 failures from one address over many unknown accounts and both replicas: the 21st
	// locks the address (each account stays under its own limit).
	for i := range ipFreeFailures + 1 {
		r := []*Service{a, b}[i%2]
		email := string(rune('a'+i)) + "@example.com"
		if _, err := r.Login(ctx, email, "wrong password", "203.0.113.9"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	for name, r := range map[string]*Service{"a": a, "b": b} {
		var rerr *RateLimitError
		if _, err := r.Login(ctx, "z@example.com", "wrong password", "203.0.113.9"); !errors.As(err, &rerr) {
			t.Errorf("replica %s: login from the locked address: %v, want a RateLimitError", name, err)
		}
	}
}

func TestResetMailsLimitedAcrossReplicas(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, clock := newTestDB(t), testclock.New()
	a, b := db.replica(clock), db.replica(clock)
	// 3 free, then one per backoff period: the 4th is sent and starts a one-minute wait.
	var got []bool
	for i := range resetMailsFree + 2 {
		ok, err := []*Service{a, b}[i%2].AllowResetMail(ctx, " Ada@Example.com")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ok)
	}
	want := []bool{true, true, true, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("AllowResetMail over two replicas = %v, want %v", got, want)
		}
	}
	clock.Advance(time.Minute)
	if ok, err := a.AllowResetMail(ctx, "ada@example.com"); err != nil || !ok {
		t.Errorf("AllowResetMail after the wait = %v, %v; want true", ok, err)
	}
}

// failingLimits is a store whose rate-limit counts cannot be read or written.
type failingLimits struct {
	store.Store
	readErr, writeErr error
}

func (f failingLimits) LoginLimit(ctx context.Context, key string) (store.LoginLimit, error) {
	if f.readErr != nil {
		return store.LoginLimit{}, f.readErr
	}
	return f.Store.LoginLimit(ctx, key)
}

func (f failingLimits) AddLoginFailure(ctx context.Context, key string, now, forgetBefore time.Time) (store.LoginLimit, error) {
	if f.writeErr != nil {
		return store.LoginLimit{}, f.writeErr
	}
	return f.Store.AddLoginFailure(ctx, key, now, forgetBefore)
}

// TestLimitStoreErrorsFailClosed: without its counts, the service refuses rather than lets an
// attempt through uncounted, and says so with the store's error (a 500, not a 401 or 429).
func TestLimitStoreErrorsFailClosed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, clock := newTestDB(t), testclock.New()
	st := db.open()
	if _, err := New(st, Options{Hash: cheapHash}).CreateUser(ctx, SignupInput{Email: "ada@example.com", Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	down := errors.New("database down")
	for _, tt := range []struct {
		name string
		st   failingLimits
		pw   string
	}{
		{"read fails, good password", failingLimits{Store: st, readErr: down}, testPassword},
		{"read fails, wrong password", failingLimits{Store: st, readErr: down}, "wrong password"},
		{"write fails, wrong password", failingLimits{Store: st, writeErr: down}, "wrong password"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			svc := New(tt.st, Options{Now: clock.Now, Hash: cheapHash})
			for _, email := range []string{"ada@example.com", "nobody@example.com"} {
				u, err := svc.Login(ctx, email, tt.pw, "192.0.2.1")
				if !errors.Is(err, down) || errors.Is(err, ErrInvalidCredentials) || errors.Is(err, store.ErrNotFound) || u.ID != "" {
					t.Errorf("Login(%s) = %q, %v; want the store's error", email, u.ID, err)
				}
			}
			if ok, err := svc.AllowResetMail(ctx, "ada@example.com"); ok || !errors.Is(err, down) {
				t.Errorf("AllowResetMail = %v, %v; want false and the store's error", ok, err)
			}
		})
	}
}
