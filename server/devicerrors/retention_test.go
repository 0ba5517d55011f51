package devicerrors

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/sqlstore"
	"github.com/espadmin/espadmin/tests/testkit/logbuf"
	"github.com/espadmin/espadmin/tests/testkit/testclock"
)

// fakeBlobs records deletes; a key in fail fails.
type fakeBlobs struct {
	mu      sync.Mutex
	deleted []string
	fail    map[string]bool
}

func (b *fakeBlobs) Delete(_ context.Context, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail[key] {
		return errors.New("storage unavailable")
	}
	b.deleted = append(b.deleted, key)
	return nil
}

func (b *fakeBlobs) keys() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(slices.Values(b.deleted))
}

// The retention sweep runs at start and every interval, in batches: it deletes the reports of
// every tenant received before the retention with the core dumps they announced, keeps the
// newer ones and leaves the groups' counts alone. A core dump whose delete fails is logged, its
// report is kept (the sweep goes on past a whole batch of them), and a later sweep, of a
// restarted replica too, deletes both.
func TestRetentionSweepsOldReportsAndCoreDumps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "e.db"), sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		var tenants [2]string
		for i, slug := range []string{"acme", "umbrella"} {
			tn := store.Tenant{Slug: slug, Name: slug}
			if err := st.CreateTenant(ctx, &tn); err != nil {
				t.Fatal(err)
			}
			tenants[i] = tn.ID
		}
		const (
			day      = 24 * time.Hour
			dump     = `{"task":"main","cause":"LoadProhibited","size":65536}`
			summary  = `{"task":"main","cause":"LoadProhibited"}` // announced no whole core dump
			fpCrash  = "fp-crash"
			fpOthers = "fp-other"
		)
		now := time.Now()
		report := func(tenant, fingerprint string, age time.Duration, coreDump string) store.ErrorReport {
			r := store.ErrorReport{TenantID: tenant, DeviceID: "dev-1", Fingerprint: fingerprint, Type: "panic",
				Message: "LoadProhibited", Severity: "error", FirmwareVersion: "v1", CoreDump: coreDump, ReceivedAt: now.Add(-age)}
			if _, err := st.RecordError(ctx, &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
		oldDump := report(tenants[0], fpCrash, 91*day, dump)
		report(tenants[0], fpCrash, 92*day, "")      // no core dump: no blob to delete
		report(tenants[0], fpCrash, 93*day, summary) // a summary only: no blob either
		oldFailing := report(tenants[0], fpCrash, 94*day, dump)
		otherOld := report(tenants[1], fpOthers, 95*day, dump)
		// The two oldest fail as well: the first batch (of 2) is all kept reports.
		oldest := [2]store.ErrorReport{report(tenants[0], fpCrash, 97*day, dump), report(tenants[0], fpCrash, 96*day, dump)}
		soon := report(tenants[0], fpCrash, 90*day-30*time.Minute, dump) // past the retention within the next hour
		recent := report(tenants[0], fpCrash, day, dump)

		failing := []string{CoreDumpBlobKey(tenants[0], oldFailing.ID), CoreDumpBlobKey(tenants[0], oldest[0].ID), CoreDumpBlobKey(tenants[0], oldest[1].ID)}
		blobs := &fakeBlobs{fail: map[string]bool{}}
		for _, k := range failing {
			blobs.fail[k] = true
		}
		logs := &logbuf.Buffer{}
		start := func() (stop func()) {
			r := NewRetention(RetentionOptions{Store: st, Blobs: blobs, Retention: 90 * day, Interval: time.Hour, Batch: 2,
				Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { _ = r.Run(runCtx); close(done) }()
			synctest.Wait() // the sweep at start
			return func() { cancel(); <-done }
		}
		stop := start()
		defer func() { stop() }()

		reports := func(tenant string) []string {
			t.Helper()
			page, err := st.ListErrorReports(ctx, tenant, "", "", store.ListOptions{Limit: store.MaxPageSize})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range page.Items {
				ids = append(ids, r.ID)
			}
			return slices.Sorted(slices.Values(ids))
		}
		sorted := func(ids ...string) []string { return slices.Sorted(slices.Values(ids)) }
		keptFailing := []string{oldFailing.ID, oldest[0].ID, oldest[1].ID}
		if got, want := reports(tenants[0]), sorted(append([]string{soon.ID, recent.ID}, keptFailing...)...); !slices.Equal(got, want) {
			t.Errorf("at start: reports kept %v, want the two within the retention and the three whose core dump failed %v", got, want)
		}
		if got := reports(tenants[1]); len(got) != 0 {
			t.Errorf("at start: the other tenant's old report was kept: %v", got)
		}
		if got, want := blobs.keys(), sorted(CoreDumpBlobKey(tenants[0], oldDump.ID), CoreDumpBlobKey(tenants[1], otherOld.ID)); !slices.Equal(got, want) {
			t.Errorf("at start: core dumps deleted %v, want those the old reports announced %v", got, want)
		}
		for _, k := range failing {
			if !strings.Contains(logs.String(), k) {
				t.Errorf("the core dump %s that could not be deleted is not logged with its key:\n%s", k, logs.String())
			}
		}
		g, err := st.ErrorGroup(ctx, tenants[0], recent.GroupID)
		if err != nil {
			t.Fatal(err)
		}
		if g.Count != 8 {
			t.Errorf("the group counts %d reports after the sweep, want all 8 it had", g.Count)
		}

		testclock.Advance(time.Hour) // the next sweep
		if got, want := reports(tenants[0]), sorted(append([]string{recent.ID}, keptFailing...)...); !slices.Equal(got, want) {
			t.Errorf("an hour later: reports kept %v, want %v", got, want)
		}
		if !slices.Contains(blobs.keys(), CoreDumpBlobKey(tenants[0], soon.ID)) {
			t.Errorf("an hour later: the core dump of the report now past the retention is kept")
		}
		for _, k := range failing {
			if slices.Contains(blobs.keys(), k) {
				t.Fatalf("the failing core dump %s was deleted while its storage failed", k)
			}
		}

		// The replica restarts, and the storage works again: the sweep at start deletes the
		// core dumps that failed, then their reports.
		stop()
		blobs.mu.Lock()
		blobs.fail = nil
		blobs.mu.Unlock()
		stop = start()
		for _, k := range failing {
			if !slices.Contains(blobs.keys(), k) {
				t.Errorf("the core dump %s whose delete failed is not deleted by a later sweep: deleted %v", k, blobs.keys())
			}
		}
		if got, want := reports(tenants[0]), []string{recent.ID}; !slices.Equal(got, want) {
			t.Errorf("after the restart: reports kept %v, want %v", got, want)
		}
		n := len(blobs.keys())
		testclock.Advance(time.Hour)
		if got := len(blobs.keys()); got != n {
			t.Errorf("a core dump deleted again after its report went: %d deletes, then %d", n, got)
		}
	})
}
