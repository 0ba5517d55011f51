package server

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// TestPresenceAfterDatabaseOutage: a device whose connection ends while PostgreSQL is down
// has its offline status dropped (the write fails); once the database is back, presence is
// reconciled with the broker's connection table and the device shows offline, while a device
// still connected stays online.
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
	poll.Wait(t, "the offline status dropped for want of a database", func() bool {
		return testutil.ToFloat64(dropped) > before && !h.fleet.broker.Online(gone)
	})

	pg.Start(t)
	w.waitOnline(t, gone, false)
	w.waitOnline(t, stays, true)
	if n := testutil.ToFloat64(h.fleet.metrics.Presence.WithLabelValues("reconciled")); n < 1 {
		t.Errorf("presence reports reconciled = %v, want at least 1", n)
	}
}
