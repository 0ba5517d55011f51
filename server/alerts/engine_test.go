package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/espadmin/espadmin/server/devconfig"
	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/server/ota"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/sqlstore"
	"github.com/espadmin/espadmin/tests/testkit/testclock"
)

// env is a migrated SQLite store with one tenant, a hub and a running engine. It must be
// built inside the synctest bubble of the test.
type env struct {
	t      *testing.T
	st     *sqlstore.Store
	hub    *fleet.Hub
	eng    *Engine
	tenant string
	stop   func()
	// engineStore, when set by a setup, is the engine's view of st (to count its reads).
	engineStore Store
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with setup run on the store before the engine starts (what a
// restarted engine finds).
func newEnvWith(t *testing.T, setup func(e *env)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "alerts.db"), sqlstore.Options{})
	must(t, err)
	_, err = st.Migrate(ctx)
	must(t, err)
	tn := store.Tenant{Slug: "t", Name: "T"}
	must(t, st.CreateTenant(ctx, &tn))
	hub := fleet.NewHub(nil)
	e := &env{t: t, st: st, hub: hub, tenant: tn.ID}
	if setup != nil {
		setup(e)
	}
	var es Store = st
	if e.engineStore != nil {
		es = e.engineStore
	}
	e.eng = New(Options{Store: es, Hub: hub, PublicURL: "https://fleet.example.com"})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = e.eng.Run(runCtx); close(done) }()
	e.stop = func() { cancel(); <-done; hub.Close(); st.Close() }
	return e
}

func (e *env) device(name string, tags ...string) string {
	e.t.Helper()
	d := store.Device{TenantID: e.tenant, Name: name, Tags: tags, SecretHash: make([]byte, 32)}
	must(e.t, e.st.CreateDevice(context.Background(), &d))
	return d.ID
}

func (e *env) channel(kind string) string {
	e.t.Helper()
	c := store.AlertChannel{TenantID: e.tenant, Name: kind, Kind: kind, Target: "https://hooks.example.com/" + kind, Options: "{}", Enabled: true}
	must(e.t, e.st.CreateAlertChannel(context.Background(), &c))
	return c.ID
}

func (e *env) rule(r store.AlertRule) store.AlertRule {
	e.t.Helper()
	r.TenantID, r.Enabled = e.tenant, true
	if r.Name == "" {
		r.Name = r.Kind
	}
	must(e.t, ValidateRule(&r))
	must(e.t, e.st.CreateAlertRule(context.Background(), &r))
	return r
}

func (e *env) publish(typ, device string, data any) {
	e.hub.Publish(fleet.Event{Type: typ, TenantID: e.tenant, DeviceID: device, At: time.Now(), Data: data})
}

func (e *env) alerts() []store.Alert {
	e.t.Helper()
	p, err := e.st.ListAlerts(context.Background(), e.tenant, store.AlertFilter{}, store.ListOptions{Limit: store.MaxPageSize})
	must(e.t, err)
	return p.Items
}

func (e *env) deliveries() []store.AlertDelivery {
	e.t.Helper()
	p, err := e.st.ListAlertDeliveries(context.Background(), e.tenant, store.DeliveryFilter{}, store.ListOptions{Limit: store.MaxPageSize})
	must(e.t, err)
	return p.Items
}

func message(t *testing.T, d store.AlertDelivery) Message {
	t.Helper()
	var m Message
	must(t, json.Unmarshal([]byte(d.Payload), &m))
	return m
}

// A burst of 500 devices going offline is one alert and one delivery per channel; they
// coming back resolves it; the cooldown keeps the next burst quiet.
func TestOfflineBurstIsOneNotificationPerChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		var kitchen []string
		for i := range 500 {
			kitchen = append(kitchen, e.device(fmt.Sprintf("k%03d", i), "kitchen"))
		}
		garage := e.device("garage", "garage")
		hook, mail := e.channel("webhook"), e.channel("email")
		e.rule(store.AlertRule{Kind: KindDeviceOffline, Tag: "kitchen", Params: `{"minutes":5}`,
			ChannelIDs: []string{hook, mail}, CooldownSeconds: 3600})

		for _, id := range append(kitchen, garage) {
			e.publish(fleet.EventPresence, id, fleet.PresenceEvent{Online: false})
		}
		testclock.Advance(4 * time.Minute)
		if got := e.alerts(); len(got) != 0 {
			t.Fatalf("after 4 minutes offline: %d alerts, want none yet", len(got))
		}
		testclock.Advance(2 * time.Minute) // threshold, one sweep and the group window
		got := e.alerts()
		if len(got) != 1 {
			t.Fatalf("after 6 minutes offline: %d alerts, want 1", len(got))
		}
		a := got[0]
		if a.State != store.AlertFiring || len(a.Subjects) != 500 {
			t.Fatalf("alert = %s with %d subjects, want firing with the 500 kitchen devices", a.State, len(a.Subjects))
		}
		ds := e.deliveries()
		if len(ds) != 2 {
			t.Fatalf("%d deliveries, want one per channel (2)", len(ds))
		}
		for _, d := range ds {
			m := message(t, d)
			if m.Type != "alert.firing" || m.Data.SubjectCount != 500 || len(m.Data.Subjects) != MaxPayloadSubjects || d.AlertID != a.ID {
				t.Errorf("delivery to %s: %s with %d of %d subjects", d.ChannelID, m.Type, len(m.Data.Subjects), m.Data.SubjectCount)
			}
		}

		// All but one come back: still firing; the last one resolves it.
		for _, id := range kitchen[1:] {
			e.publish(fleet.EventPresence, id, fleet.PresenceEvent{Online: true})
		}
		testclock.Advance(time.Second)
		if a, err := e.st.Alert(context.Background(), e.tenant, a.ID); err != nil || a.State != store.AlertFiring {
			t.Fatalf("with one device still offline: alert %s, %v; want firing", a.State, err)
		}
		e.publish(fleet.EventPresence, kitchen[0], fleet.PresenceEvent{Online: true})
		testclock.Advance(time.Second)
		if a, err := e.st.Alert(context.Background(), e.tenant, a.ID); err != nil || a.State != store.AlertResolved {
			t.Fatalf("with every device back: alert %s, %v; want resolved", a.State, err)
		}
		if ds := e.deliveries(); len(ds) != 4 || message(t, ds[3]).Type != "alert.resolved" {
			t.Fatalf("%d deliveries after resolution, want 4 ending with alert.resolved", len(ds))
		}

		// Within the cooldown the same devices going offline again notify nobody.
		for _, id := range kitchen {
			e.publish(fleet.EventPresence, id, fleet.PresenceEvent{Online: false})
		}
		testclock.Advance(10 * time.Minute)
		if got := e.alerts(); len(got) != 1 {
			t.Fatalf("offline again within the cooldown: %d alerts, want still 1", len(got))
		}
	})
}

// Each other rule kind fires on its events and only on them.
func TestRuleKinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		dev := e.device("sensor", "lab")
		other := e.device("other")
		hook := e.channel("webhook")
		auth := e.rule(store.AlertRule{Kind: KindAuthFailures, Params: `{"minutes":10,"count":3}`, ChannelIDs: []string{hook}})
		errNew := e.rule(store.AlertRule{Kind: KindErrorNew, Tag: "lab", ChannelIDs: []string{hook}})
		errRate := e.rule(store.AlertRule{Kind: KindErrorRate, Params: `{"minutes":5,"count":3}`, ChannelIDs: []string{hook}})
		roll := e.rule(store.AlertRule{Kind: KindRollout, Params: `{"states":["paused"]}`, ChannelIDs: []string{hook}})
		cfg := e.rule(store.AlertRule{Kind: KindConfigNotApplied, Params: `{"minutes":10}`, ChannelIDs: []string{hook}})
		online := e.rule(store.AlertRule{Kind: KindDeviceOnline, Params: `{"minutes":30}`, ChannelIDs: []string{hook}})

		// Two auth failures: nothing; the third within ten minutes fires.
		e.publish(fleet.EventAuthFailed, dev, nil)
		e.publish(fleet.EventAuthFailed, dev, nil)
		e.publish(fleet.EventAuthFailed, other, nil)
		// A new error group on the lab device (and one on a device outside the tag).
		e.publish(devicerrors.EventError, dev, devicerrors.ErrorEvent{GroupID: "g1", New: true, Type: "panic", Message: "boom", Count: 1})
		e.publish(devicerrors.EventError, other, devicerrors.ErrorEvent{GroupID: "g2", New: true, Type: "panic", Message: "x", Count: 1})
		// A rollout completes (not watched), then pauses.
		e.publish(ota.EventRollout, "", ota.RolloutEvent{ID: "r1", State: "completed"})
		e.publish(ota.EventRollout, "", ota.RolloutEvent{ID: "r2", State: "paused", PauseReason: "failure threshold"})
		// A config goes pending; a device comes back after 10 minutes (below the rule's 30).
		e.publish(devconfig.EventConfig, dev, devconfig.Sync{State: store.ConfigPending, DesiredVersion: 2})
		e.publish(fleet.EventPresence, other, fleet.PresenceEvent{Online: false})
		testclock.Advance(time.Minute)
		e.publish(fleet.EventAuthFailed, dev, nil)
		testclock.Advance(9 * time.Minute)
		e.publish(fleet.EventPresence, other, fleet.PresenceEvent{Online: true})
		testclock.Advance(time.Minute)

		byRule := map[string][]store.Alert{}
		for _, a := range e.alerts() {
			byRule[a.RuleID] = append(byRule[a.RuleID], a)
		}
		check := func(name string, r store.AlertRule, subjects int) {
			t.Helper()
			got := byRule[r.ID]
			switch {
			case subjects == 0 && len(got) != 0:
				t.Errorf("%s: %d alerts, want none", name, len(got))
			case subjects > 0 && len(got) != 1:
				t.Errorf("%s: %d alerts, want 1", name, len(got))
			case subjects > 0 && len(got[0].Subjects) != subjects:
				t.Errorf("%s: subjects %v, want %d", name, got[0].Subjects, subjects)
			}
		}
		check("auth failures", auth, 1)
		check("new error group in the tag", errNew, 1)
		check("error rate below the count", errRate, 0)
		check("rollout paused", roll, 1)
		check("config not applied in 10 minutes", cfg, 1)
		check("back online after less than the rule's minutes", online, 0)
		if got := byRule[roll.ID]; len(got) == 1 && got[0].Subjects[0] != "r2 paused: failure threshold" {
			t.Errorf("rollout subject = %q", got[0].Subjects[0])
		}

		// Errors above the rate fire; the config applied resolves its alert.
		for range 4 {
			e.publish(devicerrors.EventError, dev, devicerrors.ErrorEvent{GroupID: "g1", Count: 2})
		}
		e.publish(devconfig.EventConfig, dev, devconfig.Sync{State: store.ConfigInSync, AppliedVersion: 2})
		testclock.Advance(time.Minute)
		rate, err := e.st.ListAlerts(context.Background(), e.tenant, store.AlertFilter{RuleID: errRate.ID}, store.ListOptions{})
		must(t, err)
		if len(rate.Items) != 1 {
			t.Errorf("4 errors within 5 minutes over a count of 3: %d alerts, want 1", len(rate.Items))
		}
		resolved, err := e.st.ListAlerts(context.Background(), e.tenant, store.AlertFilter{RuleID: cfg.ID, State: store.AlertResolved}, store.ListOptions{})
		must(t, err)
		if len(resolved.Items) != 1 {
			t.Errorf("config applied: %d resolved config alerts, want 1", len(resolved.Items))
		}
	})
}

// Events reach only the engine of the replica that produced them, so a timer that runs out
// reads the device first: one that came back or applied its config through another replica
// (the store says so, no event came here) is not notified, and leaves the alerts it is in.
func TestTimerChecksTheStoreBeforeNotifying(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e := newEnv(t)
		defer e.stop()
		hook := e.channel("webhook")
		offline5 := e.rule(store.AlertRule{Kind: KindDeviceOffline, Params: `{"minutes":5}`, ChannelIDs: []string{hook}})
		offline10 := e.rule(store.AlertRule{Kind: KindDeviceOffline, Params: `{"minutes":10}`, ChannelIDs: []string{hook}})
		config := e.rule(store.AlertRule{Kind: KindConfigNotApplied, Params: `{"minutes":5}`, ChannelIDs: []string{hook}})
		back, down := e.device("back"), e.device("down")
		applied, pending := e.device("applied"), e.device("pending")
		syncState := func(id string, state store.ConfigSyncState) {
			must(t, e.st.SetDeviceConfigSync(ctx, e.tenant, id, store.ConfigSync{DesiredVersion: 2, AppliedVersion: 1, State: state, UpdatedAt: time.Now()}))
		}
		for _, id := range []string{back, down} {
			must(t, e.st.SetDevicePresence(ctx, e.tenant, id, store.Presence{Online: false, ChangedAt: time.Now(), LastSeenAt: time.Now()}))
			e.publish(fleet.EventPresence, id, fleet.PresenceEvent{Online: false})
		}
		for _, id := range []string{applied, pending} {
			syncState(id, store.ConfigPending)
			e.publish(devconfig.EventConfig, id, devconfig.Sync{State: store.ConfigPending, DesiredVersion: 2, AppliedVersion: 1})
		}
		testclock.Advance(time.Minute)
		// Another replica takes the device back online and the config acknowledgement.
		must(t, e.st.SetDevicePresence(ctx, e.tenant, back, store.Presence{Online: true, ChangedAt: time.Now(), LastSeenAt: time.Now()}))
		syncState(applied, store.ConfigInSync)
		testclock.Advance(5 * time.Minute)

		subjects := func(r store.AlertRule) [][]string {
			t.Helper()
			p, err := e.st.ListAlerts(ctx, e.tenant, store.AlertFilter{RuleID: r.ID}, store.ListOptions{})
			must(t, err)
			var out [][]string
			for _, a := range p.Items {
				out = append(out, a.Subjects)
			}
			return out
		}
		if got := subjects(offline5); !slices.EqualFunc(got, [][]string{{down}}, slices.Equal) {
			t.Errorf("offline 5 min: alerts %v, want one for %s (not %s, back online elsewhere)", got, down, back)
		}
		if got := subjects(config); !slices.EqualFunc(got, [][]string{{pending}}, slices.Equal) {
			t.Errorf("config not applied in 5 min: alerts %v, want one for %s (not %s, applied elsewhere)", got, pending, applied)
		}

		// "down" comes back elsewhere too: when the 10-minute timer runs out it is not
		// notified, and the 5-minute alert listing it resolves.
		must(t, e.st.SetDevicePresence(ctx, e.tenant, down, store.Presence{Online: true, ChangedAt: time.Now(), LastSeenAt: time.Now()}))
		testclock.Advance(5 * time.Minute)
		if got := subjects(offline10); len(got) != 0 {
			t.Errorf("offline 10 min after coming back elsewhere: alerts %v, want none", got)
		}
		p, err := e.st.ListAlerts(ctx, e.tenant, store.AlertFilter{RuleID: offline5.ID, State: store.AlertResolved}, store.ListOptions{})
		must(t, err)
		if len(p.Items) != 1 {
			t.Errorf("offline 5 min alert after its device came back elsewhere: %d resolved, want 1", len(p.Items))
		}
	})
}

// An open alert whose devices came back, or applied their config, through another replica (no
// event here) is resolved once the engine checks its devices against the store.
func TestOpenAlertsResolveWhenDevicesLeftElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e := newEnv(t)
		defer e.stop()
		hook := e.channel("webhook")
		offline := e.rule(store.AlertRule{Kind: KindDeviceOffline, Params: `{"minutes":1}`, ChannelIDs: []string{hook}})
		config := e.rule(store.AlertRule{Kind: KindConfigNotApplied, Params: `{"minutes":1}`, ChannelIDs: []string{hook}})
		a, b, c := e.device("a"), e.device("b"), e.device("c")
		for _, id := range []string{a, b} {
			must(t, e.st.SetDevicePresence(ctx, e.tenant, id, store.Presence{Online: false, ChangedAt: time.Now(), LastSeenAt: time.Now()}))
			e.publish(fleet.EventPresence, id, fleet.PresenceEvent{Online: false})
		}
		must(t, e.st.SetDeviceConfigSync(ctx, e.tenant, c, store.ConfigSync{DesiredVersion: 2, AppliedVersion: 1, State: store.ConfigPending, UpdatedAt: time.Now()}))
		e.publish(devconfig.EventConfig, c, devconfig.Sync{State: store.ConfigPending, DesiredVersion: 2, AppliedVersion: 1})
		testclock.Advance(2 * time.Minute)
		state := func(r store.AlertRule) store.AlertState {
			t.Helper()
			p, err := e.st.ListAlerts(ctx, e.tenant, store.AlertFilter{RuleID: r.ID}, store.ListOptions{})
			must(t, err)
			if len(p.Items) != 1 {
				for _, a := range p.Items {
					t.Logf("alert %s: %v, fired %v", a.State, a.Subjects, a.FiredAt)
				}
				t.Fatalf("rule %s: %d alerts, want 1", r.Kind, len(p.Items))
			}
			return p.Items[0].State
		}
		if state(offline) != store.AlertFiring || state(config) != store.AlertFiring {
			t.Fatalf("alerts not firing: offline %s, config %s", state(offline), state(config))
		}

		// Another replica takes a back online and c's acknowledgement: no event reaches here.
		must(t, e.st.SetDevicePresence(ctx, e.tenant, a, store.Presence{Online: true, ChangedAt: time.Now(), LastSeenAt: time.Now()}))
		must(t, e.st.SetDeviceConfigSync(ctx, e.tenant, c, store.ConfigSync{DesiredVersion: 2, AppliedVersion: 2, State: store.ConfigInSync, UpdatedAt: time.Now()}))
		testclock.Advance(DefaultReconcileInterval + DefaultSweepInterval)
		if got := state(offline); got != store.AlertFiring {
			t.Errorf("offline alert with b still offline: %s, want firing", got)
		}
		if got := state(config); got != store.AlertResolved {
			t.Errorf("config alert after c applied its config elsewhere: %s, want resolved", got)
		}
		must(t, e.st.SetDevicePresence(ctx, e.tenant, b, store.Presence{Online: true, ChangedAt: time.Now(), LastSeenAt: time.Now()}))
		testclock.Advance(DefaultReconcileInterval + DefaultSweepInterval)
		if got := state(offline); got != store.AlertResolved {
			t.Errorf("offline alert after a and b came back elsewhere: %s, want resolved", got)
		}
		resolved := 0
		for _, d := range e.deliveries() {
			if message(t, d).Type == "alert.resolved" {
				resolved++
			}
		}
		if resolved != 2 {
			t.Errorf("%d alert.resolved deliveries, want one per alert (2)", resolved)
		}
	})
}

func TestValidateRule(t *testing.T) {
	for _, c := range []struct {
		name  string
		rule  store.AlertRule
		field string
	}{
		{"no name", store.AlertRule{Kind: KindErrorNew}, "name"},
		{"unknown kind", store.AlertRule{Name: "x", Kind: "cpu"}, "kind"},
		{"offline without minutes", store.AlertRule{Name: "x", Kind: KindDeviceOffline}, "params.minutes"},
		{"rate without count", store.AlertRule{Name: "x", Kind: KindErrorRate, Params: `{"minutes":5}`}, "params.count"},
		{"bad params", store.AlertRule{Name: "x", Kind: KindErrorNew, Params: `[1]`}, "params"},
		{"bad state", store.AlertRule{Name: "x", Kind: KindRollout, Params: `{"states":["gone"]}`}, "params.states[0]"},
		{"states on another kind", store.AlertRule{Name: "x", Kind: KindErrorNew, Params: `{"states":["paused"]}`}, "params.states"},
		{"negative cooldown", store.AlertRule{Name: "x", Kind: KindErrorNew, CooldownSeconds: -1}, "cooldown_seconds"},
		{"valid", store.AlertRule{Name: "x", Kind: KindRollout}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateRule(&c.rule)
			if c.field == "" {
				if err != nil {
					t.Fatalf("ValidateRule = %v, want nil", err)
				}
				if c.rule.Params != `{"states":["paused","aborted","completed"]}` {
					t.Errorf("normalised params = %s", c.rule.Params)
				}
				return
			}
			inv, ok := err.(*store.InvalidError)
			if !ok || inv.Fields[c.field] == "" {
				t.Fatalf("ValidateRule = %v, want an invalid %s", err, c.field)
			}
		})
	}
}

// readCounter counts the engine's device reads.
type readCounter struct {
	Store
	mu      sync.Mutex
	single  int   // Device
	batches []int // ListDevices by IDs: how many IDs each asked for
}

func (r *readCounter) Device(ctx context.Context, tenantID, id string) (store.Device, error) {
	r.mu.Lock()
	r.single++
	r.mu.Unlock()
	return r.Store.Device(ctx, tenantID, id)
}

func (r *readCounter) ListDevices(ctx context.Context, tenantID string, f store.DeviceFilter, opts store.ListOptions) (store.Page[store.Device], error) {
	if len(f.IDs) > 0 {
		r.mu.Lock()
		r.batches = append(r.batches, len(f.IDs))
		r.mu.Unlock()
	}
	return r.Store.ListDevices(ctx, tenantID, f, opts)
}

func (r *readCounter) reset() (single int, batches []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	single, batches = r.single, r.batches
	r.single, r.batches = 0, nil
	return single, batches
}

// The engine's periodic reads of the devices of an outage (the check of open alerts against
// the store, the refresh of their scope facts) go in batches by ID: 600 offline devices are two
// reads per check, not 600. A device deleted meanwhile leaves the alert.
func TestReconcileReadsOpenAlertDevicesInBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var counter *readCounter
		e := newEnvWith(t, func(e *env) {
			counter = &readCounter{Store: e.st}
			e.engineStore = counter
		})
		defer e.stop()
		hook := e.channel("webhook")
		offline := e.rule(store.AlertRule{Kind: KindDeviceOffline, Params: `{"minutes":1}`, ChannelIDs: []string{hook}})
		const n = store.MaxPageSize + 100
		ids := make([]string, n)
		for i := range ids {
			ids[i] = e.device(fmt.Sprintf("d%03d", i))
			must(t, e.st.SetDevicePresence(ctx, e.tenant, ids[i], store.Presence{Online: false, ChangedAt: time.Now(), LastSeenAt: time.Now()}))
			e.publish(fleet.EventPresence, ids[i], fleet.PresenceEvent{Online: false})
		}
		testclock.Advance(2 * time.Minute)
		// Bursts are grouped by a window, so the outage is one alert or a few.
		alerts := func() []store.Alert {
			t.Helper()
			p, err := e.st.ListAlerts(ctx, e.tenant, store.AlertFilter{RuleID: offline.ID}, store.ListOptions{})
			must(t, err)
			return p.Items
		}
		listed := 0
		for _, a := range alerts() {
			if a.State != store.AlertFiring {
				t.Errorf("alert %s is %s after the outage, want firing", a.ID, a.State)
			}
			listed += len(a.Subjects)
		}
		if listed != n {
			t.Fatalf("the outage's alerts list %d devices, want %d", listed, n)
		}

		counter.reset()
		testclock.Advance(DefaultReconcileInterval + DefaultSweepInterval)
		single, batches := counter.reset()
		if single != 0 {
			t.Errorf("a check of the open alerts read %d devices one by one, want none", single)
		}
		if len(batches) == 0 || len(batches) > 6 {
			t.Errorf("a minute of checks read %d batches %v, want a few (the open alerts' check and the scope refresh, two each)", len(batches), batches)
		}
		for _, b := range batches {
			if b > store.MaxPageSize {
				t.Errorf("a batch asked for %d devices, more than a page (%d)", b, store.MaxPageSize)
			}
		}

		// All but one come back elsewhere; the last is deleted.
		for _, id := range ids[:n-1] {
			must(t, e.st.SetDevicePresence(ctx, e.tenant, id, store.Presence{Online: true, ChangedAt: time.Now(), LastSeenAt: time.Now()}))
		}
		must(t, e.st.DeleteDevice(ctx, e.tenant, ids[n-1]))
		testclock.Advance(DefaultReconcileInterval + DefaultSweepInterval)
		for _, a := range alerts() {
			if a.State != store.AlertResolved {
				t.Errorf("alert %s is %s after every device came back or was deleted, want resolved", a.ID, a.State)
			}
		}
	})
}
