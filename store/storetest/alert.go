package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
)

func fullAlertChannel(f *fixture, tenantID string) store.AlertChannel {
	return store.AlertChannel{
		ID: f.id(), TenantID: tenantID, Name: "Ops webhook", Kind: "webhook", Target: "https://hooks.example.com/x",
		Options: `{"preset":"slack"}`, SecretSealed: []byte{1, 2, 3, 0, 255}, Enabled: true,
		CreatedAt: at(1), UpdatedAt: at(2),
	}
}

func fullAlertRule(f *fixture, tenantID string, channelIDs []string) store.AlertRule {
	return store.AlertRule{
		ID: f.id(), TenantID: tenantID, Name: "Offline 5 min", Kind: "device_offline", ProjectID: "p1", Tag: "kitchen",
		DeviceID: "d1", Params: `{"minutes":5}`, ChannelIDs: channelIDs, CooldownSeconds: 600, Enabled: true,
		CreatedBy: "user-1", CreatedAt: at(3), UpdatedAt: at(4),
	}
}

func fullAlert(f *fixture, tenantID, ruleID string) store.Alert {
	return store.Alert{
		ID: f.id(), TenantID: tenantID, RuleID: ruleID, RuleName: "Offline 5 min", Kind: "device_offline",
		State: store.AlertFiring, Summary: "2 devices offline", Subjects: []string{"d1", "d2"},
		FiredAt: at(10), UpdatedAt: at(10),
	}
}

func fullAlertDelivery(f *fixture, tenantID, channelID, alertID string, due int) store.AlertDelivery {
	return store.AlertDelivery{
		ID: f.id(), TenantID: tenantID, ChannelID: channelID, AlertID: alertID, MessageID: "msg_" + f.id(),
		Payload: `{"type":"alert.firing"}`, State: store.DeliveryPending, NextAttemptAt: at(due),
		CreatedAt: at(due), UpdatedAt: at(due),
	}
}

func testAlert(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"ChannelRoundTrip", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			in := fullAlertChannel(f, tn.ID)
			want := in
			f.must(t, f.s.CreateAlertChannel(ctx, &in), "CreateAlertChannel")
			got, err := f.s.AlertChannel(ctx, tn.ID, in.ID)
			f.must(t, err, "AlertChannel")
			f.equal(t, "AlertChannel after create", got, want)

			got.Name, got.Target, got.Options, got.SecretSealed, got.Enabled = "Renamed", "https://b.example.com", "{}", nil, false
			f.must(t, f.s.UpdateAlertChannel(ctx, &got), "UpdateAlertChannel")
			again, err := f.s.AlertChannel(ctx, tn.ID, in.ID)
			f.must(t, err, "AlertChannel")
			if again.Name != "Renamed" || again.Target != "https://b.example.com" || again.Enabled || len(again.SecretSealed) != 0 {
				t.Errorf("%s: channel after update = %+v", f.s.Backend(), again)
			}
			other := f.tenant(t)
			if _, err := f.s.AlertChannel(ctx, other.ID, in.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: AlertChannel from another tenant: %v, want ErrNotFound", f.s.Backend(), err)
			}
			page, err := f.s.ListAlertChannels(ctx, tn.ID, store.ListOptions{})
			f.must(t, err, "ListAlertChannels")
			if len(page.Items) != 1 {
				t.Errorf("%s: ListAlertChannels = %d, want 1", f.s.Backend(), len(page.Items))
			}
			f.must(t, f.s.DeleteAlertChannel(ctx, tn.ID, in.ID), "DeleteAlertChannel")
			if err := f.s.DeleteAlertChannel(ctx, tn.ID, in.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: second DeleteAlertChannel: %v, want ErrNotFound", f.s.Backend(), err)
			}
		}},
		{"RuleRoundTrip", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			in := fullAlertRule(f, tn.ID, []string{"c1", "c2"})
			want := in
			f.must(t, f.s.CreateAlertRule(ctx, &in), "CreateAlertRule")
			got, err := f.s.AlertRule(ctx, tn.ID, in.ID)
			f.must(t, err, "AlertRule")
			f.equal(t, "AlertRule after create", got, want)

			got.Name, got.Kind, got.Params, got.ChannelIDs, got.CooldownSeconds, got.Enabled = "B", "device_online", `{"minutes":1}`, []string{"c3"}, 0, false
			got.ProjectID, got.Tag, got.DeviceID = "", "", ""
			f.must(t, f.s.UpdateAlertRule(ctx, &got), "UpdateAlertRule")
			again, err := f.s.AlertRule(ctx, tn.ID, in.ID)
			f.must(t, err, "AlertRule")
			f.equal(t, "AlertRule after update", again, got)

			other := f.tenant(t)
			if err := f.s.DeleteAlertRule(ctx, other.ID, in.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: DeleteAlertRule from another tenant: %v, want ErrNotFound", f.s.Backend(), err)
			}
			f.must(t, f.s.DeleteAlertRule(ctx, tn.ID, in.ID), "DeleteAlertRule")
			if _, err := f.s.AlertRule(ctx, tn.ID, in.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: AlertRule after delete: %v, want ErrNotFound", f.s.Backend(), err)
			}
		}},
		{"AlertLifecycle", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			in := fullAlert(f, tn.ID, "r1")
			want := in
			f.must(t, f.s.CreateAlert(ctx, &in), "CreateAlert")
			got, err := f.s.Alert(ctx, tn.ID, in.ID)
			f.must(t, err, "Alert")
			f.equal(t, "Alert after create", got, want)

			f.must(t, f.s.AcknowledgeAlert(ctx, tn.ID, in.ID, "user-7", at(11)), "AcknowledgeAlert")
			if err := f.s.AcknowledgeAlert(ctx, tn.ID, in.ID, "user-8", at(12)); !errors.Is(err, store.ErrConflict) {
				t.Errorf("%s: second AcknowledgeAlert: %v, want ErrConflict", f.s.Backend(), err)
			}
			got, err = f.s.Alert(ctx, tn.ID, in.ID)
			f.must(t, err, "Alert")
			if got.State != store.AlertAcknowledged || got.AcknowledgedBy != "user-7" || got.AcknowledgedAt == nil || !got.AcknowledgedAt.Equal(at(11)) {
				t.Errorf("%s: acknowledged alert = %+v", f.s.Backend(), got)
			}
			f.must(t, f.s.ResolveAlert(ctx, tn.ID, in.ID, at(13)), "ResolveAlert")
			if err := f.s.ResolveAlert(ctx, tn.ID, in.ID, at(14)); !errors.Is(err, store.ErrConflict) {
				t.Errorf("%s: second ResolveAlert: %v, want ErrConflict", f.s.Backend(), err)
			}
			got, err = f.s.Alert(ctx, tn.ID, in.ID)
			f.must(t, err, "Alert")
			if got.State != store.AlertResolved || got.ResolvedAt == nil || !got.ResolvedAt.Equal(at(13)) || got.AcknowledgedBy != "user-7" {
				t.Errorf("%s: resolved alert = %+v", f.s.Backend(), got)
			}

			// A resolved alert can still be acknowledged once, and stays resolved.
			r := fullAlert(f, tn.ID, "r2")
			f.must(t, f.s.CreateAlert(ctx, &r), "CreateAlert")
			f.must(t, f.s.ResolveAlert(ctx, tn.ID, r.ID, at(20)), "ResolveAlert")
			f.must(t, f.s.AcknowledgeAlert(ctx, tn.ID, r.ID, "user-9", at(21)), "AcknowledgeAlert of a resolved alert")
			got, err = f.s.Alert(ctx, tn.ID, r.ID)
			f.must(t, err, "Alert")
			if got.State != store.AlertResolved || got.AcknowledgedBy != "user-9" {
				t.Errorf("%s: acknowledged resolved alert = %+v", f.s.Backend(), got)
			}

			other := f.tenant(t)
			if err := f.s.AcknowledgeAlert(ctx, other.ID, r.ID, "x", at(22)); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: AcknowledgeAlert from another tenant: %v, want ErrNotFound", f.s.Backend(), err)
			}
			if err := f.s.ResolveAlert(ctx, other.ID, in.ID, at(22)); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: ResolveAlert from another tenant: %v, want ErrNotFound", f.s.Backend(), err)
			}

			id := func(a store.Alert) string { return a.ID }
			all, err := f.s.ListAlerts(ctx, tn.ID, store.AlertFilter{}, store.ListOptions{Desc: true})
			f.must(t, err, "ListAlerts")
			f.equalKeys(t, "ListAlerts newest first", keys(all.Items, id), []string{r.ID, in.ID})
			byRule, err := f.s.ListAlerts(ctx, tn.ID, store.AlertFilter{RuleID: "r2", State: store.AlertResolved}, store.ListOptions{})
			f.must(t, err, "ListAlerts by rule")
			f.equalKeys(t, "ListAlerts by rule and state", keys(byRule.Items, id), []string{r.ID})
			firing, err := f.s.ListAlerts(ctx, tn.ID, store.AlertFilter{State: store.AlertFiring}, store.ListOptions{})
			f.must(t, err, "ListAlerts firing")
			f.equalKeys(t, "ListAlerts firing", keys(firing.Items, id), nil)
		}},
		{"DeliveryRoundTripAndList", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			ch := fullAlertChannel(f, tn.ID)
			f.must(t, f.s.CreateAlertChannel(ctx, &ch), "CreateAlertChannel")
			ch2 := fullAlertChannel(f, tn.ID)
			f.must(t, f.s.CreateAlertChannel(ctx, &ch2), "CreateAlertChannel")
			in := fullAlertDelivery(f, tn.ID, ch.ID, "a1", 30)
			want := in
			f.must(t, f.s.CreateAlertDelivery(ctx, &in), "CreateAlertDelivery")
			got, err := f.s.AlertDelivery(ctx, tn.ID, in.ID)
			f.must(t, err, "AlertDelivery")
			f.equal(t, "AlertDelivery after create", got, want)
			d2 := fullAlertDelivery(f, tn.ID, ch2.ID, "a2", 31)
			f.must(t, f.s.CreateAlertDelivery(ctx, &d2), "CreateAlertDelivery")

			id := func(d store.AlertDelivery) string { return d.ID }
			for _, c := range []struct {
				name string
				f    store.DeliveryFilter
				want []string
			}{
				{"none", store.DeliveryFilter{}, []string{in.ID, d2.ID}},
				{"channel", store.DeliveryFilter{ChannelID: ch2.ID}, []string{d2.ID}},
				{"alert", store.DeliveryFilter{AlertID: "a1"}, []string{in.ID}},
				{"state", store.DeliveryFilter{State: store.DeliveryDelivered}, nil},
			} {
				page, err := f.s.ListAlertDeliveries(ctx, tn.ID, c.f, store.ListOptions{})
				f.must(t, err, "ListAlertDeliveries %s", c.name)
				f.equalKeys(t, "ListAlertDeliveries "+c.name, keys(page.Items, id), c.want)
			}
			// Deleting a channel takes its deliveries with it.
			f.must(t, f.s.DeleteAlertChannel(ctx, tn.ID, ch2.ID), "DeleteAlertChannel")
			if _, err := f.s.AlertDelivery(ctx, tn.ID, d2.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: delivery of a deleted channel: %v, want ErrNotFound", f.s.Backend(), err)
			}
		}},
		{"DeliveryClaimLease", func(t *testing.T, f *fixture) {
			f = f.fresh(t) // claims span tenants: nobody else may write this store
			ctx := t.Context()
			tn := f.tenant(t)
			ch := fullAlertChannel(f, tn.ID)
			f.must(t, f.s.CreateAlertChannel(ctx, &ch), "CreateAlertChannel")
			early := fullAlertDelivery(f, tn.ID, ch.ID, "a", 40)
			late := fullAlertDelivery(f, tn.ID, ch.ID, "a", 41)
			future := fullAlertDelivery(f, tn.ID, ch.ID, "a", 90)
			for _, d := range []*store.AlertDelivery{&late, &early, &future} {
				f.must(t, f.s.CreateAlertDelivery(ctx, d), "CreateAlertDelivery")
			}
			lease := 5 * time.Minute
			got, err := f.s.ClaimAlertDeliveries(ctx, "worker-a", at(50), lease, 10)
			f.must(t, err, "ClaimAlertDeliveries")
			id := func(d store.AlertDelivery) string { return d.ID }
			f.equalKeys(t, "claimed, earliest due first", keys(got, id), []string{early.ID, late.ID})
			for _, d := range got {
				if d.LeaseOwner != "worker-a" || d.LeaseUntil == nil || !d.LeaseUntil.Equal(at(55)) {
					t.Errorf("%s: claimed delivery lease = %q %v", f.s.Backend(), d.LeaseOwner, d.LeaseUntil)
				}
			}
			// Leased rows are not claimed again while the lease runs.
			other, err := f.s.ClaimAlertDeliveries(ctx, "worker-b", at(52), lease, 10)
			f.must(t, err, "ClaimAlertDeliveries")
			f.equalKeys(t, "claimed during the lease", keys(other, id), nil)

			// worker-a finishes one: delivered.
			done := got[0]
			done.State, done.Attempts, done.LastStatus, done.LastLatencyMS = store.DeliveryDelivered, 1, 204, 12
			done.ResponseExcerpt, done.DeliveredAt = "ok", ptr(at(51))
			f.must(t, f.s.FinishAlertDeliveryAttempt(ctx, &done), "FinishAlertDeliveryAttempt")
			stored, err := f.s.AlertDelivery(ctx, tn.ID, done.ID)
			f.must(t, err, "AlertDelivery")
			if stored.State != store.DeliveryDelivered || stored.Attempts != 1 || stored.LastStatus != 204 ||
				stored.LastLatencyMS != 12 || stored.ResponseExcerpt != "ok" || stored.LeaseOwner != "" || stored.LeaseUntil != nil ||
				stored.DeliveredAt == nil || !stored.DeliveredAt.Equal(at(51)) {
				t.Errorf("%s: delivered row = %+v", f.s.Backend(), stored)
			}

			// The other lease runs out: worker-b takes the row, and worker-a's late answer is refused.
			taken, err := f.s.ClaimAlertDeliveries(ctx, "worker-b", at(56), lease, 10)
			f.must(t, err, "ClaimAlertDeliveries after the lease")
			f.equalKeys(t, "claimed after the lease", keys(taken, id), []string{late.ID})
			stale := got[1]
			stale.State, stale.Attempts = store.DeliveryDelivered, 1
			if err := f.s.FinishAlertDeliveryAttempt(ctx, &stale); !errors.Is(err, store.ErrConflict) {
				t.Errorf("%s: finish by a worker that lost its lease: %v, want ErrConflict", f.s.Backend(), err)
			}
			// worker-b fails it and schedules a retry.
			retry := taken[0]
			retry.Attempts, retry.LastStatus, retry.LastError, retry.NextAttemptAt = 1, 500, "HTTP 500", at(70)
			f.must(t, f.s.FinishAlertDeliveryAttempt(ctx, &retry), "FinishAlertDeliveryAttempt retry")
			none, err := f.s.ClaimAlertDeliveries(ctx, "worker-c", at(60), lease, 10)
			f.must(t, err, "ClaimAlertDeliveries before the retry")
			f.equalKeys(t, "claimed before the retry is due", keys(none, id), nil)
			again, err := f.s.ClaimAlertDeliveries(ctx, "worker-c", at(70), lease, 10)
			f.must(t, err, "ClaimAlertDeliveries at the retry")
			f.equalKeys(t, "claimed at the retry", keys(again, id), []string{late.ID})
			if len(again) == 1 && (again[0].Attempts != 1 || again[0].LastError != "HTTP 500") {
				t.Errorf("%s: retried row = %+v", f.s.Backend(), again[0])
			}
		}},
		{"PruneHistory", func(t *testing.T, f *fixture) {
			// The sweep spans tenants: it keeps firing alerts and pending deliveries however old,
			// and whatever changed at or after the cut.
			f = f.fresh(t)
			ctx := t.Context()
			tn, other := f.tenant(t), f.tenant(t)
			ch := fullAlertChannel(f, tn.ID)
			och := fullAlertChannel(f, other.ID)
			f.must(t, f.s.CreateAlertChannel(ctx, &ch), "CreateAlertChannel")
			f.must(t, f.s.CreateAlertChannel(ctx, &och), "CreateAlertChannel other tenant")
			alert := func(tenantID string, state store.AlertState, updated int) store.Alert {
				a := fullAlert(f, tenantID, "r1")
				a.State, a.FiredAt, a.UpdatedAt = state, at(updated-5), at(updated)
				switch state {
				case store.AlertResolved:
					a.ResolvedAt = ptr(at(updated))
				case store.AlertAcknowledged:
					a.AcknowledgedAt, a.AcknowledgedBy = ptr(at(updated)), "user-1"
				}
				f.must(t, f.s.CreateAlert(ctx, &a), "CreateAlert")
				return a
			}
			delivery := func(tenantID, channelID string, state store.DeliveryState, updated int) store.AlertDelivery {
				d := fullAlertDelivery(f, tenantID, channelID, "a", updated)
				d.State = state
				f.must(t, f.s.CreateAlertDelivery(ctx, &d), "CreateAlertDelivery")
				return d
			}
			oldResolved := alert(tn.ID, store.AlertResolved, 10)
			oldAcked := alert(tn.ID, store.AlertAcknowledged, 10)
			oldFiring := alert(tn.ID, store.AlertFiring, 10)
			newResolved := alert(tn.ID, store.AlertResolved, 100)
			otherResolved := alert(other.ID, store.AlertResolved, 10)
			oldDelivered := delivery(tn.ID, ch.ID, store.DeliveryDelivered, 10)
			oldFailed := delivery(tn.ID, ch.ID, store.DeliveryFailed, 10)
			oldPending := delivery(tn.ID, ch.ID, store.DeliveryPending, 10)
			newDelivered := delivery(tn.ID, ch.ID, store.DeliveryDelivered, 100)
			otherFailed := delivery(other.ID, och.ID, store.DeliveryFailed, 10)

			n, err := f.s.PruneAlertHistory(ctx, at(100))
			f.must(t, err, "PruneAlertHistory")
			if n != 6 {
				t.Errorf("%s: PruneAlertHistory = %d rows, want 6", f.s.Backend(), n)
			}
			for _, c := range []struct {
				a    store.Alert
				kept bool
			}{{oldResolved, false}, {oldAcked, false}, {otherResolved, false}, {oldFiring, true}, {newResolved, true}} {
				_, err := f.s.Alert(ctx, c.a.TenantID, c.a.ID)
				if c.kept && err != nil || !c.kept && !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s: %s alert updated %v after the sweep: %v, want kept=%v", f.s.Backend(), c.a.State, c.a.UpdatedAt, err, c.kept)
				}
			}
			for _, c := range []struct {
				d    store.AlertDelivery
				kept bool
			}{{oldDelivered, false}, {oldFailed, false}, {otherFailed, false}, {oldPending, true}, {newDelivered, true}} {
				_, err := f.s.AlertDelivery(ctx, c.d.TenantID, c.d.ID)
				if c.kept && err != nil || !c.kept && !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s: %s delivery updated %v after the sweep: %v, want kept=%v", f.s.Backend(), c.d.State, c.d.UpdatedAt, err, c.kept)
				}
			}
			// A second sweep finds nothing more.
			n, err = f.s.PruneAlertHistory(ctx, at(100))
			f.must(t, err, "PruneAlertHistory again")
			if n != 0 {
				t.Errorf("%s: second PruneAlertHistory = %d rows, want 0", f.s.Backend(), n)
			}
		}},
	})
}

func testPushAndServerSecrets(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"PushSubscriptions", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			in := store.PushSubscription{ID: f.id(), TenantID: tn.ID, UserID: "user-1", Endpoint: "https://push.example.com/send/abc",
				P256dh: "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM", Auth: "tBHItJI5svbpez7KI4CCXg",
				CreatedAt: at(5)}
			want := in
			f.must(t, f.s.CreatePushSubscription(ctx, &in), "CreatePushSubscription")
			dup := in
			dup.ID = f.id()
			if err := f.s.CreatePushSubscription(ctx, &dup); !errors.Is(err, store.ErrConflict) {
				t.Errorf("%s: a second subscription with the endpoint: %v, want ErrConflict", f.s.Backend(), err)
			}
			other := f.tenant(t)
			elsewhere := in
			elsewhere.ID, elsewhere.TenantID = f.id(), other.ID
			f.must(t, f.s.CreatePushSubscription(ctx, &elsewhere), "the endpoint in another tenant")
			page, err := f.s.ListPushSubscriptions(ctx, tn.ID, store.ListOptions{})
			f.must(t, err, "ListPushSubscriptions")
			if len(page.Items) != 1 {
				t.Fatalf("%s: ListPushSubscriptions = %d, want 1", f.s.Backend(), len(page.Items))
			}
			f.equal(t, "PushSubscription", page.Items[0], want)
			if err := f.s.DeletePushSubscription(ctx, other.ID, in.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: DeletePushSubscription from another tenant: %v, want ErrNotFound", f.s.Backend(), err)
			}
			f.must(t, f.s.DeletePushSubscription(ctx, tn.ID, in.ID), "DeletePushSubscription")
			page, err = f.s.ListPushSubscriptions(ctx, tn.ID, store.ListOptions{})
			f.must(t, err, "ListPushSubscriptions")
			if len(page.Items) != 0 {
				t.Errorf("%s: subscriptions after delete = %d", f.s.Backend(), len(page.Items))
			}
		}},
		{"ServerSecretWrittenOnce", func(t *testing.T, f *fixture) {
			f = f.fresh(t)
			ctx := t.Context()
			if _, err := f.s.ServerSecret(ctx, "vapid"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s: ServerSecret on an empty store: %v, want ErrNotFound", f.s.Backend(), err)
			}
			first := store.ServerSecret{Name: "vapid", Sealed: []byte{9, 0, 8}, CreatedAt: at(1)}
			f.must(t, f.s.CreateServerSecret(ctx, &first), "CreateServerSecret")
			second := store.ServerSecret{Name: "vapid", Sealed: []byte{1}}
			if err := f.s.CreateServerSecret(ctx, &second); !errors.Is(err, store.ErrConflict) {
				t.Errorf("%s: second CreateServerSecret: %v, want ErrConflict", f.s.Backend(), err)
			}
			got, err := f.s.ServerSecret(ctx, "vapid")
			f.must(t, err, "ServerSecret")
			f.equal(t, "ServerSecret", got, first)
		}},
	})
}
