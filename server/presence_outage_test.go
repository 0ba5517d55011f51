package server

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// TestPresenceAfterDatabaseOutage: a device whose connection ends while PostgreSQL is down
// shows offline once the database is back, while a device still connected stays online.
// Its offline status either waits for the database or, when its write failed and it was
// dropped, presence is reconciled with the broker's connection table: whichever happened,
// the state converges to the truth.
func TestPresenceAfterDatabaseOutage(t *testing.T) {
	pg := testsvc.PostgresForOutage(t)
	h := newHarness(t, withBroker(), withDatabase(pg.URL))
	h.createUser(t, memberEmail("alpha", store.RoleOwner), "alpha", store.RoleOwner)
	w := &deviceWorld{h: h, owner: h.login(t, memberEmail("alpha", store.RoleOwner))}
	r, b := w.create(t, map[string]any{"name": "leaves"})
	gone := r["id"].(string)
	d := w.start(t, b)
	r, b = w.create(t, map[string]any{"name": "stays"})
	stays := r["id"].(string)
	w.start(t, b)
	w.waitOnline(t, gone, true)
	w.waitOnline(t, stays, true)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	rec := fleet.NewPresenceReconciler(fleet.ReconcilerOptions{
		Store: h.st, Broker: h.fleet.broker, Metrics: h.fleet.metrics, Interval: 200 * time.Millisecond,
	})
	go func() {
		defer close(done)
		_ = rec.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })

	dropped := h.fleet.metrics.Dropped.WithLabelValues("store_error")
	before := testutil.ToFloat64(dropped)
	pg.Stop(t)
	d.Stop()
	// A report of the device's held for the database (docs/protocol.md §7) may keep its
	// connection up to ingestion's 30 s limit before it is closed unacknowledged.
	poll.Until(t, time.Minute, "the broker to see the device gone", func() bool { return !h.fleet.broker.Online(gone) })

	pg.Start(t)
	// The pool's connections from before the outage are broken: the first requests may still
	// answer 503 unavailable while they are replaced.
	poll.Until(t, time.Minute, "the API to answer again", func() bool {
		status, _ := w.owner.do("GET", "/api/v1/tenants/alpha/devices/"+stays, nil)
		return status == http.StatusOK
	})
	w.waitOnline(t, gone, false)
	w.waitOnline(t, stays, true)
	if testutil.ToFloat64(dropped) > before {
		if n := testutil.ToFloat64(h.fleet.metrics.Presence.WithLabelValues("reconciled")); n < 1 {
			t.Errorf("a status write was dropped but presence reports reconciled = %v, want at least 1", n)
		}
	}
}
