package alerts

import (
	"context"
	"errors"
	"time"

	"github.com/espadmin/espadmin/store"
)

// seed rebuilds at start what the engine keeps in memory and a restart lost, from the store:
//
//   - the alerts still open (firing or acknowledged) that resolve by themselves
//     (device_offline, config_not_applied), so they resolve when their devices come back or
//     report their config in sync; one whose devices all did so while the engine was down is
//     resolved at once;
//   - the offline timers of the devices that are offline now (of tenants with a
//     device_offline rule), started at the device's last presence change, as if the event had
//     come then: a device offline for longer than a rule's minutes notifies at the next sweep,
//     unless an open alert of the rule lists it already;
//   - likewise the config timers of the devices whose config is not in sync now (pending or
//     failed; of tenants with a config_not_applied rule), started when the version the device
//     should run was written.
//
// Devices that were never online and disabled devices get no timer. Another replica may be
// timing the same device (it saw the event), so a seeded timer waits seedGrace longer and
// checks the open alerts again before it notifies.
func (e *Engine) seed(ctx context.Context, now time.Time) error {
	var errs []error
	err := eachItem(func(opts store.ListOptions) (store.Page[store.Tenant], error) {
		return e.o.Store.ListTenants(ctx, opts)
	}, func(tn store.Tenant) {
		if err := e.seedTenant(ctx, tn.ID, now); err != nil {
			errs = append(errs, err)
		}
	})
	return errors.Join(append(errs, err)...)
}

func (e *Engine) seedTenant(ctx context.Context, tenantID string, now time.Time) error {
	// Read, not cached: the rules of a tenant are cached at its first event.
	rules, err := e.loadRules(ctx, tenantID)
	if err != nil {
		return err
	}
	channels := map[string][]string{} // rule ID → channels, of the enabled rules
	timing := map[string]bool{}       // kinds the tenant has an enabled rule of
	for _, r := range rules {
		channels[r.ID] = r.ChannelIDs
		timing[r.Kind] = true
	}
	open := map[string][]store.Alert{} // kind → open alerts
	for _, st := range []store.AlertState{store.AlertFiring, store.AlertAcknowledged} {
		err := eachItem(func(opts store.ListOptions) (store.Page[store.Alert], error) {
			return e.o.Store.ListAlerts(ctx, tenantID, store.AlertFilter{State: st}, opts)
		}, func(a store.Alert) {
			if tracksResolution(a.Kind) {
				open[a.Kind] = append(open[a.Kind], a)
			}
		})
		if err != nil {
			return err
		}
	}

	var errs []error
	for _, c := range []struct {
		kind string
		eps  map[string]*episode
		in   func(ctx context.Context, tenantID string, timing bool) (map[string]time.Time, error)
	}{
		{KindDeviceOffline, e.offline, e.offlineSince},
		{KindConfigNotApplied, e.config, e.configPendingSince},
	} {
		if !timing[c.kind] && len(open[c.kind]) == 0 {
			continue
		}
		in, err := c.in(ctx, tenantID, timing[c.kind])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e.follow(ctx, c.kind, tenantID, open[c.kind], in, channels, now)
		if timing[c.kind] {
			e.seedEpisodes(c.eps, c.kind, tenantID, in)
		}
	}
	return errors.Join(errs...)
}

// offlineSince returns the tenant's offline devices, each with the time it went offline
// (zero: no timer, for a device never online or disabled).
func (e *Engine) offlineSince(ctx context.Context, tenantID string, _ bool) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	online := false
	err := eachItem(func(opts store.ListOptions) (store.Page[store.Device], error) {
		return e.o.Store.ListDevices(ctx, tenantID, store.DeviceFilter{Online: &online}, opts)
	}, func(d store.Device) {
		since := d.Presence.ChangedAt
		if since.IsZero() {
			since = d.Presence.LastSeenAt
		}
		if d.Disabled {
			since = time.Time{}
		}
		out[d.ID] = since
	})
	return out, err
}

// configPendingSince returns the tenant's devices whose config is not in sync (pending or
// failed), each with the time the version it should run was written (when timing; zero for a
// disabled device, which cannot apply it). Only those devices are read, and their versions.
func (e *Engine) configPendingSince(ctx context.Context, tenantID string, timing bool) (map[string]time.Time, error) {
	var pending []store.Device
	outOfSync := store.DeviceFilter{ConfigStates: []store.ConfigSyncState{store.ConfigPending, store.ConfigFailed}}
	err := eachItem(func(opts store.ListOptions) (store.Page[store.Device], error) {
		return e.o.Store.ListDevices(ctx, tenantID, outOfSync, opts)
	}, func(d store.Device) {
		pending = append(pending, d)
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(pending))
	for _, d := range pending {
		if !timing || d.Disabled {
			out[d.ID] = time.Time{}
			continue
		}
		// The version's creation is when the device fell out of sync with it; its sync
		// state's last change stands in when the version is gone.
		since := d.ConfigSync.UpdatedAt
		v, err := e.o.Store.ConfigVersion(ctx, tenantID, d.ID, d.ConfigSync.DesiredVersion)
		switch {
		case err == nil:
			since = v.CreatedAt
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
		out[d.ID] = since
	}
	return out, nil
}

// follow registers the tenant's open alerts of kind again, so they resolve when their devices
// leave the condition; in holds the devices in it now. An alert none of whose devices is in
// it any more is resolved at once.
func (e *Engine) follow(ctx context.Context, kind, tenantID string, open []store.Alert, in map[string]time.Time, channels map[string][]string, now time.Time) {
	for _, a := range open {
		if _, ok := e.open[a.ID]; ok {
			continue
		}
		oa := &openAlert{alert: a, channels: channels[a.RuleID], remaining: map[string]struct{}{}}
		for _, s := range a.Subjects {
			if _, ok := in[s]; ok {
				oa.remaining[s] = struct{}{}
			}
		}
		if len(oa.remaining) == 0 {
			e.resolve(ctx, oa, now) // every device left the condition while the engine was down
			continue
		}
		e.open[a.ID] = oa
		for s := range oa.remaining {
			sk := key(kind, tenantID, s)
			if e.bySubj[sk] == nil {
				e.bySubj[sk] = map[string]struct{}{}
			}
			e.bySubj[sk][a.ID] = struct{}{}
		}
	}
}

// seedEpisodes starts a seeded timer of kind for each device in the condition since a known
// time, unless one runs already; the rules whose open alerts list the device count as fired.
func (e *Engine) seedEpisodes(eps map[string]*episode, kind, tenantID string, in map[string]time.Time) {
	for id, since := range in {
		k := key(tenantID, id)
		if since.IsZero() || eps[k] != nil {
			continue
		}
		ep := &episode{tenantID: tenantID, deviceID: id, since: since, fired: map[string]bool{}, seeded: true}
		for alertID := range e.bySubj[key(kind, tenantID, id)] {
			ep.fired[e.open[alertID].alert.RuleID] = true
		}
		eps[k] = ep
	}
}

// seedGrace is how much longer a seeded timer waits than its rule says: long enough for a
// replica that saw the event to have stored its alert (a sweep, the group window, a sweep).
func (e *Engine) seedGrace() time.Duration {
	return e.o.GroupWindow + 2*e.o.SweepInterval
}

// openSubjects returns the subjects of the rule's open (firing or acknowledged) alerts.
func (e *Engine) openSubjects(ctx context.Context, r store.AlertRule) map[string]bool {
	out := map[string]bool{}
	for _, st := range []store.AlertState{store.AlertFiring, store.AlertAcknowledged} {
		err := eachItem(func(opts store.ListOptions) (store.Page[store.Alert], error) {
			return e.o.Store.ListAlerts(ctx, r.TenantID, store.AlertFilter{State: st, RuleID: r.ID}, opts)
		}, func(a store.Alert) {
			for _, s := range a.Subjects {
				out[s] = true
			}
		})
		if err != nil {
			e.o.Logger.Warn("open alerts not read", "tenant_id", r.TenantID, "rule_id", r.ID, "error", err)
		}
	}
	return out
}

// eachItem calls fn for every item of a paged listing.
func eachItem[T any](list func(store.ListOptions) (store.Page[T], error), fn func(T)) error {
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := list(opts)
		if err != nil {
			return err
		}
		for _, it := range page.Items {
			fn(it)
		}
		if page.NextCursor == "" {
			return nil
		}
		opts.Cursor = page.NextCursor
	}
}
