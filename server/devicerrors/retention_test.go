package devicerrors

import (
	"bytes"
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

// lockedBuffer is a log sink the sweep's goroutine writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The retention sweep runs at start and every interval, in batches: it deletes the reports of
// every tenant received before the retention with the core dumps they announced (a failed
// delete is logged and the sweep goes on), keeps the newer ones and leaves the groups'
// counts alone.
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
		soon := report(tenants[0], fpCrash, 90*day-30*time.Minute, dump) // past the retention within the next hour
		recent := report(tenants[0], fpCrash, day, dump)

		blobs := &fakeBlobs{fail: map[string]bool{CoreDumpBlobKey(tenants[0], oldFailing.ID): true}}
		logs := &lockedBuffer{}
		r := NewRetention(RetentionOptions{Store: st, Blobs: blobs, Retention: 90 * day, Interval: time.Hour, Batch: 2,
			Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = r.Run(runCtx); close(done) }()
		defer func() { cancel(); <-done }()
		synctest.Wait() // the sweep at start

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
		if got, want := reports(tenants[0]), sorted(soon.ID, recent.ID); !slices.Equal(got, want) {
			t.Errorf("at start: reports kept %v, want the two within the retention %v", got, want)
		}
		if got := reports(tenants[1]); len(got) != 0 {
			t.Errorf("at start: the other tenant's old report was kept: %v", got)
		}
		if got, want := blobs.keys(), sorted(CoreDumpBlobKey(tenants[0], oldDump.ID), CoreDumpBlobKey(tenants[1], otherOld.ID)); !slices.Equal(got, want) {
			t.Errorf("at start: core dumps deleted %v, want those the old reports announced %v", got, want)
		}
		if !strings.Contains(logs.String(), CoreDumpBlobKey(tenants[0], oldFailing.ID)) {
			t.Errorf("the core dump that could not be deleted is not logged with its key:\n%s", logs.String())
		}
		g, err := st.ErrorGroup(ctx, tenants[0], recent.GroupID)
		if err != nil {
			t.Fatal(err)
		}
		if g.Count != 6 {
			t.Errorf("the group counts %d reports after the sweep, want all 6 it had", g.Count)
		}

		testclock.Advance(time.Hour) // the next sweep
		if got, want := reports(tenants[0]), []string{recent.ID}; !slices.Equal(got, want) {
			t.Errorf("an hour later: reports kept %v, want %v", got, want)
		}
		if !slices.Contains(blobs.keys(), CoreDumpBlobKey(tenants[0], soon.ID)) {
			t.Errorf("an hour later: the core dump of the report now past the retention is kept")
		}
		failing := CoreDumpBlobKey(tenants[0], oldFailing.ID)
		if slices.Contains(blobs.keys(), failing) {
			t.Fatalf("the failing core dump was deleted while its storage failed")
		}

		// The storage works again: the next sweep deletes the core dump that failed, though its
		// report is long gone.
		blobs.mu.Lock()
		blobs.fail = nil
		blobs.mu.Unlock()
		testclock.Advance(time.Hour)
		if !slices.Contains(blobs.keys(), failing) {
			t.Errorf("the core dump whose delete failed is not deleted at a later sweep: deleted %v", blobs.keys())
		}
		n := len(blobs.keys())
		testclock.Advance(time.Hour)
		if got := len(blobs.keys()); got != n {
			t.Errorf("a core dump deleted again after its retry succeeded: %d deletes, then %d", n, got)
		}
	})
}
