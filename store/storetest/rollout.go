package storetest

import (
	"maps"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
)

func fullRollout(f *fixture, tenantID, projectID, releaseID string, deviceIDs []string) store.Rollout {
	return store.Rollout{
		ID:               f.id(),
		TenantID:         tenantID,
		ProjectID:        projectID,
		ReleaseID:        releaseID,
		Target:           store.RolloutTarget{Kind: store.TargetDevices, Tag: "beta", DeviceIDs: deviceIDs, Percent: 40},
		Stages:           []int{5, 25, 100},
		CurrentStage:     1,
		FailureThreshold: 0.125,
		StageSoak:        10 * time.Minute,
		RequireApproval:  true,
		StageDoneAt:      at(59),
		State:            store.RolloutPaused,
		PauseReason:      "failure rate 0.2 over threshold",
		Version:          3,
		CreatedBy:        "user-" + f.id(),
		CreatedAt:        at(60),
		UpdatedAt:        at(61),
	}
}

func (f *fixture) rollout(t *testing.T, tenantID, projectID, releaseID string, deviceIDs []string) store.Rollout {
	t.Helper()
	r := fullRollout(f, tenantID, projectID, releaseID, deviceIDs)
	f.must(t, f.s.CreateRollout(t.Context(), &r), "CreateRollout")
	return r
}

func fullRolloutDevice(tenantID, rolloutID, deviceID, commandID string) store.RolloutDevice {
	return store.RolloutDevice{
		TenantID:  tenantID,
		RolloutID: rolloutID,
		DeviceID:  deviceID,
		State:     store.UpdateDownloading,
		Progress:  42,
		Reason:    "resumed after reconnect",
		CommandID: commandID,
		UpdatedAt: at(62),
	}
}

// rolloutSetup is one tenant with a project, a release and devices, ready for rollouts.
type rolloutSetup struct {
	tenant  store.Tenant
	project store.Project
	release store.Release
	devices []store.Device
}

func (f *fixture) rolloutSetup(t *testing.T, devices int) rolloutSetup {
	t.Helper()
	tn := f.tenant(t)
	p := f.project(t, tn.ID)
	rs := rolloutSetup{tenant: tn, project: p, release: f.release(t, tn.ID, p.ID, "v-3.0.0")}
	for range devices {
		rs.devices = append(rs.devices, f.device(t, tn.ID, p.ID))
	}
	return rs
}

func testRollout(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"RoundTrip", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			rs := f.rolloutSetup(t, 2)
			in := fullRollout(f, rs.tenant.ID, rs.project.ID, rs.release.ID, []string{rs.devices[1].ID, rs.devices[0].ID})
			want := in
			f.must(t, f.s.CreateRollout(ctx, &in), "CreateRollout")
			got, err := f.s.Rollout(ctx, rs.tenant.ID, want.ID)
			f.must(t, err, "Rollout")
			f.equal(t, "Rollout after CreateRollout", got, want)

			pct := fullRollout(f, rs.tenant.ID, rs.project.ID, rs.release.ID, nil)
			pct.Target = store.RolloutTarget{Kind: store.TargetPercent, Percent: 10}
			pct.Stages, pct.PauseReason, pct.State, pct.Version = nil, "", store.RolloutActive, 0
			pct.StageSoak, pct.RequireApproval, pct.StageDoneAt = 0, false, time.Time{}
			f.must(t, f.s.CreateRollout(ctx, &pct), "CreateRollout")
			got, err = f.s.Rollout(ctx, rs.tenant.ID, pct.ID)
			f.must(t, err, "Rollout")
			f.equal(t, "percent Rollout after CreateRollout", got, pct)
		}},
		{"UpdateWithVersion", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			rs := f.rolloutSetup(t, 1)
			r := f.rollout(t, rs.tenant.ID, rs.project.ID, rs.release.ID, []string{rs.devices[0].ID})
			orig := r
			upd := r
			upd.Stages, upd.CurrentStage, upd.FailureThreshold = []int{10, 50, 100}, 2, 0.5
			upd.State, upd.PauseReason = store.RolloutActive, ""
			upd.StageDoneAt = at(63)
			upd.ReleaseID, upd.CreatedBy, upd.Target = "ignored", "ignored", store.RolloutTarget{Kind: store.TargetAll} // not saved
			f.must(t, f.s.UpdateRollout(ctx, &upd), "UpdateRollout")
			if upd.Version != orig.Version+1 {
				t.Errorf("%s: Version after UpdateRollout = %d, want %d", f.s.Backend(), upd.Version, orig.Version+1)
			}
			got, err := f.s.Rollout(ctx, rs.tenant.ID, r.ID)
			f.must(t, err, "Rollout")
			want := orig
			want.Stages, want.CurrentStage, want.FailureThreshold = []int{10, 50, 100}, 2, 0.5
			want.State, want.PauseReason, want.Version = store.RolloutActive, "", orig.Version+1
			want.StageDoneAt = at(63)
			want.UpdatedAt = got.UpdatedAt
			f.equal(t, "Rollout after UpdateRollout", got, want)

			// A stage starting again clears StageDoneAt.
			cleared := got
			cleared.StageDoneAt = time.Time{}
			f.must(t, f.s.UpdateRollout(ctx, &cleared), "UpdateRollout clearing StageDoneAt")
			if back, err := f.s.Rollout(ctx, rs.tenant.ID, r.ID); err != nil || !back.StageDoneAt.IsZero() {
				t.Errorf("%s: StageDoneAt after clearing = %v (%v), want zero", f.s.Backend(), back.StageDoneAt, err)
			}
			got, err = f.s.Rollout(ctx, rs.tenant.ID, r.ID)
			f.must(t, err, "Rollout")

			stale := orig // still at the old version
			stale.State = store.RolloutAborted
			f.wantErr(t, f.s.UpdateRollout(ctx, &stale), store.ErrConflict, "UpdateRollout with a stale version")
			again, err := f.s.Rollout(ctx, rs.tenant.ID, r.ID)
			f.must(t, err, "Rollout")
			f.equal(t, "Rollout after a refused update", again, got)

			// Two replicas advancing the same version: exactly one wins.
			if f.isolated(t) {
				errs := concurrently(2, func(i int) error {
					r := got
					r.CurrentStage = 3 + i
					return f.s.UpdateRollout(ctx, &r)
				})
				f.exactlyOne(t, "concurrent UpdateRollout", errs, store.ErrConflict)
				final, err := f.s.Rollout(ctx, rs.tenant.ID, r.ID)
				f.must(t, err, "Rollout")
				if final.Version != got.Version+1 {
					t.Errorf("%s: Version after concurrent updates = %d, want %d", f.s.Backend(), final.Version, got.Version+1)
				}
			}

			missing := fullRollout(f, rs.tenant.ID, rs.project.ID, rs.release.ID, nil)
			f.wantErr(t, f.s.UpdateRollout(ctx, &missing), store.ErrNotFound, "UpdateRollout of a missing rollout")
		}},
		{"ListFilters", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			rs := f.rolloutSetup(t, 1)
			p2 := f.project(t, rs.tenant.ID)
			rel2 := f.release(t, rs.tenant.ID, p2.ID, "v-3.0.0")
			mk := func(projectID, releaseID string, state store.RolloutState) store.Rollout {
				r := fullRollout(f, rs.tenant.ID, projectID, releaseID, nil)
				r.State = state
				f.must(t, f.s.CreateRollout(ctx, &r), "CreateRollout")
				return r
			}
			a := mk(rs.project.ID, rs.release.ID, store.RolloutActive)
			b := mk(rs.project.ID, rs.release.ID, store.RolloutCompleted)
			c := mk(p2.ID, rel2.ID, store.RolloutActive)
			other := f.rolloutSetup(t, 0)
			f.rollout(t, other.tenant.ID, other.project.ID, other.release.ID, nil)
			id := func(r store.Rollout) string { return r.ID }
			cases := []struct {
				name   string
				filter store.RolloutFilter
				want   []store.Rollout
			}{
				{"none", store.RolloutFilter{}, []store.Rollout{a, b, c}},
				{"project", store.RolloutFilter{ProjectID: rs.project.ID}, []store.Rollout{a, b}},
				{"state", store.RolloutFilter{State: store.RolloutActive}, []store.Rollout{a, c}},
				{"project and state", store.RolloutFilter{ProjectID: p2.ID, State: store.RolloutActive}, []store.Rollout{c}},
				{"no match", store.RolloutFilter{State: store.RolloutAborted}, nil},
			}
			for _, tc := range cases {
				page, err := f.s.ListRollouts(ctx, rs.tenant.ID, tc.filter, store.ListOptions{})
				f.must(t, err, "ListRollouts %s", tc.name)
				f.equalKeys(t, "ListRollouts filter "+tc.name, keys(page.Items, id), keys(tc.want, id))
			}
		}},
		{"Delete", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			rs := f.rolloutSetup(t, 1)
			r := f.rollout(t, rs.tenant.ID, rs.project.ID, rs.release.ID, nil)
			rd := fullRolloutDevice(rs.tenant.ID, r.ID, rs.devices[0].ID, "")
			f.must(t, f.s.PutRolloutDevice(ctx, &rd), "PutRolloutDevice")
			f.must(t, f.s.DeleteRollout(ctx, rs.tenant.ID, r.ID), "DeleteRollout")
			_, err := f.s.Rollout(ctx, rs.tenant.ID, r.ID)
			f.wantErr(t, err, store.ErrNotFound, "Rollout after DeleteRollout")
			_, err = f.s.RolloutDevice(ctx, rs.tenant.ID, r.ID, rs.devices[0].ID)
			f.wantErr(t, err, store.ErrNotFound, "RolloutDevice after DeleteRollout")
			f.wantErr(t, f.s.DeleteRollout(ctx, rs.tenant.ID, r.ID), store.ErrNotFound, "DeleteRollout twice")
			_, err = f.s.Rollout(ctx, rs.tenant.ID, f.id())
			f.wantErr(t, err, store.ErrNotFound, "Rollout of a missing ID")
		}},
		{"Devices", testRolloutDevices},
	})
}

func testRolloutDevices(t *testing.T, f *fixture) {
	ctx := t.Context()
	rs := f.rolloutSetup(t, 4)
	r := f.rollout(t, rs.tenant.ID, rs.project.ID, rs.release.ID, nil)
	r2 := f.rollout(t, rs.tenant.ID, rs.project.ID, rs.release.ID, nil)
	d := rs.devices
	cmd := f.queued(t, rs.tenant.ID, d[0].ID, 0, 100)

	in := fullRolloutDevice(rs.tenant.ID, r.ID, d[0].ID, cmd.ID)
	f.must(t, f.s.PutRolloutDevice(ctx, &in), "PutRolloutDevice")
	got, err := f.s.RolloutDevice(ctx, rs.tenant.ID, r.ID, d[0].ID)
	f.must(t, err, "RolloutDevice")
	f.equal(t, "RolloutDevice after PutRolloutDevice", got, in)

	// Put replaces: still one row for (rollout, device).
	in.State, in.Progress, in.Reason, in.CommandID, in.UpdatedAt = store.UpdateFailed, 100, "rolled back", "", at(70)
	f.must(t, f.s.PutRolloutDevice(ctx, &in), "PutRolloutDevice (replace)")
	got, err = f.s.RolloutDevice(ctx, rs.tenant.ID, r.ID, d[0].ID)
	f.must(t, err, "RolloutDevice")
	f.equal(t, "RolloutDevice after a replacing PutRolloutDevice", got, in)

	states := []store.UpdateState{store.UpdateFailed, store.UpdateSucceeded, store.UpdateSucceeded, store.UpdatePending}
	for i := 1; i < len(d); i++ {
		rd := fullRolloutDevice(rs.tenant.ID, r.ID, d[i].ID, "")
		rd.State = states[i]
		f.must(t, f.s.PutRolloutDevice(ctx, &rd), "PutRolloutDevice")
	}
	in2 := fullRolloutDevice(rs.tenant.ID, r2.ID, d[0].ID, "")
	in2.State = store.UpdateSucceeded
	f.must(t, f.s.PutRolloutDevice(ctx, &in2), "PutRolloutDevice (second rollout)")

	page, err := f.s.ListRolloutDevices(ctx, rs.tenant.ID, r.ID, store.ListOptions{})
	f.must(t, err, "ListRolloutDevices")
	f.equalKeys(t, "ListRolloutDevices (by device ID)", keys(page.Items, func(x store.RolloutDevice) string { return x.DeviceID }),
		keys(d, func(x store.Device) string { return x.ID }))
	if len(page.Items) > 0 {
		f.equal(t, "ListRolloutDevices[0]", page.Items[0], in)
	}

	counts, err := f.s.CountRolloutDevices(ctx, rs.tenant.ID, r.ID)
	f.must(t, err, "CountRolloutDevices")
	maps.DeleteFunc(counts, func(_ store.UpdateState, n int64) bool { return n == 0 }) // absent and 0 mean the same
	f.equal(t, "CountRolloutDevices", counts, map[store.UpdateState]int64{
		store.UpdateFailed: 1, store.UpdateSucceeded: 2, store.UpdatePending: 1,
	})

	hist, err := f.s.DeviceUpdates(ctx, rs.tenant.ID, d[0].ID)
	f.must(t, err, "DeviceUpdates")
	f.sameKeys(t, "DeviceUpdates", keys(hist, func(x store.RolloutDevice) string { return x.RolloutID }), []string{r.ID, r2.ID})
	for _, h := range hist {
		if h.RolloutID == r2.ID {
			f.equal(t, "DeviceUpdates item", h, in2)
		}
	}
	hist, err = f.s.DeviceUpdates(ctx, rs.tenant.ID, f.id())
	f.must(t, err, "DeviceUpdates of a device with no updates")
	if len(hist) != 0 {
		t.Errorf("%s: DeviceUpdates of a device with no updates = %+v", f.s.Backend(), hist)
	}

	_, err = f.s.RolloutDevice(ctx, rs.tenant.ID, r2.ID, d[1].ID)
	f.wantErr(t, err, store.ErrNotFound, "RolloutDevice of a device not in the rollout")
	missing := fullRolloutDevice(rs.tenant.ID, f.id(), d[0].ID, "")
	f.wantErr(t, f.s.PutRolloutDevice(ctx, &missing), store.ErrNotFound, "PutRolloutDevice of a missing rollout")
}
