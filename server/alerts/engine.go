package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/espadmin/espadmin/server/devconfig"
	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/server/ota"
	"github.com/espadmin/espadmin/store"
)

// Defaults of Options.
const (
	DefaultGroupWindow   = 10 * time.Second
	DefaultSweepInterval = 5 * time.Second
	DefaultRuleCacheTTL  = 15 * time.Second
	DefaultQueueSize     = 65536
	// DefaultReconcileInterval is how often the open alerts that resolve by themselves are
	// checked against the store.
	DefaultReconcileInterval = time.Minute
	deviceCacheTTL           = time.Minute
	// MaxPayloadSubjects bounds the subjects a notification lists; the count says how many
	// there were.
	MaxPayloadSubjects = 100
)

// Store is what the engine needs from the store.
type Store interface {
	ListAlertRules(ctx context.Context, tenantID string, opts store.ListOptions) (store.Page[store.AlertRule], error)
	AlertChannel(ctx context.Context, tenantID, id string) (store.AlertChannel, error)
	Device(ctx context.Context, tenantID, id string) (store.Device, error)
	Tenant(ctx context.Context, id string) (store.Tenant, error)
	CreateAlert(ctx context.Context, a *store.Alert) error
	ResolveAlert(ctx context.Context, tenantID, id string, at time.Time) error
	CreateAlertDelivery(ctx context.Context, d *store.AlertDelivery) error
	// For the start (seed): the tenants, their devices offline or out of config sync (with
	// the config version each should run) and their open alerts. ListDevices also reads the
	// devices of the open alerts by ID (reconcile).
	ListTenants(ctx context.Context, opts store.ListOptions) (store.Page[store.Tenant], error)
	ListDevices(ctx context.Context, tenantID string, f store.DeviceFilter, opts store.ListOptions) (store.Page[store.Device], error)
	ConfigVersion(ctx context.Context, tenantID, deviceID string, version int64) (store.ConfigVersion, error)
	ListAlerts(ctx context.Context, tenantID string, f store.AlertFilter, opts store.ListOptions) (store.Page[store.Alert], error)
}

// Options configure an Engine. Zero values take the defaults.
type Options struct {
	Store Store
	// Hub is tapped for every tenant's events.
	Hub *fleet.Hub
	// GroupWindow is how long a rule collects subjects before it notifies: everything that
	// met the rule within the window is one notification per channel.
	GroupWindow time.Duration
	// SweepInterval is how often timers (offline, config not applied) and groups are checked.
	SweepInterval time.Duration
	// RuleCacheTTL is how long a tenant's rules are kept before they are read again (changes
	// saved on another replica apply within it; Invalidate applies this replica's at once).
	RuleCacheTTL time.Duration
	// QueueSize bounds the events waiting for the engine; more are dropped and counted.
	QueueSize int
	// ReconcileInterval is how often the open device_offline and config_not_applied alerts
	// this engine follows are checked against the store: a device that came back, or applied
	// its config, through another replica produced its event there, not here.
	ReconcileInterval time.Duration
	// PublicURL is the server's public URL, for links in notifications.
	PublicURL string
	Logger    *slog.Logger
}

// Engine evaluates the alert rules of every tenant on the events of this replica. Each event
// is seen by the replica that produced it (ingestion is shared among replicas), so each is
// evaluated once. Its timers and groups are in memory; at start it seeds them from the store
// (see seed): the offline timers of devices that are offline, the config timers of devices
// whose config is not in sync, and the device_offline and config_not_applied alerts still
// open, so they resolve when their devices come back or apply their config.
type Engine struct {
	o       Options
	in      chan fleet.Event
	dropped atomic.Int64

	rulesMu sync.Mutex
	rules   map[string]ruleSet

	// State below is owned by Run's goroutine.
	devices map[string]deviceInfo          // tenant/device → scope facts
	slugs   map[string]string              // tenant → slug, for links
	offline map[string]*episode            // tenant/device → offline episode
	config  map[string]*episode            // tenant/device → pending config
	windows map[string][]time.Time         // rule/subject → recent occurrences
	batches map[string]*batch              // rule ID → subjects collecting
	quiet   map[string]time.Time           // rule/subject → end of its cooldown
	open    map[string]*openAlert          // alert ID → subjects still in the condition
	bySubj  map[string]map[string]struct{} // kind/tenant/subject → open alert IDs
	// reconciled is when the open alerts were last checked against the store.
	reconciled time.Time
}

type ruleSet struct {
	rules  []store.AlertRule
	loaded time.Time
}

type deviceInfo struct {
	id, name, projectID string
	tags                []string
	loaded              time.Time
}

// episode is one stretch of a device being offline (or its config pending), with the rules
// that fired for it already.
type episode struct {
	tenantID, deviceID string
	since              time.Time
	fired              map[string]bool
	// seeded episodes were read from the store at start, not seen as an event: another
	// replica may be timing the same device, so they wait seedGrace longer and are checked
	// against the open alerts before they notify. An event for the device makes the episode
	// this replica's own (the event comes to the replica that took the device's message).
	seeded bool
}

type batch struct {
	rule     store.AlertRule
	first    time.Time
	subjects []string
	detail   string
	// seeded holds the subjects that came from seeded timers: another replica may notify
	// them within the group window, so they are checked against the open alerts again
	// before the alert is stored.
	seeded map[string]bool
}

type openAlert struct {
	alert     store.Alert
	channels  []string
	remaining map[string]struct{}
}

// New builds an engine and taps the hub. Run starts it.
func New(o Options) *Engine {
	if o.GroupWindow <= 0 {
		o.GroupWindow = DefaultGroupWindow
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.RuleCacheTTL <= 0 {
		o.RuleCacheTTL = DefaultRuleCacheTTL
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.ReconcileInterval <= 0 {
		o.ReconcileInterval = DefaultReconcileInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		o: o, in: make(chan fleet.Event, o.QueueSize), rules: map[string]ruleSet{},
		devices: map[string]deviceInfo{}, slugs: map[string]string{}, offline: map[string]*episode{}, config: map[string]*episode{},
		windows: map[string][]time.Time{}, batches: map[string]*batch{}, quiet: map[string]time.Time{},
		open: map[string]*openAlert{}, bySubj: map[string]map[string]struct{}{},
	}
	if o.Hub != nil {
		o.Hub.Tap(e.enqueue)
	}
	return e
}

// enqueue takes an event off the publisher's goroutine without blocking.
func (e *Engine) enqueue(ev fleet.Event) {
	switch ev.Type {
	case fleet.EventPresence, devconfig.EventConfig, ota.EventRollout, devicerrors.EventError, fleet.EventAuthFailed:
	default:
		return
	}
	select {
	case e.in <- ev:
	default:
		if e.dropped.Add(1) == 1 {
			e.o.Logger.Warn("alert engine queue full: events dropped")
		}
	}
}

// Dropped returns how many events the engine lost to a full queue.
func (e *Engine) Dropped() int64 { return e.dropped.Load() }

// Invalidate makes the engine read the tenant's rules again at its next event.
func (e *Engine) Invalidate(tenantID string) {
	e.rulesMu.Lock()
	delete(e.rules, tenantID)
	e.rulesMu.Unlock()
}

// Run seeds the engine from the store, then evaluates events until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.seed(ctx, time.Now()); err != nil && ctx.Err() == nil {
		e.o.Logger.Warn("alert engine not seeded from the store", "error", err)
	}
	tick := time.NewTicker(e.o.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-e.in:
			e.handle(ctx, ev)
		case <-tick.C:
			e.sweep(ctx, time.Now())
		}
	}
}

// rulesOf returns the tenant's enabled rules, cached for RuleCacheTTL.
func (e *Engine) rulesOf(ctx context.Context, tenantID string, now time.Time) []store.AlertRule {
	e.rulesMu.Lock()
	rs, ok := e.rules[tenantID]
	e.rulesMu.Unlock()
	if ok && now.Sub(rs.loaded) < e.o.RuleCacheTTL {
		return rs.rules
	}
	out, err := e.loadRules(ctx, tenantID)
	if err != nil {
		e.o.Logger.Warn("alert rules not read", "tenant_id", tenantID, "error", err)
		return rs.rules
	}
	e.rulesMu.Lock()
	e.rules[tenantID] = ruleSet{rules: out, loaded: now}
	e.rulesMu.Unlock()
	return out
}

// loadRules reads the tenant's enabled rules.
func (e *Engine) loadRules(ctx context.Context, tenantID string) ([]store.AlertRule, error) {
	var out []store.AlertRule
	err := eachItem(func(opts store.ListOptions) (store.Page[store.AlertRule], error) {
		return e.o.Store.ListAlertRules(ctx, tenantID, opts)
	}, func(r store.AlertRule) {
		if r.Enabled {
			out = append(out, r)
		}
	})
	return out, err
}

func key(parts ...string) string {
	k := ""
	for i, p := range parts {
		if i > 0 {
			k += "\x00"
		}
		k += p
	}
	return k
}

// device returns the scope facts of a device, cached for a minute.
func (e *Engine) device(ctx context.Context, tenantID, id string, now time.Time) (deviceInfo, bool) {
	k := key(tenantID, id)
	if d, ok := e.devices[k]; ok && now.Sub(d.loaded) < deviceCacheTTL {
		return d, true
	}
	dev, err := e.o.Store.Device(ctx, tenantID, id)
	if err != nil {
		return deviceInfo{}, false
	}
	return e.remember(dev, now), true
}

// remember caches the scope facts of a device read from the store.
func (e *Engine) remember(dev store.Device, now time.Time) deviceInfo {
	d := deviceInfo{id: dev.ID, name: dev.Name, projectID: dev.ProjectID, tags: dev.Tags, loaded: now}
	e.devices[key(dev.TenantID, dev.ID)] = d
	return d
}

// readDevices reads devices of several tenants in batches by ID: one query per tenant and
// MaxPageSize devices, so a 500-device outage is one read rather than 500. The result holds
// each device read, nil for one that is gone; a device whose batch failed is missing (the
// failure is logged). Every device read refreshes its cached scope facts.
func (e *Engine) readDevices(ctx context.Context, byTenant map[string][]string, now time.Time) map[string]*store.Device {
	read := map[string]*store.Device{} // by key(tenant, device)
	for tenantID, ids := range byTenant {
		for chunk := range slices.Chunk(ids, store.MaxPageSize) {
			if ctx.Err() != nil {
				return read
			}
			page, err := e.o.Store.ListDevices(ctx, tenantID, store.DeviceFilter{IDs: chunk}, store.ListOptions{Limit: store.MaxPageSize})
			if err != nil {
				e.o.Logger.Warn("devices not read; checked again next time", "tenant_id", tenantID, "devices", len(chunk), "error", err)
				continue
			}
			for _, id := range chunk {
				read[key(tenantID, id)] = nil
			}
			for _, d := range page.Items {
				read[key(tenantID, d.ID)] = &d
				e.remember(d, now)
			}
		}
	}
	return read
}

// matching returns the tenant's rules of kind that cover the device (every rule of kind when
// deviceID is empty).
func (e *Engine) matching(ctx context.Context, tenantID, kind, deviceID string, now time.Time) []store.AlertRule {
	var out []store.AlertRule
	var dev deviceInfo
	loaded := false
	for _, r := range e.rulesOf(ctx, tenantID, now) {
		if r.Kind != kind {
			continue
		}
		if deviceID != "" {
			if !loaded {
				d, ok := e.device(ctx, tenantID, deviceID, now)
				if !ok {
					return nil
				}
				dev, loaded = d, true
			}
			if !covers(r, dev) {
				continue
			}
		} else if r.DeviceID != "" || r.Tag != "" {
			continue // a device-scoped rule does not watch tenant-wide subjects
		}
		out = append(out, r)
	}
	return out
}

func (e *Engine) handle(ctx context.Context, ev fleet.Event) {
	now := ev.At
	if now.IsZero() {
		now = time.Now()
	}
	switch ev.Type {
	case fleet.EventPresence:
		p, ok := ev.Data.(fleet.PresenceEvent)
		if !ok {
			return
		}
		k := key(ev.TenantID, ev.DeviceID)
		if !p.Online {
			if ep, ok := e.offline[k]; ok {
				ep.seeded = false // this replica saw the event: the timer is its own now
			} else {
				e.offline[k] = &episode{tenantID: ev.TenantID, deviceID: ev.DeviceID, since: now, fired: map[string]bool{}}
			}
			return
		}
		ep := e.offline[k]
		delete(e.offline, k)
		e.leaveCondition(ctx, KindDeviceOffline, ev.TenantID, ev.DeviceID, now)
		for _, r := range e.matching(ctx, ev.TenantID, KindDeviceOnline, ev.DeviceID, now) {
			p := params(r)
			if p.Minutes > 0 && (ep == nil || now.Sub(ep.since) < time.Duration(p.Minutes)*time.Minute) {
				continue
			}
			e.add(r, ev.DeviceID, now)
		}
	case devconfig.EventConfig:
		s, ok := ev.Data.(devconfig.Sync)
		if !ok {
			return
		}
		k := key(ev.TenantID, ev.DeviceID)
		if s.State == store.ConfigInSync {
			delete(e.config, k)
			e.leaveCondition(ctx, KindConfigNotApplied, ev.TenantID, ev.DeviceID, now)
			return
		}
		if ep, ok := e.config[k]; ok {
			ep.seeded = false // this replica saw the event: the timer is its own now
		} else {
			e.config[k] = &episode{tenantID: ev.TenantID, deviceID: ev.DeviceID, since: now, fired: map[string]bool{}}
		}
	case ota.EventRollout:
		r, ok := ev.Data.(ota.RolloutEvent)
		if !ok {
			return
		}
		for _, rule := range e.matching(ctx, ev.TenantID, KindRollout, "", now) {
			if rule.ProjectID != "" && rule.ProjectID != r.ProjectID {
				continue
			}
			if !slices.Contains(params(rule).States, r.State) {
				continue
			}
			subject := r.ID + " " + r.State
			if r.PauseReason != "" {
				subject += ": " + r.PauseReason
			}
			e.add(rule, subject, now)
		}
	case devicerrors.EventError:
		er, ok := ev.Data.(devicerrors.ErrorEvent)
		if !ok {
			return
		}
		if er.New {
			for _, r := range e.matching(ctx, ev.TenantID, KindErrorNew, ev.DeviceID, now) {
				e.add(r, fmt.Sprintf("%s: %s %s (device %s)", er.GroupID, er.Type, er.Message, ev.DeviceID), now)
			}
		}
		for _, r := range e.matching(ctx, ev.TenantID, KindErrorRate, ev.DeviceID, now) {
			p := params(r)
			if n := e.count(key(r.ID), now, time.Duration(p.Minutes)*time.Minute); n > p.Count {
				e.add(r, fmt.Sprintf("%d errors in %d min", n, p.Minutes), now)
				delete(e.windows, key(r.ID)) // count afresh after a notification
			}
		}
	case fleet.EventAuthFailed:
		for _, r := range e.matching(ctx, ev.TenantID, KindAuthFailures, ev.DeviceID, now) {
			p := params(r)
			wk := key(r.ID, ev.DeviceID)
			if n := e.count(wk, now, time.Duration(p.Minutes)*time.Minute); n >= p.Count {
				e.add(r, ev.DeviceID, now)
				delete(e.windows, wk)
			}
		}
	}
}

// count records one occurrence under k and returns the occurrences within window.
func (e *Engine) count(k string, now time.Time, window time.Duration) int {
	w := append(e.windows[k], now)
	cut := 0
	for cut < len(w) && now.Sub(w[cut]) > window {
		cut++
	}
	w = w[cut:]
	e.windows[k] = w
	return len(w)
}

// add puts a subject into the rule's current group unless the rule notified about it within
// its cooldown.
func (e *Engine) add(r store.AlertRule, subject string, now time.Time) {
	sk := key(r.ID, subject)
	if until, ok := e.quiet[sk]; ok && now.Before(until) {
		return
	}
	if r.CooldownSeconds > 0 {
		e.quiet[sk] = now.Add(time.Duration(r.CooldownSeconds) * time.Second)
	}
	b := e.batches[r.ID]
	if b == nil {
		b = &batch{rule: r, first: now}
		e.batches[r.ID] = b
	}
	if !slices.Contains(b.subjects, subject) {
		b.subjects = append(b.subjects, subject)
	}
}

// sweep fires the timers that ran out and sends the groups whose window closed.
func (e *Engine) sweep(ctx context.Context, now time.Time) {
	for k, d := range e.devices {
		if now.Sub(d.loaded) >= deviceCacheTTL {
			delete(e.devices, k)
		}
	}
	e.sweepEpisodes(ctx, e.offline, KindDeviceOffline, now)
	e.sweepEpisodes(ctx, e.config, KindConfigNotApplied, now)
	if now.Sub(e.reconciled) >= e.o.ReconcileInterval {
		e.reconciled = now
		e.reconcile(ctx, now)
	}
	for id, b := range e.batches {
		if now.Sub(b.first) >= e.o.GroupWindow {
			delete(e.batches, id)
			e.fire(ctx, b, now)
		}
	}
	// Forget cooldowns that ended and counters no rule window can reach any more.
	for k, until := range e.quiet {
		if !now.Before(until) {
			delete(e.quiet, k)
		}
	}
	for k, w := range e.windows {
		if len(w) == 0 || now.Sub(w[len(w)-1]) > MaxMinutes*time.Minute {
			delete(e.windows, k)
		}
	}
}

func (e *Engine) sweepEpisodes(ctx context.Context, eps map[string]*episode, kind string, now time.Time) {
	// The scope facts of the episodes' devices that are not cached, in batches. A device that
	// is gone leaves the condition.
	stale := map[string][]string{}
	for _, ep := range eps {
		if _, ok := e.devices[key(ep.tenantID, ep.deviceID)]; !ok {
			stale[ep.tenantID] = append(stale[ep.tenantID], ep.deviceID)
		}
	}
	fresh := e.readDevices(ctx, stale, now)
	for k, d := range fresh {
		if d == nil {
			ep := eps[k]
			delete(eps, k)
			e.leaveCondition(ctx, kind, ep.tenantID, ep.deviceID, now)
		}
	}

	// The episodes with a rule due, each checked against the store before it notifies: one
	// batched read for those not read just above.
	type dueEpisode struct {
		k     string
		ep    *episode
		rules []store.AlertRule
	}
	var due []dueEpisode
	check := map[string][]string{}
	for k, ep := range eps {
		var rules []store.AlertRule
		for _, r := range e.matching(ctx, ep.tenantID, kind, ep.deviceID, now) {
			after := time.Duration(params(r).Minutes) * time.Minute
			if ep.seeded {
				after += e.seedGrace()
			}
			if !ep.fired[r.ID] && now.Sub(ep.since) >= after {
				rules = append(rules, r)
			}
		}
		if len(rules) == 0 {
			continue
		}
		due = append(due, dueEpisode{k, ep, rules})
		if _, read := fresh[k]; !read {
			check[ep.tenantID] = append(check[ep.tenantID], ep.deviceID)
		}
	}
	if len(due) == 0 {
		return
	}
	current := e.readDevices(ctx, check, now)
	maps.Copy(current, fresh)
	var listed map[string]map[string]bool // rule ID → subjects of its open alerts, read once per sweep
	for _, de := range due {
		ep := de.ep
		if d, read := current[de.k]; read && (d == nil || !inCondition(kind, *d)) {
			delete(eps, de.k)
			e.leaveCondition(ctx, kind, ep.tenantID, ep.deviceID, now)
			continue
		} // a device not read counts as still in: rather a notification too many than a missed one
		for _, r := range de.rules {
			ep.fired[r.ID] = true
			if ep.seeded {
				if listed == nil {
					listed = map[string]map[string]bool{}
				}
				if _, ok := listed[r.ID]; !ok {
					listed[r.ID] = e.openSubjects(ctx, r)
				}
				if listed[r.ID][ep.deviceID] {
					continue // another replica notified it meanwhile
				}
			}
			e.add(r, ep.deviceID, now)
			if b := e.batches[r.ID]; ep.seeded && b != nil && slices.Contains(b.subjects, ep.deviceID) {
				if b.seeded == nil {
					b.seeded = map[string]bool{}
				}
				b.seeded[ep.deviceID] = true
			}
		}
	}
}

// inCondition tells whether a device, as read from the store, is in the condition of kind.
func inCondition(kind string, d store.Device) bool {
	switch kind {
	case KindDeviceOffline:
		return !d.Presence.Online
	case KindConfigNotApplied:
		return d.ConfigSync.State != store.ConfigInSync
	}
	return true
}

// reconcile reads the devices the open alerts still list and takes out those that left the
// condition, resolving an alert when its last device has: the event of a device that came back
// (or applied its config) through another replica reached that replica's engine only. The
// devices are read in batches by ID, one read per tenant and MaxPageSize devices.
func (e *Engine) reconcile(ctx context.Context, now time.Time) {
	type subject struct{ kind, tenantID, deviceID string }
	var check []subject
	seen := map[subject]bool{}
	byTenant := map[string][]string{}
	asked := map[string]bool{} // by key(tenant, device): a device in alerts of both kinds is read once
	for _, oa := range e.open {
		for id := range oa.remaining {
			s := subject{oa.alert.Kind, oa.alert.TenantID, id}
			if seen[s] {
				continue
			}
			seen[s] = true
			check = append(check, s)
			if k := key(s.tenantID, id); !asked[k] {
				asked[k] = true
				byTenant[s.tenantID] = append(byTenant[s.tenantID], id)
			}
		}
	}
	listed := e.readDevices(ctx, byTenant, now)
	for _, s := range check {
		d, read := listed[key(s.tenantID, s.deviceID)]
		switch {
		case !read:
			continue
		case d != nil && inCondition(s.kind, *d):
			continue
		}
		if s.kind == KindDeviceOffline {
			delete(e.offline, key(s.tenantID, s.deviceID))
		} else {
			delete(e.config, key(s.tenantID, s.deviceID))
		}
		e.leaveCondition(ctx, s.kind, s.tenantID, s.deviceID, now)
	}
}

// leaveCondition takes a device out of the open alerts and groups of kind: a device back
// online, a config applied. An alert whose every subject left is resolved.
func (e *Engine) leaveCondition(ctx context.Context, kind, tenantID, deviceID string, now time.Time) {
	for _, b := range e.batches {
		if b.rule.TenantID == tenantID && b.rule.Kind == kind {
			b.subjects = slices.DeleteFunc(b.subjects, func(s string) bool { return s == deviceID })
		}
	}
	for id, b := range e.batches {
		if len(b.subjects) == 0 {
			delete(e.batches, id)
		}
	}
	sk := key(kind, tenantID, deviceID)
	for id := range e.bySubj[sk] {
		oa := e.open[id]
		if oa == nil {
			continue
		}
		delete(oa.remaining, deviceID)
		if len(oa.remaining) == 0 {
			delete(e.open, id)
			e.resolve(ctx, oa, now)
		}
	}
	delete(e.bySubj, sk)
}

// tracksResolution reports whether alerts of kind resolve by themselves.
func tracksResolution(kind string) bool {
	return kind == KindDeviceOffline || kind == KindConfigNotApplied
}

// fire stores one alert for the group and queues one delivery per enabled channel.
func (e *Engine) fire(ctx context.Context, b *batch, now time.Time) {
	r := b.rule
	if len(b.seeded) > 0 {
		listed := e.openSubjects(ctx, r)
		b.subjects = slices.DeleteFunc(b.subjects, func(s string) bool { return b.seeded[s] && listed[s] })
		if len(b.subjects) == 0 {
			return // another replica notified them all meanwhile
		}
	}
	a := store.Alert{
		TenantID: r.TenantID, RuleID: r.ID, RuleName: r.Name, Kind: r.Kind, State: store.AlertFiring,
		Summary: summary(r, b.subjects), Subjects: b.subjects, FiredAt: now, UpdatedAt: now,
	}
	if err := e.o.Store.CreateAlert(ctx, &a); err != nil {
		e.o.Logger.Warn("alert not stored", "tenant_id", r.TenantID, "rule_id", r.ID, "error", err)
		return
	}
	if tracksResolution(r.Kind) {
		oa := &openAlert{alert: a, channels: r.ChannelIDs, remaining: map[string]struct{}{}}
		for _, s := range b.subjects {
			oa.remaining[s] = struct{}{}
			sk := key(r.Kind, r.TenantID, s)
			if e.bySubj[sk] == nil {
				e.bySubj[sk] = map[string]struct{}{}
			}
			e.bySubj[sk][a.ID] = struct{}{}
		}
		e.open[a.ID] = oa
	}
	e.notify(ctx, a, r.ChannelIDs, "alert.firing", now)
}

func (e *Engine) resolve(ctx context.Context, oa *openAlert, now time.Time) {
	a := oa.alert
	if err := e.o.Store.ResolveAlert(ctx, a.TenantID, a.ID, now); err != nil {
		e.o.Logger.Debug("alert not resolved", "tenant_id", a.TenantID, "alert_id", a.ID, "error", err)
		return
	}
	a.State, a.ResolvedAt = store.AlertResolved, &now
	e.notify(ctx, a, oa.channels, "alert.resolved", now)
}

// notify queues the alert for each enabled channel in the outbox.
func (e *Engine) notify(ctx context.Context, a store.Alert, channelIDs []string, typ string, now time.Time) {
	slug, ok := e.slugs[a.TenantID]
	if !ok {
		if t, err := e.o.Store.Tenant(ctx, a.TenantID); err == nil {
			slug = t.Slug
			e.slugs[a.TenantID] = slug
		}
	}
	payload, err := json.Marshal(NewMessage(typ, a, AlertsURL(e.o.PublicURL, slug), now))
	if err != nil {
		return
	}
	for _, id := range channelIDs {
		ch, err := e.o.Store.AlertChannel(ctx, a.TenantID, id)
		if err != nil || !ch.Enabled {
			continue
		}
		d := store.AlertDelivery{TenantID: a.TenantID, ChannelID: ch.ID, AlertID: a.ID, MessageID: "msg_" + store.NewID(),
			Payload: string(payload), State: store.DeliveryPending, NextAttemptAt: now}
		if err := e.o.Store.CreateAlertDelivery(ctx, &d); err != nil {
			e.o.Logger.Warn("alert delivery not queued", "tenant_id", a.TenantID, "channel_id", id, "error", err)
		}
	}
}

// summary is the one line a notification leads with.
func summary(r store.AlertRule, subjects []string) string {
	p := params(r)
	n := len(subjects)
	switch r.Kind {
	case KindDeviceOffline:
		return fmt.Sprintf("%s: %d %s offline for %d min or more", r.Name, n, plural(n, "device", "devices"), p.Minutes)
	case KindDeviceOnline:
		return fmt.Sprintf("%s: %d %s back online", r.Name, n, plural(n, "device", "devices"))
	case KindErrorNew:
		return fmt.Sprintf("%s: %d new error %s", r.Name, n, plural(n, "group", "groups"))
	case KindErrorRate:
		return fmt.Sprintf("%s: more than %d errors within %d min", r.Name, p.Count, p.Minutes)
	case KindRollout:
		return fmt.Sprintf("%s: %d rollout %s", r.Name, n, plural(n, "change", "changes"))
	case KindConfigNotApplied:
		return fmt.Sprintf("%s: config not applied within %d min on %d %s", r.Name, p.Minutes, n, plural(n, "device", "devices"))
	case KindAuthFailures:
		return fmt.Sprintf("%s: repeated authentication failures of %d %s", r.Name, n, plural(n, "device", "devices"))
	}
	return r.Name
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
