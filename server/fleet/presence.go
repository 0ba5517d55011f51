package fleet

import (
	"context"
	"log/slog"
	"time"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
)

// DefaultReconcileInterval is how often presence is reconciled with the broker's connection
// table after the first pass at start.
const DefaultReconcileInterval = 30 * time.Second

// offlineStatus is the retained status the broker publishes for a device that left.
var offlineStatus = []byte(protocol.WillPayload)

// ReconcilerOptions configure a PresenceReconciler.
type ReconcilerOptions struct {
	// Store lists the tenants and their devices shown online.
	Store Store
	// Broker is the embedded broker: its connection table is the truth, and the offline
	// statuses are published on it.
	Broker interface {
		messaging.Bus
		Connections
	}
	// Router, when set, tells which tenants use their own broker; their devices are skipped
	// (see PresenceReconciler).
	Router  Router
	Root    string
	Metrics *Metrics
	Logger  *slog.Logger
	// Interval is the time between passes after the first; 0 means DefaultReconcileInterval.
	Interval time.Duration
}

// PresenceReconciler corrects devices shown online that the embedded broker does not have
// connected. Presence reaches the store as status messages (docs/protocol.md §6), and two
// failures lose the offline one: the server killed (SIGKILL, power loss) while devices were
// connected, whose connections died with it and whose wills were never published; and a
// connection lost while the database was unavailable, whose offline status could not be
// written. So at start, and every Interval after (which covers the end of a database outage),
// every device stored as online and not in the broker's connection table gets the retained
// offline status published on its behalf, as the broker does for a lost connection. It goes
// through ingestion like any status, in the device's order, and ingestion checks the table
// again before writing it, so a device that connects meanwhile stays online.
//
// Devices of tenants on their own broker are not in the embedded broker's table and are left
// alone: there the external broker publishes the device's last will when its connection
// dies, retained, and it reaches the server when the bridge (re)subscribes, after a restart
// too. A will that arrived while the database was down is received again only when the bridge
// next resubscribes (docs/protocol.md §6).
type PresenceReconciler struct {
	o ReconcilerOptions
}

// NewPresenceReconciler returns the reconciler; Run starts it.
func NewPresenceReconciler(o ReconcilerOptions) *PresenceReconciler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Root == "" {
		o.Root = protocol.DefaultRoot
	}
	if o.Interval <= 0 {
		o.Interval = DefaultReconcileInterval
	}
	return &PresenceReconciler{o: o}
}

// Run reconciles at once and then every Interval until ctx ends. A pass that fails (the
// database is down) is logged and the next one tries again.
func (r *PresenceReconciler) Run(ctx context.Context) error {
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		n, err := r.Reconcile(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			r.o.Logger.Warn("reconcile presence with the broker", "error", err)
		case n > 0:
			r.o.Logger.Info("presence reconciled with the broker: devices shown online were not connected", "devices", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Reconcile runs one pass and returns how many devices it published offline for.
func (r *PresenceReconciler) Reconcile(ctx context.Context) (int, error) {
	online := true
	published := 0
	tenants := store.ListOptions{Limit: store.MaxPageSize}
	for {
		tctx, cancel := context.WithTimeout(ctx, storeTimeout)
		page, err := r.o.Store.ListTenants(tctx, tenants)
		cancel()
		if err != nil {
			return published, err
		}
		for _, tn := range page.Items {
			if r.o.Router != nil {
				if _, _, external := r.o.Router.Route(tn.ID); external {
					continue
				}
			}
			n, err := r.reconcileTenant(ctx, tn.ID, &online)
			published += n
			if err != nil {
				return published, err
			}
		}
		if page.NextCursor == "" {
			return published, nil
		}
		tenants.Cursor = page.NextCursor
	}
}

func (r *PresenceReconciler) reconcileTenant(ctx context.Context, tenantID string, online *bool) (int, error) {
	published := 0
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		dctx, cancel := context.WithTimeout(ctx, storeTimeout)
		page, err := r.o.Store.ListDevices(dctx, tenantID, store.DeviceFilter{Online: online}, opts)
		cancel()
		if err != nil {
			return published, err
		}
		for _, d := range page.Items {
			if r.o.Broker.Online(d.ID) {
				continue
			}
			m := messaging.Message{Topic: protocol.Uplink(r.o.Root, d.ID, protocol.KindStatus), Payload: offlineStatus, QoS: 1, Retain: true}
			if err := r.o.Broker.Publish(ctx, m); err != nil {
				return published, err
			}
			r.o.Metrics.Presence.WithLabelValues("reconciled").Inc()
			published++
		}
		if page.NextCursor == "" {
			return published, nil
		}
		opts.Cursor = page.NextCursor
	}
}
