package alerts

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/testclock"
)

// The retention sweep runs at start and every interval: it deletes resolved and acknowledged
// alerts and finished deliveries once their last change is past the retention, and never a
// firing alert or a pending delivery.
func TestRetentionSweepsOldHistoryOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		ctx := context.Background()
		ch := e.channel("webhook")
		now := time.Now()
		alert := func(state store.AlertState, age time.Duration) store.Alert {
			a := store.Alert{TenantID: e.tenant, RuleID: "r", RuleName: "r", Kind: KindRollout, State: state,
				Subjects: []string{"d"}, FiredAt: now.Add(-age - time.Hour), UpdatedAt: now.Add(-age)}
			must(t, e.st.CreateAlert(ctx, &a))
			return a
		}
		delivery := func(state store.DeliveryState, age time.Duration) store.AlertDelivery {
			d := store.AlertDelivery{TenantID: e.tenant, ChannelID: ch, AlertID: "a", MessageID: "msg_" + store.NewID(),
				Payload: "{}", State: state, NextAttemptAt: now.Add(-age), CreatedAt: now.Add(-age), UpdatedAt: now.Add(-age)}
			must(t, e.st.CreateAlertDelivery(ctx, &d))
			return d
		}
		const day = 24 * time.Hour
		oldResolved := alert(store.AlertResolved, 91*day)
		oldAcked := alert(store.AlertAcknowledged, 91*day)
		oldFiring := alert(store.AlertFiring, 200*day)
		soonResolved := alert(store.AlertResolved, 90*day-30*time.Minute) // past the retention within the next hour
		recentResolved := alert(store.AlertResolved, day)
		oldDelivered := delivery(store.DeliveryDelivered, 91*day)
		oldFailed := delivery(store.DeliveryFailed, 91*day)
		oldPending := delivery(store.DeliveryPending, 200*day)
		recentDelivered := delivery(store.DeliveryDelivered, day)

		r := NewRetention(RetentionOptions{Store: e.st, Retention: 90 * day, Interval: time.Hour})
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = r.Run(runCtx); close(done) }()
		defer func() { cancel(); <-done }()
		synctest.Wait() // the sweep at start

		alertKept := func(when string, a store.Alert, want bool) {
			t.Helper()
			_, err := e.st.Alert(ctx, e.tenant, a.ID)
			if want && err != nil || !want && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: %s alert last changed %v ago: %v, want kept=%v", when, a.State, now.Sub(a.UpdatedAt), err, want)
			}
		}
		deliveryKept := func(when string, d store.AlertDelivery, want bool) {
			t.Helper()
			_, err := e.st.AlertDelivery(ctx, e.tenant, d.ID)
			if want && err != nil || !want && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: %s delivery last changed %v ago: %v, want kept=%v", when, d.State, now.Sub(d.UpdatedAt), err, want)
			}
		}
		alertKept("at start", oldResolved, false)
		alertKept("at start", oldAcked, false)
		alertKept("at start", oldFiring, true)
		alertKept("at start", soonResolved, true)
		alertKept("at start", recentResolved, true)
		deliveryKept("at start", oldDelivered, false)
		deliveryKept("at start", oldFailed, false)
		deliveryKept("at start", oldPending, true)
		deliveryKept("at start", recentDelivered, true)

		testclock.Advance(time.Hour) // the next sweep
		alertKept("an hour later", soonResolved, false)
		alertKept("an hour later", recentResolved, true)
		alertKept("an hour later", oldFiring, true)
		deliveryKept("an hour later", oldPending, true)
	})
}
