package storetest

import (
	"testing"

	"github.com/espadmin/espadmin/store"
)

func fullCommand(f *fixture, tenantID, deviceID, rolloutID string) store.Command {
	return store.Command{
		ID:          f.id(),
		TenantID:    tenantID,
		DeviceID:    deviceID,
		Name:        "update",
		Payload:     `{"version":"v-1.4.0","size":1572864}`,
		State:       store.CommandSucceeded,
		Result:      `{"ok":true}`,
		Error:       "partial: retried once",
		RolloutID:   rolloutID,
		CreatedBy:   "user-" + f.id(),
		CreatedAt:   at(50),
		ExpiresAt:   at(50 + 60),
		DeliveredAt: ptr(at(51)),
		CompletedAt: ptr(at(52)),
		UpdatedAt:   at(52),
	}
}

// queued returns a fresh queued command created at minute created, expiring at minute expires.
func (f *fixture) queued(t *testing.T, tenantID, deviceID string, created, expires int) store.Command {
	t.Helper()
	c := fullCommand(f, tenantID, deviceID, "")
	c.Name, c.State, c.Result, c.Error = "restart", store.CommandQueued, "", ""
	c.CreatedAt, c.UpdatedAt, c.ExpiresAt = at(created), at(created), at(expires)
	c.DeliveredAt, c.CompletedAt = nil, nil
	f.must(t, f.s.CreateCommand(t.Context(), &c), "CreateCommand")
	return c
}

func testCommand(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"RoundTrip", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			p := f.project(t, tn.ID)
			d := f.device(t, tn.ID, p.ID)
			rel := f.release(t, tn.ID, p.ID, "v-1.4.0")
			ro := f.rollout(t, tn.ID, p.ID, rel.ID, []string{d.ID})
			in := fullCommand(f, tn.ID, d.ID, ro.ID)
			want := in
			f.must(t, f.s.CreateCommand(ctx, &in), "CreateCommand")
			got, err := f.s.Command(ctx, tn.ID, want.ID)
			f.must(t, err, "Command")
			f.equal(t, "Command after CreateCommand", got, want)

			q := f.queued(t, tn.ID, d.ID, 1, 100)
			got, err = f.s.Command(ctx, tn.ID, q.ID)
			f.must(t, err, "Command")
			f.equal(t, "queued Command after CreateCommand", got, q)
		}},
		{"Transitions", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			d := f.device(t, tn.ID, "")
			c := f.queued(t, tn.ID, d.ID, 0, 100)

			got, err := f.s.TransitionCommand(ctx, tn.ID, c.ID, store.CommandTransition{
				From: []store.CommandState{store.CommandQueued}, To: store.CommandDelivered, At: at(5),
			})
			f.must(t, err, "TransitionCommand queued → delivered")
			want := c
			want.State, want.DeliveredAt, want.UpdatedAt = store.CommandDelivered, ptr(at(5)), got.UpdatedAt
			f.equal(t, "TransitionCommand result (delivered)", got, want)
			read, err := f.s.Command(ctx, tn.ID, c.ID)
			f.must(t, err, "Command")
			f.equal(t, "Command after delivery", read, got)

			_, err = f.s.TransitionCommand(ctx, tn.ID, c.ID, store.CommandTransition{
				From: []store.CommandState{store.CommandQueued}, To: store.CommandDelivered, At: at(6),
			})
			f.wantErr(t, err, store.ErrConflict, "TransitionCommand from a state it is not in")
			read, err = f.s.Command(ctx, tn.ID, c.ID)
			f.must(t, err, "Command")
			f.equal(t, "Command after a refused transition", read, got)

			got, err = f.s.TransitionCommand(ctx, tn.ID, c.ID, store.CommandTransition{
				From:   []store.CommandState{store.CommandQueued, store.CommandDelivered},
				To:     store.CommandSucceeded,
				Result: `{"rebooted":true}`,
				At:     at(7),
			})
			f.must(t, err, "TransitionCommand delivered → succeeded")
			want.State, want.Result, want.CompletedAt, want.UpdatedAt = store.CommandSucceeded, `{"rebooted":true}`, ptr(at(7)), got.UpdatedAt
			f.equal(t, "TransitionCommand result (succeeded)", got, want)
			read, err = f.s.Command(ctx, tn.ID, c.ID)
			f.must(t, err, "Command")
			f.equal(t, "Command after success", read, want)

			// Straight from queued to failed: CompletedAt is set, DeliveredAt stays nil.
			c2 := f.queued(t, tn.ID, d.ID, 0, 100)
			got, err = f.s.TransitionCommand(ctx, tn.ID, c2.ID, store.CommandTransition{
				From: []store.CommandState{store.CommandQueued, store.CommandDelivered}, To: store.CommandFailed,
				Error: "unknown command", At: at(8),
			})
			f.must(t, err, "TransitionCommand queued → failed")
			want2 := c2
			want2.State, want2.Error, want2.CompletedAt, want2.UpdatedAt = store.CommandFailed, "unknown command", ptr(at(8)), got.UpdatedAt
			f.equal(t, "TransitionCommand result (failed)", got, want2)

			// The device's answer overtakes the record of its delivery: an answer proves delivery,
			// so DeliveredAt is set with CompletedAt.
			c3 := f.queued(t, tn.ID, d.ID, 0, 100)
			got, err = f.s.TransitionCommand(ctx, tn.ID, c3.ID, store.CommandTransition{
				From: []store.CommandState{store.CommandQueued, store.CommandDelivered}, To: store.CommandSucceeded,
				Result: `{"ok":true}`, Answered: true, At: at(9),
			})
			f.must(t, err, "TransitionCommand queued → succeeded, answered")
			want3 := c3
			want3.State, want3.Result, want3.DeliveredAt, want3.CompletedAt, want3.UpdatedAt =
				store.CommandSucceeded, `{"ok":true}`, ptr(at(9)), ptr(at(9)), got.UpdatedAt
			f.equal(t, "TransitionCommand result (answered before delivery was recorded)", got, want3)
			read, err = f.s.Command(ctx, tn.ID, c3.ID)
			f.must(t, err, "Command")
			f.equal(t, "Command answered before delivery was recorded", read, want3)

			// An answer after the recorded delivery keeps the delivery's time.
			c4 := f.queued(t, tn.ID, d.ID, 0, 100)
			_, err = f.s.TransitionCommand(ctx, tn.ID, c4.ID, store.CommandTransition{
				From: []store.CommandState{store.CommandQueued}, To: store.CommandDelivered, At: at(10),
			})
			f.must(t, err, "TransitionCommand queued → delivered")
			got, err = f.s.TransitionCommand(ctx, tn.ID, c4.ID, store.CommandTransition{
				From: []store.CommandState{store.CommandQueued, store.CommandDelivered}, To: store.CommandFailed,
				Error: "busy", Answered: true, At: at(11),
			})
			f.must(t, err, "TransitionCommand delivered → failed, answered")
			if got.DeliveredAt == nil || !got.DeliveredAt.Equal(at(10)) {
				t.Errorf("answered after delivery: DeliveredAt = %v, want %v", got.DeliveredAt, at(10))
			}

			_, err = f.s.TransitionCommand(ctx, tn.ID, f.id(), store.CommandTransition{
				From: []store.CommandState{store.CommandQueued}, To: store.CommandDelivered, At: at(5),
			})
			f.wantErr(t, err, store.ErrNotFound, "TransitionCommand of a missing command")
			_, err = f.s.Command(ctx, tn.ID, f.id())
			f.wantErr(t, err, store.ErrNotFound, "Command of a missing ID")
		}},
		{"ConcurrentTransition", func(t *testing.T, f *fixture) {
			if !f.isolated(t) {
				return
			}
			ctx := t.Context()
			tn := f.tenant(t)
			d := f.device(t, tn.ID, "")
			for range 10 {
				c := f.queued(t, tn.ID, d.ID, 0, 100)
				results := make([]store.Command, 2)
				errs := concurrently(2, func(i int) error {
					var err error
					results[i], err = f.s.TransitionCommand(ctx, tn.ID, c.ID, store.CommandTransition{
						From:   []store.CommandState{store.CommandQueued, store.CommandDelivered},
						To:     []store.CommandState{store.CommandSucceeded, store.CommandFailed}[i],
						Result: []string{`{"by":0}`, `{"by":1}`}[i],
						At:     at(10 + i),
					})
					return err
				})
				f.exactlyOne(t, "concurrent TransitionCommand", errs, store.ErrConflict)
				got, err := f.s.Command(ctx, tn.ID, c.ID)
				f.must(t, err, "Command")
				for i, err := range errs {
					if err == nil {
						f.equal(t, "Command after the winning transition", got, results[i])
					}
				}
			}
		}},
		{"PendingAndExpire", testPendingAndExpire},
		{"ListFilters", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			p := f.project(t, tn.ID)
			d1, d2 := f.device(t, tn.ID, p.ID), f.device(t, tn.ID, p.ID)
			rel := f.release(t, tn.ID, p.ID, "v-2.0.0")
			ro := f.rollout(t, tn.ID, p.ID, rel.ID, []string{d1.ID, d2.ID})
			q1 := f.queued(t, tn.ID, d1.ID, 0, 100)
			q2 := f.queued(t, tn.ID, d2.ID, 0, 100)
			r1 := fullCommand(f, tn.ID, d1.ID, ro.ID) // succeeded
			f.must(t, f.s.CreateCommand(ctx, &r1), "CreateCommand")
			r2 := fullCommand(f, tn.ID, d2.ID, ro.ID)
			r2.State = store.CommandFailed
			f.must(t, f.s.CreateCommand(ctx, &r2), "CreateCommand")
			other := f.tenant(t)
			f.queued(t, other.ID, f.device(t, other.ID, "").ID, 0, 100)

			id := func(c store.Command) string { return c.ID }
			cases := []struct {
				name   string
				filter store.CommandFilter
				want   []store.Command
			}{
				{"none", store.CommandFilter{}, []store.Command{q1, q2, r1, r2}},
				{"device", store.CommandFilter{DeviceID: d1.ID}, []store.Command{q1, r1}},
				{"state", store.CommandFilter{State: store.CommandQueued}, []store.Command{q1, q2}},
				{"rollout", store.CommandFilter{RolloutID: ro.ID}, []store.Command{r1, r2}},
				{"device and state", store.CommandFilter{DeviceID: d2.ID, State: store.CommandFailed}, []store.Command{r2}},
				{"rollout and state", store.CommandFilter{RolloutID: ro.ID, State: store.CommandQueued}, nil},
			}
			for _, c := range cases {
				page, err := f.s.ListCommands(ctx, tn.ID, c.filter, store.ListOptions{})
				f.must(t, err, "ListCommands %s", c.name)
				f.equalKeys(t, "ListCommands filter "+c.name, keys(page.Items, id), keys(c.want, id))
			}
			page, err := f.s.ListCommands(ctx, tn.ID, store.CommandFilter{RolloutID: ro.ID, DeviceID: d1.ID}, store.ListOptions{})
			f.must(t, err, "ListCommands")
			if len(page.Items) == 1 {
				f.equal(t, "ListCommands item", page.Items[0], r1)
			}
		}},
	})
}

func testPendingAndExpire(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	d, other := f.device(t, tn.ID, ""), f.device(t, tn.ID, "")
	now := 100
	// ID order and CreatedAt order agree, as they do for IDs from store.NewID.
	older := f.queued(t, tn.ID, d.ID, 10, now+10)
	delivered := f.queued(t, tn.ID, d.ID, 15, now+10)
	newer := f.queued(t, tn.ID, d.ID, 20, now+10)
	deliveredCmd, err := f.s.TransitionCommand(ctx, tn.ID, delivered.ID, store.CommandTransition{
		From: []store.CommandState{store.CommandQueued}, To: store.CommandDelivered, At: at(16),
	})
	f.must(t, err, "TransitionCommand")
	pastDueQueued := f.queued(t, tn.ID, d.ID, 5, now-1)
	pastDueDelivered := f.queued(t, tn.ID, d.ID, 6, now-2)
	_, err = f.s.TransitionCommand(ctx, tn.ID, pastDueDelivered.ID, store.CommandTransition{
		From: []store.CommandState{store.CommandQueued}, To: store.CommandDelivered, At: at(7),
	})
	f.must(t, err, "TransitionCommand")
	done := f.queued(t, tn.ID, d.ID, 1, now-5) // past due but finished: never expires
	doneCmd, err := f.s.TransitionCommand(ctx, tn.ID, done.ID, store.CommandTransition{
		From: []store.CommandState{store.CommandQueued}, To: store.CommandSucceeded, At: at(2),
	})
	f.must(t, err, "TransitionCommand")
	otherDev := f.queued(t, tn.ID, other.ID, 1, now+10)

	pending, err := f.s.PendingCommands(ctx, tn.ID, d.ID, at(now))
	f.must(t, err, "PendingCommands")
	id := func(c store.Command) string { return c.ID }
	f.equalKeys(t, "PendingCommands (oldest first, unexpired, queued or delivered)", keys(pending, id), []string{older.ID, deliveredCmd.ID, newer.ID})
	if len(pending) == 3 {
		f.equal(t, "PendingCommands[1]", pending[1], deliveredCmd)
	}

	otherTenant := f.tenant(t)
	foreign := f.queued(t, otherTenant.ID, f.device(t, otherTenant.ID, "").ID, 1, now-1)

	n, err := f.s.ExpireCommands(ctx, tn.ID, at(now))
	f.must(t, err, "ExpireCommands")
	if n != 2 {
		t.Errorf("%s: ExpireCommands = %d, want 2", f.s.Backend(), n)
	}
	for _, c := range []store.Command{pastDueQueued, pastDueDelivered} {
		got, err := f.s.Command(ctx, tn.ID, c.ID)
		f.must(t, err, "Command")
		if got.State != store.CommandExpired {
			t.Errorf("%s: past-due command state after ExpireCommands = %q, want expired", f.s.Backend(), got.State)
		}
	}
	for _, c := range []store.Command{older, newer, otherDev} {
		got, err := f.s.Command(ctx, tn.ID, c.ID)
		f.must(t, err, "Command")
		f.equal(t, "unexpired command after ExpireCommands", got, c)
	}
	got, err := f.s.Command(ctx, tn.ID, delivered.ID)
	f.must(t, err, "Command")
	f.equal(t, "unexpired delivered command after ExpireCommands", got, deliveredCmd)
	got, err = f.s.Command(ctx, tn.ID, done.ID)
	f.must(t, err, "Command")
	f.equal(t, "finished command after ExpireCommands", got, doneCmd)
	got, err = f.s.Command(ctx, otherTenant.ID, foreign.ID)
	f.must(t, err, "Command")
	f.equal(t, "another tenant's past-due command after ExpireCommands", got, foreign)

	n, err = f.s.ExpireCommands(ctx, tn.ID, at(now))
	f.must(t, err, "ExpireCommands")
	if n != 0 {
		t.Errorf("%s: second ExpireCommands = %d, want 0", f.s.Backend(), n)
	}
	pending, err = f.s.PendingCommands(ctx, tn.ID, d.ID, at(now+11)) // after ExpiresAt
	f.must(t, err, "PendingCommands")
	if len(pending) != 0 {
		t.Errorf("%s: PendingCommands at ExpiresAt = %v, want none", f.s.Backend(), keys(pending, id))
	}
}
