package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/espadmin/espadmin/store"
)

// transactional is implemented by a backend whose Atomic may run without a multi-document
// transaction (MongoDB without a replica set, FerretDB); see store.Transactor. A backend that
// does not implement it always runs Atomic in a transaction.
type transactional interface{ Transactions() bool }

// isolatedUpdates is implemented by a backend that may not isolate concurrent updates of one
// document (FerretDB v1; see package mongostore).
type isolatedUpdates interface{ IsolatedUpdates() bool }

// transactions reports whether the store rolls Atomic back. Where it does not, the cases
// still check that fn ran and that its error or panic came through, and log why they do not
// check the rollback.
func (f *fixture) transactions(t *testing.T) bool {
	t.Helper()
	if tx, ok := f.s.(transactional); ok && !tx.Transactions() {
		t.Logf("%s: this deployment runs Atomic without a multi-document transaction (a limit of the server, documented in store.Transactor): the rollback is not checked", f.s.Backend())
		return false
	}
	return true
}

// isolated reports whether concurrent conditional updates of one document are isolated.
func (f *fixture) isolated(t *testing.T) bool {
	t.Helper()
	if iu, ok := f.s.(isolatedUpdates); ok && !iu.IsolatedUpdates() {
		t.Logf("%s: this server does not isolate concurrent updates of one document (a limit of FerretDB, documented in package mongostore): the race is not checked", f.s.Backend())
		return false
	}
	return true
}

var errRollback = errors.New("storetest: fn failed on purpose")

func testAtomic(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"ConfigBatchOfSeveralScopes", testConfigMixedBatch},
		{"ConfigReaderNeverSeesHalfABatch", testConfigBatchReader},
		{"ConcurrentConfigWriters", testConfigConcurrentWriters},
		{"Commits", testAtomicCommits},
		{"RollsBackOnError", testAtomicError},
		{"RollsBackOnPanic", testAtomicPanic},
		{"ReaderNeverSeesHalf", testAtomicReader},
		{"Nested", testAtomicNested},
	})
}

// txWrites is what the Atomic cases write: a command and a config entry of one device.
type txWrites struct {
	tenantID, deviceID, commandID string
}

func (f *fixture) txWrites(t *testing.T) txWrites {
	tn := f.tenant(t)
	d := f.device(t, tn.ID, "")
	return txWrites{tenantID: tn.ID, deviceID: d.ID, commandID: f.id()}
}

// write makes the writes through s (the transaction's store).
func (w txWrites) write(t *testing.T, f *fixture, s store.Store, key string) error {
	t.Helper()
	ctx := t.Context()
	c := fullCommand(f, w.tenantID, w.deviceID, "")
	c.ID = w.commandID + key
	if err := s.CreateCommand(ctx, &c); err != nil {
		return err
	}
	if _, err := s.Command(ctx, w.tenantID, c.ID); err != nil { // a transaction sees its own writes
		return fmt.Errorf("read back inside the transaction: %w", err)
	}
	return s.PutConfigEntries(ctx, []store.ConfigEntry{fullConfigEntry(w.tenantID, store.ScopeDevice, w.deviceID, key)})
}

// present reports which of the writes of key are visible through the outer store.
func (w txWrites) present(t *testing.T, f *fixture, key string) (command, entry bool) {
	t.Helper()
	ctx := t.Context()
	_, err := f.s.Command(ctx, w.tenantID, w.commandID+key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s: Command: %v", f.s.Backend(), err)
	}
	command = err == nil
	_, err = f.s.ConfigEntry(ctx, w.tenantID, store.ScopeDevice, w.deviceID, key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s: ConfigEntry: %v", f.s.Backend(), err)
	}
	return command, err == nil
}

func (w txWrites) wantPresent(t *testing.T, f *fixture, what, key string, want bool) {
	t.Helper()
	c, e := w.present(t, f, key)
	if c != want || e != want {
		t.Errorf("%s: %s: command present %v, config entry present %v; want %v", f.s.Backend(), what, c, e, want)
	}
}

func testConfigMixedBatch(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	p := f.project(t, tn.ID)
	d := f.device(t, tn.ID, p.ID)
	batch := []store.ConfigEntry{
		fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "a"),
		fullConfigEntry(tn.ID, store.ScopeProject, p.ID, "b"),
	}
	f.wantErr(t, f.s.PutConfigEntries(ctx, batch), store.ErrInvalidBatch, "PutConfigEntries across two scopes")
	for _, e := range batch {
		es, err := f.s.ConfigEntries(ctx, tn.ID, e.Scope, e.ScopeID)
		f.must(t, err, "ConfigEntries")
		if len(es) != 0 {
			t.Errorf("%s: a refused batch left %+v in %s %s", f.s.Backend(), es, e.Scope, e.ScopeID)
		}
	}
}

// testConfigBatchReader writes batches that set every key of a scope to the same value, while
// readers check that every list they get holds one value only.
func testConfigBatchReader(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	d := f.device(t, tn.ID, "")
	batch := make([]store.ConfigEntry, 6)
	for i := range batch {
		batch[i] = fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "k"+strconv.Itoa(i))
		batch[i].Value = "0"
	}
	f.must(t, f.s.PutConfigEntries(ctx, batch), "PutConfigEntries")

	const rounds = 30
	done := make(chan struct{})
	var wg sync.WaitGroup
	var reads [2]int
	for r := range reads {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				es, err := f.s.ConfigEntries(ctx, tn.ID, store.ScopeDevice, d.ID)
				if err != nil {
					t.Errorf("%s: ConfigEntries: %v", f.s.Backend(), err)
					return
				}
				reads[r]++
				if len(es) != len(batch) {
					t.Errorf("%s: a reader saw %d entries, want %d", f.s.Backend(), len(es), len(batch))
					return
				}
				for _, e := range es[1:] {
					if e.Value != es[0].Value || e.Version != es[0].Version {
						t.Errorf("%s: a reader saw half a batch: %s=%s (version %d) beside %s=%s (version %d)",
							f.s.Backend(), es[0].Key, es[0].Value, es[0].Version, e.Key, e.Value, e.Version)
						return
					}
				}
			}
		})
	}
	for round := 1; round <= rounds; round++ {
		for i := range batch {
			batch[i].Value = strconv.Itoa(round)
		}
		if err := f.s.PutConfigEntries(ctx, batch); err != nil {
			t.Errorf("%s: PutConfigEntries round %d: %v", f.s.Backend(), round, err)
			break
		}
	}
	close(done)
	wg.Wait()
	if reads[0] == 0 || reads[1] == 0 {
		t.Errorf("%s: readers made %v reads; each should have read at least once", f.s.Backend(), reads)
	}
}

// testConfigConcurrentWriters has writers of different keys of one scope race: none may lose
// another's write, and of writers of the same key at the same version exactly one succeeds.
func testConfigConcurrentWriters(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	d := f.device(t, tn.ID, "")
	const writers = 4
	errs := concurrently(writers, func(i int) error {
		e := []store.ConfigEntry{fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "w"+strconv.Itoa(i))}
		for v := range 5 {
			e[0].Value = strconv.Itoa(v)
			if err := f.s.PutConfigEntries(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: writer %d of its own key: %v", f.s.Backend(), i, err)
		}
	}
	es, err := f.s.ConfigEntries(ctx, tn.ID, store.ScopeDevice, d.ID)
	f.must(t, err, "ConfigEntries")
	if len(es) != writers {
		t.Fatalf("%s: %d entries after %d writers of their own keys, want %d: %+v", f.s.Backend(), len(es), writers, writers, es)
	}
	for _, e := range es {
		if e.Value != "4" || e.Version != 5 {
			t.Errorf("%s: entry %s = %s at version %d, want 4 at version 5", f.s.Backend(), e.Key, e.Value, e.Version)
		}
	}
	for round := range 3 {
		errs := concurrently(2, func(i int) error {
			e := es[0]
			e.Value = fmt.Sprint("race", round, i)
			return f.s.PutConfigEntries(ctx, []store.ConfigEntry{e})
		})
		f.exactlyOne(t, fmt.Sprintf("racing PutConfigEntries of one key at one version, round %d", round), errs, store.ErrConflict)
		got, err := f.s.ConfigEntry(ctx, tn.ID, store.ScopeDevice, d.ID, es[0].Key)
		f.must(t, err, "ConfigEntry")
		es[0] = got
	}
}

func testAtomicCommits(t *testing.T, f *fixture) {
	w := f.txWrites(t)
	err := f.s.Atomic(t.Context(), func(tx store.Store) error { return w.write(t, f, tx, "a") })
	f.must(t, err, "Atomic")
	w.wantPresent(t, f, "after Atomic returned nil", "a", true)
}

func testAtomicError(t *testing.T, f *fixture) {
	w := f.txWrites(t)
	ran := false
	err := f.s.Atomic(t.Context(), func(tx store.Store) error {
		ran = true
		if err := w.write(t, f, tx, "a"); err != nil {
			return err
		}
		return errRollback
	})
	if !ran {
		t.Fatalf("%s: Atomic did not run fn", f.s.Backend())
	}
	f.wantErr(t, err, errRollback, "Atomic with a failing fn")
	if f.transactions(t) {
		w.wantPresent(t, f, "after fn failed", "a", false)
	}
	// The store is usable afterwards (on SQLite: the writer connection was given back).
	f.must(t, f.s.Atomic(t.Context(), func(tx store.Store) error { return w.write(t, f, tx, "b") }), "Atomic after a rollback")
	w.wantPresent(t, f, "after the next Atomic", "b", true)
}

func testAtomicPanic(t *testing.T, f *fixture) {
	w := f.txWrites(t)
	const value = "storetest: fn panicked on purpose"
	func() {
		defer func() {
			if r := recover(); r != value {
				t.Errorf("%s: recovered %v from Atomic, want fn's panic %q", f.s.Backend(), r, value)
			}
		}()
		_ = f.s.Atomic(t.Context(), func(tx store.Store) error {
			if err := w.write(t, f, tx, "a"); err != nil {
				return err
			}
			panic(value)
		})
	}()
	if f.transactions(t) {
		w.wantPresent(t, f, "after fn panicked", "a", false)
	}
	f.must(t, f.s.Atomic(t.Context(), func(tx store.Store) error { return w.write(t, f, tx, "b") }), "Atomic after a panic")
	w.wantPresent(t, f, "after the next Atomic", "b", true)
}

// testAtomicReader creates commands two at a time in Atomic while a reader counts them: a count
// is never odd. The writes start once the reader has read, and go on (past the first pairs, up
// to maxPairs) until it has read several times while they ran, so the two really overlap
// however the goroutines are scheduled.
func testAtomicReader(t *testing.T, f *fixture) {
	if !f.transactions(t) {
		return
	}
	ctx := t.Context()
	tn := f.tenant(t)
	d := f.device(t, tn.ID, "")
	const pairs, maxPairs, overlapping = 20, 500, 5
	done := make(chan struct{})
	first := make(chan struct{})
	var wg sync.WaitGroup
	var reads atomic.Int64
	wg.Go(func() {
		defer func() {
			if reads.Load() == 0 {
				close(first) // failed before its first read: let the writer go on
			}
		}()
		for {
			select {
			case <-done:
				return
			default:
			}
			page, err := f.s.ListCommands(ctx, tn.ID, store.CommandFilter{DeviceID: d.ID}, store.ListOptions{Limit: store.MaxPageSize})
			if err != nil {
				t.Errorf("%s: ListCommands: %v", f.s.Backend(), err)
				return
			}
			if reads.Add(1) == 1 {
				close(first)
			}
			if n := len(page.Items); n%2 != 0 {
				t.Errorf("%s: a reader saw %d commands: half of an Atomic pair", f.s.Backend(), n)
				return
			}
		}
	})
	<-first
	before := reads.Load()
	for i := 0; i < maxPairs && (i < pairs || reads.Load()-before < overlapping); i++ {
		err := f.s.Atomic(ctx, func(tx store.Store) error {
			for range 2 {
				c := fullCommand(f, tn.ID, d.ID, "")
				if err := tx.CreateCommand(ctx, &c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s: Atomic: %v", f.s.Backend(), err)
			break
		}
	}
	during := reads.Load() - before
	close(done)
	wg.Wait()
	if during == 0 {
		t.Errorf("%s: the reader never read while the writes ran", f.s.Backend())
	}
}

// testAtomicNested checks the documented rule: a nested Atomic joins the open transaction.
func testAtomicNested(t *testing.T, f *fixture) {
	ctx := t.Context()
	cases := []struct {
		name       string
		inner      error // what the inner fn returns after writing
		outerAfter error // what the outer fn returns when the inner call succeeded
		want       bool  // whether the writes are there afterwards
	}{
		{"both succeed", nil, nil, true},
		{"outer fails after the inner succeeded", nil, errRollback, false},
		{"inner fails and the outer returns its error", errRollback, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := f.txWrites(t)
			err := f.s.Atomic(ctx, func(tx store.Store) error {
				if err := w.write(t, f, tx, "outer"); err != nil {
					return err
				}
				err := tx.Atomic(ctx, func(inner store.Store) error {
					if err := w.write(t, f, inner, "inner"); err != nil {
						return err
					}
					return c.inner
				})
				if err != nil {
					return err
				}
				// The inner writes are visible to the rest of the outer transaction.
				if _, err := tx.Command(ctx, w.tenantID, w.commandID+"inner"); err != nil {
					return fmt.Errorf("inner write inside the outer transaction: %w", err)
				}
				return c.outerAfter
			})
			wantErr := c.inner
			if wantErr == nil {
				wantErr = c.outerAfter
			}
			if wantErr == nil {
				f.must(t, err, "Atomic")
			} else {
				f.wantErr(t, err, wantErr, "Atomic")
			}
			if c.want || f.transactions(t) {
				w.wantPresent(t, f, "outer writes", "outer", c.want)
				w.wantPresent(t, f, "inner writes", "inner", c.want)
			}
		})
	}
}
