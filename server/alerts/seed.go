package alerts

import (
	"context"
	"errors"
	"time"

	"github.com/espadmin/espadmin/store"
)

// seed rebuilds at start what the engine keeps in memory and a restart lost, from the store:
//
//   - the device_offline alerts still open (firing or acknowledged), so they resolve when their
//     devices come back; one whose devices all came back while the engine was down is resolved
//     at once;
//   - the offline timers of the devices that are offline now (of tenants with a
//     device_offline rule), started at the device's last presence change, as if the event had
//     come then: a device offline for longer than a rule's minutes notifies at the next sweep,
//     unless an open alert of the rule lists it already.
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
	timing := false
	for _, r := range rules {
		channels[r.ID] = r.ChannelIDs
		timing = timing || r.Kind == KindDeviceOffline
	}
	var open []store.Alert
	for _, st := range []store.AlertState{store.AlertFiring, store.AlertAcknowledged} {
		err := eachItem(func(opts store.ListOptions) (store.Page[store.Alert], error) {
			return e.o.Store.ListAlerts(ctx, tenantID, store.AlertFilter{State: st}, opts)
		}, func(a store.Alert) {
			if a.Kind == KindDeviceOffline {
				open = append(open, a)
			}
		})
		if err != nil {
			return err
		}
	}
	if !timing && len(open) == 0 {
		return nil
	}
	offline := map[string]store.Device{}
	online := false
	err = eachItem(func(opts store.ListOptions) (store.Page[store.Device], error) {
		return e.o.Store.ListDevices(ctx, tenantID, store.DeviceFilter{Online: &online}, opts)
	}, func(d store.Device) { offline[d.ID] = d })
	if err != nil {
		return err
	}

	for _, a := range open {
		if _, ok := e.open[a.ID]; ok {
			continue
		}
		oa := &openAlert{alert: a, channels: channels[a.RuleID], remaining: map[string]struct{}{}}
		for _, s := range a.Subjects {
			if _, ok := offline[s]; ok {
				oa.remaining[s] = struct{}{}
			}
		}
		if len(oa.remaining) == 0 {
			e.resolve(ctx, oa, now) // every device came back while the engine was down
			continue
		}
		e.open[a.ID] = oa
		for s := range oa.remaining {
			sk := key(KindDeviceOffline, tenantID, s)
			if e.bySubj[sk] == nil {
				e.bySubj[sk] = map[string]struct{}{}
			}
			e.bySubj[sk][a.ID] = struct{}{}
		}
	}

	if !timing {
		return nil
	}
	for id, d := range offline {
		since := d.Presence.ChangedAt
		if since.IsZero() {
			since = d.Presence.LastSeenAt
		}
		k := key(tenantID, id)
		if d.Disabled || since.IsZero() || e.offline[k] != nil {
			continue
		}
		ep := &episode{tenantID: tenantID, deviceID: id, since: since, fired: map[string]bool{}, seeded: true}
		for alertID := range e.bySubj[key(KindDeviceOffline, tenantID, id)] {
			ep.fired[e.open[alertID].alert.RuleID] = true
		}
		e.offline[k] = ep
	}
	return nil
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
