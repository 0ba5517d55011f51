package alerts

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/espadmin/espadmin/server/devconfig"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/testclock"
)

// After a restart the engine picks up from the store: devices offline since before the start
// are timed from their last presence change (at once when already past the rule's minutes),
// devices an open alert lists already are not notified again, and open alerts resolve when
// their devices come back (or at once when they all came back while the engine was down).
func TestEngineSeedsFromStoreAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		start := time.Now()
		var long, recent, raced, listed, back, never, disabled string
		var rule store.AlertRule
		var openListed, openBack store.Alert
		e := newEnvWith(t, func(e *env) {
			offlineSince := func(id string, ago time.Duration) {
				at := start.Add(-ago)
				must(t, e.st.SetDevicePresence(ctx, e.tenant, id, store.Presence{Online: false, ChangedAt: at, LastSeenAt: at}))
			}
			long, recent, raced, listed = e.device("long"), e.device("recent"), e.device("raced"), e.device("listed")
			back, never = e.device("back"), e.device("never")
			d := store.Device{TenantID: e.tenant, Name: "disabled", Disabled: true, SecretHash: make([]byte, 32)}
			must(t, e.st.CreateDevice(ctx, &d))
			disabled = d.ID
			offlineSince(long, 10*time.Minute)
			offlineSince(recent, 2*time.Minute)
			offlineSince(raced, 2*time.Minute)
			offlineSince(listed, 30*time.Minute)
			offlineSince(disabled, 30*time.Minute)
			must(t, e.st.SetDevicePresence(ctx, e.tenant, back, store.Presence{Online: true, ChangedAt: start.Add(-time.Minute), LastSeenAt: start}))
			rule = e.rule(store.AlertRule{Kind: KindDeviceOffline, Params: `{"minutes":5}`, ChannelIDs: []string{e.channel("webhook")}})
			// Open alerts of the rule from before the restart: one still has an offline device,
			// the other's device came back while the engine was down.
			openListed = e.openAlert(rule, store.AlertFiring, start.Add(-20*time.Minute), listed, back)
			openBack = e.openAlert(rule, store.AlertAcknowledged, start.Add(-20*time.Minute), back)
		})
		defer e.stop()
		synctest.Wait()

		if a := e.alert(openBack.ID); a.State != store.AlertResolved {
			t.Errorf("open alert whose device came back during the restart: state %s, want resolved at start", a.State)
		}
		if a := e.alert(openListed.ID); a.State != store.AlertFiring {
			t.Errorf("open alert with a device still offline: state %s, want firing", a.State)
		}
		if n := e.resolvedSent(openBack.ID); n != 1 {
			t.Errorf("alert.resolved deliveries for the alert resolved at start: %d, want 1", n)
		}
		newAlerts := func() [][]string { return e.subjectsOfOthers(openListed.ID, openBack.ID) }
		// The device offline for 10 minutes notifies within a minute of the start; the one
		// an open alert lists, the disabled one and the one never online do not.
		testclock.Advance(time.Minute)
		if got := newAlerts(); !slices.EqualFunc(got, [][]string{{long}}, slices.Equal) {
			t.Fatalf("a minute after the start: new alerts %v, want one for %s only (not listed %s, disabled %s, never online %s)",
				got, long, listed, disabled, never)
		}
		// Another replica, which saw "raced" go offline, notifies it before this one's
		// (seeded) timer runs out; "recent" is notified here, 5 minutes after it went offline.
		testclock.Advance(time.Minute)
		e.openAlert(rule, store.AlertFiring, time.Now(), raced)
		testclock.Advance(3 * time.Minute)
		got := newAlerts()
		want := [][]string{{long}, {raced}, {recent}} // newest first: the other replica's, then this one's
		slices.SortFunc(got, func(a, b []string) int { return slices.Compare(a, b) })
		slices.SortFunc(want, func(a, b []string) int { return slices.Compare(a, b) })
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("5 minutes after the start: new alerts %v, want %v (recent %s, raced %s once)", got, want, recent, raced)
		}

		// The open alert from before the restart resolves when its last device comes back.
		e.publish(fleet.EventPresence, listed, fleet.PresenceEvent{Online: true})
		synctest.Wait()
		if a := e.alert(openListed.ID); a.State != store.AlertResolved {
			t.Errorf("open alert from before the restart after its device came back: state %s, want resolved", a.State)
		}
	})
}

// After a restart the engine picks up config delivery from the store too: a device whose
// config was pending before the start notifies once, its rule's minutes (and the grace of a
// seeded timer) after the version it should run was written; devices in sync, without a
// config, disabled, or listed by an open alert already are not notified; an open alert
// resolves when its device reports the config in sync, or at once when it is in sync already.
func TestEngineSeedsConfigFromStoreAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		start := time.Now()
		var late, failed, synced, applying, applied, fresh, disabled string
		var rule store.AlertRule
		var openApplying, openApplied store.Alert
		e := newEnvWith(t, func(e *env) {
			// version writes the device's config version 2 ago before the start and stores
			// its sync state as of changed before the start.
			version := func(id string, ago time.Duration, state store.ConfigSyncState, changed time.Duration) {
				v := store.ConfigVersion{TenantID: e.tenant, DeviceID: id, Version: 2, Hash: "sha256:2", Snapshot: "{}",
					Reason: devconfig.ReasonPush, CreatedAt: start.Add(-ago)}
				must(t, e.st.CreateConfigVersion(ctx, &v))
				cs := store.ConfigSync{DesiredVersion: 2, DesiredHash: v.Hash, AppliedVersion: 1, State: state, UpdatedAt: start.Add(-changed)}
				if state == store.ConfigInSync {
					cs.AppliedVersion = 2
				}
				must(t, e.st.SetDeviceConfigSync(ctx, e.tenant, id, cs))
			}
			late, failed, synced = e.device("late"), e.device("failed"), e.device("synced")
			applying, applied, fresh = e.device("applying"), e.device("applied"), e.device("fresh")
			d := store.Device{TenantID: e.tenant, Name: "disabled", Disabled: true, SecretHash: make([]byte, 32)}
			must(t, e.st.CreateDevice(ctx, &d))
			disabled = d.ID
			// Pending for 4 minutes; the sync state changed since (an older version's ack),
			// which does not restart the timer.
			version(late, 4*time.Minute, store.ConfigPending, time.Minute)
			version(failed, 4*time.Minute, store.ConfigFailed, 3*time.Minute)
			version(synced, 30*time.Minute, store.ConfigInSync, 29*time.Minute)
			version(applying, 30*time.Minute, store.ConfigPending, 30*time.Minute)
			version(applied, 30*time.Minute, store.ConfigInSync, 5*time.Minute)
			version(disabled, 30*time.Minute, store.ConfigPending, 30*time.Minute)
			rule = e.rule(store.AlertRule{Kind: KindConfigNotApplied, Params: `{"minutes":10}`, ChannelIDs: []string{e.channel("webhook")}})
			// Open alerts of the rule from before the restart: one's device still has its
			// config pending, the other's applied it while the engine was down.
			openApplying = e.openAlert(rule, store.AlertFiring, start.Add(-20*time.Minute), applying)
			openApplied = e.openAlert(rule, store.AlertAcknowledged, start.Add(-20*time.Minute), applied)
		})
		defer e.stop()
		synctest.Wait()

		// (c) The alert whose device applied its config while the engine was down.
		if a := e.alert(openApplied.ID); a.State != store.AlertResolved || e.resolvedSent(openApplied.ID) != 1 {
			t.Errorf("open alert whose device applied its config during the restart: state %s, %d alert.resolved deliveries; want resolved at start, 1",
				a.State, e.resolvedSent(openApplied.ID))
		}
		if a := e.alert(openApplying.ID); a.State != store.AlertFiring {
			t.Errorf("open alert with its device's config still pending: state %s, want firing", a.State)
		}

		newAlerts := func() [][]string { return e.subjectsOfOthers(openApplying.ID, openApplied.ID) }
		// (a) Not before the rule's 10 minutes and the grace have passed since the version
		// was written (6 minutes and 20 s after the start)...
		testclock.Advance(6 * time.Minute)
		if got := newAlerts(); len(got) != 0 {
			t.Errorf("6 minutes after the start (10 after the version): new alerts %v, want none before the grace ran out", got)
		}
		// ...then exactly one, for the pending and the failed device; (d) none for the
		// device in sync, the one with no config, the disabled one or the one an open alert
		// lists already, though their versions are older than the rule's minutes.
		testclock.Advance(time.Minute)
		want := []string{late, failed}
		slices.Sort(want)
		if got := newAlerts(); !slices.EqualFunc(got, [][]string{want}, slices.Equal) {
			t.Errorf("7 minutes after the start: new alerts %v, want one for %v (late, failed) only (not synced %s, fresh %s, disabled %s, applying %s)",
				got, want, synced, fresh, disabled, applying)
		}
		testclock.Advance(30 * time.Minute)
		if got := newAlerts(); len(got) != 1 {
			t.Errorf("37 minutes after the start: new alerts %v, want still the one", got)
		}

		// (b) The open alert from before the restart resolves when its device reports the
		// config in sync.
		e.publish(devconfig.EventConfig, applying, devconfig.Sync{State: store.ConfigInSync, DesiredVersion: 2, AppliedVersion: 2})
		synctest.Wait()
		if a := e.alert(openApplying.ID); a.State != store.AlertResolved || e.resolvedSent(openApplying.ID) != 1 {
			t.Errorf("open alert from before the restart after its device applied the config: state %s, %d alert.resolved deliveries; want resolved, 1",
				a.State, e.resolvedSent(openApplying.ID))
		}
	})
}

// openAlert stores an open alert of rule, as an engine before the restart left it.
func (e *env) openAlert(r store.AlertRule, state store.AlertState, firedAt time.Time, subjects ...string) store.Alert {
	e.t.Helper()
	a := store.Alert{TenantID: e.tenant, RuleID: r.ID, RuleName: r.Name, Kind: r.Kind, State: state, Subjects: subjects, FiredAt: firedAt}
	must(e.t, e.st.CreateAlert(context.Background(), &a))
	return a
}

func (e *env) alert(id string) store.Alert {
	e.t.Helper()
	a, err := e.st.Alert(context.Background(), e.tenant, id)
	must(e.t, err)
	return a
}

// resolvedSent counts the alert.resolved messages queued for the alert.
func (e *env) resolvedSent(id string) int {
	e.t.Helper()
	n := 0
	for _, d := range e.deliveries() {
		if m := message(e.t, d); m.Type == "alert.resolved" && m.Data.AlertID == id {
			n++
		}
	}
	return n
}

// subjectsOfOthers returns the sorted subjects of each alert but the given ones.
func (e *env) subjectsOfOthers(ids ...string) [][]string {
	e.t.Helper()
	var out [][]string
	for _, a := range e.alerts() {
		if !slices.Contains(ids, a.ID) {
			s := slices.Clone(a.Subjects)
			slices.Sort(s)
			out = append(out, s)
		}
	}
	return out
}

// A device seeded at start (offline in the store) whose offline event then reaches this
// replica is this replica's to notify: it notifies on the rule's minutes, without the grace
// a seeded timer waits for another replica.
func TestSeededEpisodeBecomesOwnOnEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		start := time.Now()
		var seen, quiet string
		e := newEnvWith(t, func(e *env) {
			seen, quiet = e.device("seen"), e.device("quiet")
			for _, id := range []string{seen, quiet} {
				must(t, e.st.SetDevicePresence(ctx, e.tenant, id, store.Presence{Online: false, ChangedAt: start, LastSeenAt: start}))
			}
			e.rule(store.AlertRule{Kind: KindDeviceOffline, Params: `{"minutes":1}`, ChannelIDs: []string{e.channel("webhook")}})
		})
		defer e.stop()
		synctest.Wait() // seeded: both offline since the start
		e.publish(fleet.EventPresence, seen, fleet.PresenceEvent{Online: false})
		// Due at one minute; the group window and a sweep later the alert is stored. The
		// seeded timer of "quiet" waits seedGrace longer.
		testclock.Advance(time.Minute + DefaultGroupWindow + DefaultSweepInterval)
		var got [][]string
		for _, a := range e.alerts() {
			got = append(got, a.Subjects)
		}
		if !slices.EqualFunc(got, [][]string{{seen}}, slices.Equal) {
			t.Fatalf("at the rule's minute and a window: alerts %v, want one for %s (the event's) only", got, seen)
		}
		testclock.Advance(e.eng.seedGrace() + DefaultGroupWindow + DefaultSweepInterval)
		got = nil
		for _, a := range e.alerts() {
			got = append(got, a.Subjects)
		}
		slices.SortFunc(got, func(a, b []string) int { return slices.Compare(a, b) })
		want := [][]string{{quiet}, {seen}}
		slices.SortFunc(want, func(a, b []string) int { return slices.Compare(a, b) })
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("after the grace: alerts %v, want %v", got, want)
		}
	})
}

// A seeded device that another replica notifies while this replica's alert is still
// collecting (the group window) is left out of it: the open alerts are checked again when
// the alert is stored, so both replicas starting at once do not notify it twice.
func TestSeededSubjectNotifiedElsewhereDuringWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		start := time.Now()
		var raced, alone string
		var rule store.AlertRule
		e := newEnvWith(t, func(e *env) {
			raced, alone = e.device("raced"), e.device("alone")
			for _, id := range []string{raced, alone} {
				at := start.Add(-2 * time.Minute)
				must(t, e.st.SetDevicePresence(ctx, e.tenant, id, store.Presence{Online: false, ChangedAt: at, LastSeenAt: at}))
			}
			rule = e.rule(store.AlertRule{Kind: KindDeviceOffline, Params: `{"minutes":5}`, ChannelIDs: []string{e.channel("webhook")}})
		})
		defer e.stop()
		synctest.Wait()
		// Offline since 2 minutes before the start: due 3 minutes after it, plus the grace;
		// taken into this replica's group at the next sweep, stored a window later.
		added := 3*time.Minute + e.eng.seedGrace()
		testclock.Advance(added + DefaultSweepInterval)
		if got := e.alerts(); len(got) != 0 {
			t.Fatalf("within the group window: %d alerts stored, want none yet", len(got))
		}
		other := e.openAlert(rule, store.AlertFiring, time.Now(), raced) // the other replica's
		testclock.Advance(DefaultGroupWindow + DefaultSweepInterval)
		got := e.subjectsOfOthers(other.ID)
		if !slices.EqualFunc(got, [][]string{{alone}}, slices.Equal) {
			t.Fatalf("after the window: this replica's alerts %v, want one for %s only (not %s, notified elsewhere)", got, alone, raced)
		}
	})
}
