package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/espadmin/espadmin/store"
)

// graph is one tenant with a record of every tenant-owned kind, every field set.
type graph struct {
	tenant     store.Tenant
	user       store.User // a member; users themselves are global
	membership store.Membership
	token      store.APIToken
	invitation store.Invitation
	project    store.Project
	release    store.Release
	device     store.Device
	entry      store.ConfigEntry
	version    store.ConfigVersion
	rollout    store.Rollout
	command    store.Command // finished
	pending    store.Command // queued, expires at minute 200
	rolloutDev store.RolloutDevice
	report     store.ErrorReport
	group      store.ErrorGroup
	audit      store.AuditEvent
	settings   store.TenantSettings
}

func (f *fixture) graph(t *testing.T) *graph {
	t.Helper()
	ctx := t.Context()
	g := &graph{tenant: f.tenant(t), user: f.user(t)}
	tid := g.tenant.ID
	g.membership = fullMembership(f, tid, g.user.ID)
	f.must(t, f.s.CreateMembership(ctx, &g.membership), "CreateMembership")
	g.token = fullAPIToken(f, tid, g.user.ID)
	f.must(t, f.s.CreateAPIToken(ctx, &g.token), "CreateAPIToken")
	g.invitation = fullInvitation(f, tid, g.user.ID)
	f.must(t, f.s.CreateInvitation(ctx, &g.invitation), "CreateInvitation")
	g.project = f.project(t, tid)
	g.release = f.release(t, tid, g.project.ID, "v-1.0.0")
	g.device = f.device(t, tid, g.project.ID)
	entries := []store.ConfigEntry{fullConfigEntry(tid, store.ScopeDevice, g.device.ID, "interval")}
	f.must(t, f.s.PutConfigEntries(ctx, entries), "PutConfigEntries")
	g.entry = entries[0]
	g.version = fullConfigVersion(tid, g.device.ID, 1)
	f.must(t, f.s.CreateConfigVersion(ctx, &g.version), "CreateConfigVersion")
	g.rollout = f.rollout(t, tid, g.project.ID, g.release.ID, []string{g.device.ID})
	g.command = fullCommand(f, tid, g.device.ID, g.rollout.ID)
	f.must(t, f.s.CreateCommand(ctx, &g.command), "CreateCommand")
	g.pending = f.queued(t, tid, g.device.ID, 0, 200)
	g.rolloutDev = fullRolloutDevice(tid, g.rollout.ID, g.device.ID, g.command.ID)
	f.must(t, f.s.PutRolloutDevice(ctx, &g.rolloutDev), "PutRolloutDevice")
	g.report = fullErrorReport(f, tid, g.device.ID, g.project.ID, "fp-graph", 1)
	g.group = f.record(t, &g.report)
	g.audit = fullAuditEvent(f, tid, g.user.ID, "device.create", "device", g.device.ID)
	f.must(t, f.s.CreateAuditEvent(ctx, &g.audit), "CreateAuditEvent")
	g.settings = fullSettings(tid)
	f.must(t, f.s.PutTenantSettings(ctx, &g.settings), "PutTenantSettings")
	return g
}

// check reads every record of the graph back and compares it with what was written.
func (g *graph) check(t *testing.T, f *fixture) {
	t.Helper()
	ctx := t.Context()
	tid := g.tenant.ID
	read := func(what string, want any, fn func() (any, error)) {
		t.Helper()
		got, err := fn()
		if err != nil {
			t.Errorf("%s: %s of tenant %s: %v", f.s.Backend(), what, g.tenant.Slug, err)
			return
		}
		f.equal(t, what, got, want)
	}
	read("Tenant", g.tenant, func() (any, error) { return f.s.Tenant(ctx, tid) })
	read("Membership", g.membership, func() (any, error) { return f.s.Membership(ctx, tid, g.user.ID) })
	read("APIToken", g.token, func() (any, error) { return f.s.APIToken(ctx, tid, g.token.ID) })
	read("APITokenByHash", g.token, func() (any, error) { return f.s.APITokenByHash(ctx, g.token.Hash) })
	read("Invitation", g.invitation, func() (any, error) { return f.s.Invitation(ctx, tid, g.invitation.ID) })
	read("Project", g.project, func() (any, error) { return f.s.Project(ctx, tid, g.project.ID) })
	read("Release", g.release, func() (any, error) { return f.s.Release(ctx, tid, g.release.ID) })
	read("Device", g.device, func() (any, error) { return f.s.Device(ctx, tid, g.device.ID) })
	read("DeviceAuth", store.DeviceAuth{DeviceID: g.device.ID, TenantID: tid, SecretHash: g.device.SecretHash, Disabled: g.device.Disabled},
		func() (any, error) { return f.s.DeviceAuth(ctx, g.device.ID) })
	read("ConfigEntry", g.entry, func() (any, error) {
		return f.s.ConfigEntry(ctx, tid, g.entry.Scope, g.entry.ScopeID, g.entry.Key)
	})
	read("ConfigVersion", g.version, func() (any, error) { return f.s.ConfigVersion(ctx, tid, g.device.ID, g.version.Version) })
	read("Rollout", g.rollout, func() (any, error) { return f.s.Rollout(ctx, tid, g.rollout.ID) })
	read("Command", g.command, func() (any, error) { return f.s.Command(ctx, tid, g.command.ID) })
	read("pending Command", g.pending, func() (any, error) { return f.s.Command(ctx, tid, g.pending.ID) })
	read("RolloutDevice", g.rolloutDev, func() (any, error) { return f.s.RolloutDevice(ctx, tid, g.rollout.ID, g.device.ID) })
	read("ErrorGroup", g.group, func() (any, error) { return f.s.ErrorGroup(ctx, tid, g.group.ID) })
	read("ErrorReports", []store.ErrorReport{g.report}, func() (any, error) {
		p, err := f.s.ListErrorReports(ctx, tid, g.group.ID, "", store.ListOptions{})
		return p.Items, err
	})
	read("AuditEvents", []store.AuditEvent{g.audit}, func() (any, error) {
		p, err := f.s.ListAuditEvents(ctx, tid, store.AuditFilter{}, store.ListOptions{})
		return p.Items, err
	})
	read("TenantSettings", g.settings, func() (any, error) { return f.s.TenantSettings(ctx, tid) })
}

// checkGone verifies that nothing of the graph's tenant can be found any more.
func (g *graph) checkGone(t *testing.T, f *fixture) {
	t.Helper()
	ctx := t.Context()
	tid := g.tenant.ID
	gone := func(what string, err error) {
		t.Helper()
		f.wantErr(t, err, store.ErrNotFound, "%s of a deleted tenant", what)
	}
	_, err := f.s.Tenant(ctx, tid)
	gone("Tenant", err)
	_, err = f.s.TenantBySlug(ctx, g.tenant.Slug)
	gone("TenantBySlug", err)
	_, err = f.s.Membership(ctx, tid, g.user.ID)
	gone("Membership", err)
	_, err = f.s.APIToken(ctx, tid, g.token.ID)
	gone("APIToken", err)
	_, err = f.s.APITokenByHash(ctx, g.token.Hash)
	gone("APITokenByHash", err)
	_, err = f.s.Invitation(ctx, tid, g.invitation.ID)
	gone("Invitation", err)
	_, err = f.s.InvitationByTokenHash(ctx, g.invitation.TokenHash)
	gone("InvitationByTokenHash", err)
	_, err = f.s.Project(ctx, tid, g.project.ID)
	gone("Project", err)
	_, err = f.s.Release(ctx, tid, g.release.ID)
	gone("Release", err)
	_, err = f.s.Device(ctx, tid, g.device.ID)
	gone("Device", err)
	_, err = f.s.DeviceAuth(ctx, g.device.ID)
	gone("DeviceAuth", err)
	_, err = f.s.ConfigEntry(ctx, tid, g.entry.Scope, g.entry.ScopeID, g.entry.Key)
	gone("ConfigEntry", err)
	_, err = f.s.LatestConfigVersion(ctx, tid, g.device.ID)
	gone("LatestConfigVersion", err)
	_, err = f.s.Rollout(ctx, tid, g.rollout.ID)
	gone("Rollout", err)
	_, err = f.s.RolloutDevice(ctx, tid, g.rollout.ID, g.device.ID)
	gone("RolloutDevice", err)
	_, err = f.s.Command(ctx, tid, g.command.ID)
	gone("Command", err)
	_, err = f.s.ErrorGroup(ctx, tid, g.group.ID)
	gone("ErrorGroup", err)
	_, err = f.s.TenantSettings(ctx, tid)
	gone("TenantSettings", err)
	events, err := f.s.ListAuditEvents(ctx, tid, store.AuditFilter{}, store.ListOptions{})
	f.must(t, err, "ListAuditEvents of a deleted tenant")
	if len(events.Items) != 0 {
		t.Errorf("%s: ListAuditEvents of a deleted tenant = %d events, want 0", f.s.Backend(), len(events.Items))
	}
	reports, err := f.s.ListErrorReports(ctx, tid, "", g.device.ID, store.ListOptions{})
	f.must(t, err, "ListErrorReports of a deleted tenant")
	if len(reports.Items) != 0 {
		t.Errorf("%s: ListErrorReports of a deleted tenant = %d reports, want 0", f.s.Backend(), len(reports.Items))
	}
}

func testIsolation(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"OtherTenantIsNotFound", testIsolationNotFound},
		{"ListsShowOnlyTheTenant", testIsolationLists},
	})
}

// testIsolationNotFound calls every tenant-scoped getter, updater and deleter with tenant B's
// ID and tenant A's record IDs: each is ErrNotFound, and A's records are left as they were.
func testIsolationNotFound(t *testing.T, f *fixture) {
	a, b := f.graph(t), f.graph(t)
	B := b.tenant.ID
	other := f.user(t)
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Membership", func(ctx context.Context) error { _, err := f.s.Membership(ctx, B, a.user.ID); return err }},
		{"UpdateMembershipRole", func(ctx context.Context) error {
			return f.s.UpdateMembershipRole(ctx, B, a.user.ID, store.RoleOwner)
		}},
		{"DeleteMembership", func(ctx context.Context) error { return f.s.DeleteMembership(ctx, B, a.user.ID) }},
		{"APIToken", func(ctx context.Context) error { _, err := f.s.APIToken(ctx, B, a.token.ID); return err }},
		{"TouchAPIToken", func(ctx context.Context) error { return f.s.TouchAPIToken(ctx, B, a.token.ID, at(999)) }},
		{"DeleteAPIToken", func(ctx context.Context) error { return f.s.DeleteAPIToken(ctx, B, a.token.ID) }},
		{"Invitation", func(ctx context.Context) error { _, err := f.s.Invitation(ctx, B, a.invitation.ID); return err }},
		{"AcceptInvitation", func(ctx context.Context) error {
			return f.s.AcceptInvitation(ctx, B, a.invitation.ID, other.ID, at(999))
		}},
		{"DeleteInvitation", func(ctx context.Context) error { return f.s.DeleteInvitation(ctx, B, a.invitation.ID) }},
		{"Project", func(ctx context.Context) error { _, err := f.s.Project(ctx, B, a.project.ID); return err }},
		{"UpdateProject", func(ctx context.Context) error {
			p := a.project
			p.TenantID, p.Name, p.Description = B, f.name("hijacked"), "hijacked"
			return f.s.UpdateProject(ctx, &p)
		}},
		{"DeleteProject", func(ctx context.Context) error { return f.s.DeleteProject(ctx, B, a.project.ID) }},
		{"Release", func(ctx context.Context) error { _, err := f.s.Release(ctx, B, a.release.ID); return err }},
		{"ReleaseByVersion", func(ctx context.Context) error {
			_, err := f.s.ReleaseByVersion(ctx, B, a.project.ID, a.release.Version)
			return err
		}},
		{"UpdateReleaseNotes", func(ctx context.Context) error {
			return f.s.UpdateReleaseNotes(ctx, B, a.release.ID, "hijacked")
		}},
		{"DeleteRelease", func(ctx context.Context) error { return f.s.DeleteRelease(ctx, B, a.release.ID) }},
		{"Device", func(ctx context.Context) error { _, err := f.s.Device(ctx, B, a.device.ID); return err }},
		{"UpdateDevice", func(ctx context.Context) error {
			d := a.device
			d.TenantID, d.Name, d.ProjectID, d.Tags = B, "hijacked", "", nil
			return f.s.UpdateDevice(ctx, &d)
		}},
		{"DeleteDevice", func(ctx context.Context) error { return f.s.DeleteDevice(ctx, B, a.device.ID) }},
		{"SetDeviceCredentials", func(ctx context.Context) error {
			return f.s.SetDeviceCredentials(ctx, B, a.device.ID, f.hash(), []byte("k"), at(999))
		}},
		{"SetDevicePresence", func(ctx context.Context) error {
			return f.s.SetDevicePresence(ctx, B, a.device.ID, store.Presence{Online: false, ChangedAt: at(999), LastSeenAt: at(999)})
		}},
		{"SetDeviceMetadata", func(ctx context.Context) error {
			return f.s.SetDeviceMetadata(ctx, B, a.device.ID, fullMetadata(99))
		}},
		{"SetDeviceConfigSync", func(ctx context.Context) error {
			return f.s.SetDeviceConfigSync(ctx, B, a.device.ID, store.ConfigSync{State: store.ConfigPending, UpdatedAt: at(999)})
		}},
		{"ConfigEntry", func(ctx context.Context) error {
			_, err := f.s.ConfigEntry(ctx, B, a.entry.Scope, a.entry.ScopeID, a.entry.Key)
			return err
		}},
		{"DeleteConfigEntry", func(ctx context.Context) error {
			return f.s.DeleteConfigEntry(ctx, B, a.entry.Scope, a.entry.ScopeID, a.entry.Key, a.entry.Version)
		}},
		{"ConfigVersion", func(ctx context.Context) error {
			_, err := f.s.ConfigVersion(ctx, B, a.device.ID, a.version.Version)
			return err
		}},
		{"LatestConfigVersion", func(ctx context.Context) error {
			_, err := f.s.LatestConfigVersion(ctx, B, a.device.ID)
			return err
		}},
		{"Command", func(ctx context.Context) error { _, err := f.s.Command(ctx, B, a.pending.ID); return err }},
		{"TransitionCommand", func(ctx context.Context) error {
			_, err := f.s.TransitionCommand(ctx, B, a.pending.ID, store.CommandTransition{
				From: []store.CommandState{store.CommandQueued, store.CommandDelivered}, To: store.CommandFailed, Error: "hijacked", At: at(999),
			})
			return err
		}},
		{"Rollout", func(ctx context.Context) error { _, err := f.s.Rollout(ctx, B, a.rollout.ID); return err }},
		{"UpdateRollout", func(ctx context.Context) error {
			r := a.rollout
			r.TenantID, r.State = B, store.RolloutAborted
			return f.s.UpdateRollout(ctx, &r)
		}},
		{"DeleteRollout", func(ctx context.Context) error { return f.s.DeleteRollout(ctx, B, a.rollout.ID) }},
		{"RolloutDevice", func(ctx context.Context) error {
			_, err := f.s.RolloutDevice(ctx, B, a.rollout.ID, a.device.ID)
			return err
		}},
		{"PutRolloutDevice", func(ctx context.Context) error {
			rd := a.rolloutDev
			rd.TenantID, rd.State, rd.UpdatedAt = B, store.UpdateSkipped, at(999)
			return f.s.PutRolloutDevice(ctx, &rd)
		}},
		{"ErrorGroup", func(ctx context.Context) error { _, err := f.s.ErrorGroup(ctx, B, a.group.ID); return err }},
		{"SetErrorGroupResolved", func(ctx context.Context) error {
			return f.s.SetErrorGroupResolved(ctx, B, a.group.ID, true, other.ID, at(999))
		}},
		{"DeleteErrorGroup", func(ctx context.Context) error { return f.s.DeleteErrorGroup(ctx, B, a.group.ID) }},
	}
	for _, c := range calls {
		err := c.call(t.Context())
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %s with tenant B's ID on tenant A's record: got %v, want ErrNotFound", f.s.Backend(), c.name, err)
		}
	}

	ctx := t.Context()
	// Batch and conditional writes under B leave A alone too.
	f.must(t, f.s.TouchDevices(ctx, B, []string{a.device.ID}, at(999)), "TouchDevices under tenant B")
	stale := a.entry
	stale.TenantID, stale.Value = B, "hijacked"
	f.wantErr(t, f.s.PutConfigEntries(ctx, []store.ConfigEntry{stale}), store.ErrConflict,
		"PutConfigEntries under tenant B with tenant A's version (the key does not exist in B)")
	n, err := f.s.ExpireCommands(ctx, B, at(100000))
	f.must(t, err, "ExpireCommands")
	if n != 1 { // B's own pending command
		t.Errorf("%s: ExpireCommands of tenant B = %d, want 1 (its own command only)", f.s.Backend(), n)
	}
	b.pending.State = store.CommandExpired
	if got, err := f.s.Command(ctx, B, b.pending.ID); err == nil {
		b.pending.UpdatedAt, b.pending.CompletedAt = got.UpdatedAt, got.CompletedAt // not defined for expiry
	}
	pending, err := f.s.PendingCommands(ctx, B, a.device.ID, at(0))
	f.must(t, err, "PendingCommands")
	if len(pending) != 0 {
		t.Errorf("%s: PendingCommands under tenant B for tenant A's device = %d commands, want 0", f.s.Backend(), len(pending))
	}
	if a.group.ID == b.group.ID {
		t.Errorf("%s: one fingerprint in two tenants shares group %s", f.s.Backend(), a.group.ID)
	}

	a.check(t, f)
	b.check(t, f)
}

// testIsolationLists lists with tenant B's ID (and tenant A's parent IDs, where a list takes
// one): only B's records ever appear.
func testIsolationLists(t *testing.T, f *fixture) {
	ctx := t.Context()
	a, b := f.graph(t), f.graph(t)
	B := b.tenant.ID
	only := func(what string, got []string, want ...string) {
		t.Helper()
		f.equalKeys(t, what+" under tenant B", got, want)
	}
	opts := store.ListOptions{}

	ms, err := f.s.ListMemberships(ctx, B, opts)
	f.must(t, err, "ListMemberships")
	only("ListMemberships", keys(ms.Items, func(v store.Membership) string { return v.ID }), b.membership.ID)
	toks, err := f.s.ListAPITokens(ctx, B, opts)
	f.must(t, err, "ListAPITokens")
	only("ListAPITokens", keys(toks.Items, func(v store.APIToken) string { return v.ID }), b.token.ID)
	invs, err := f.s.ListInvitations(ctx, B, opts)
	f.must(t, err, "ListInvitations")
	only("ListInvitations", keys(invs.Items, func(v store.Invitation) string { return v.ID }), b.invitation.ID)
	ps, err := f.s.ListProjects(ctx, B, opts)
	f.must(t, err, "ListProjects")
	only("ListProjects", keys(ps.Items, func(v store.Project) string { return v.ID }), b.project.ID)
	rels, err := f.s.ListReleases(ctx, B, a.project.ID, opts)
	f.must(t, err, "ListReleases")
	only("ListReleases of tenant A's project", keys(rels.Items, func(v store.Release) string { return v.ID }))
	devs, err := f.s.ListDevices(ctx, B, store.DeviceFilter{}, opts)
	f.must(t, err, "ListDevices")
	only("ListDevices", keys(devs.Items, func(v store.Device) string { return v.ID }), b.device.ID)
	devs, err = f.s.ListDevices(ctx, B, store.DeviceFilter{ProjectID: a.project.ID}, opts)
	f.must(t, err, "ListDevices")
	only("ListDevices of tenant A's project", keys(devs.Items, func(v store.Device) string { return v.ID }))
	devs, err = f.s.ListDevices(ctx, B, store.DeviceFilter{Search: a.device.ID}, opts)
	f.must(t, err, "ListDevices")
	only("ListDevices searching tenant A's device ID", keys(devs.Items, func(v store.Device) string { return v.ID }))
	count, err := f.s.CountDevices(ctx, B, store.DeviceFilter{})
	f.must(t, err, "CountDevices")
	if count != 1 {
		t.Errorf("%s: CountDevices under tenant B = %d, want 1", f.s.Backend(), count)
	}
	entries, err := f.s.ConfigEntries(ctx, B, a.entry.Scope, a.entry.ScopeID)
	f.must(t, err, "ConfigEntries")
	only("ConfigEntries of tenant A's device", keys(entries, func(v store.ConfigEntry) string { return v.Key }))
	vers, err := f.s.ListConfigVersions(ctx, B, a.device.ID, opts)
	f.must(t, err, "ListConfigVersions")
	only("ListConfigVersions of tenant A's device", keys(vers.Items, func(v store.ConfigVersion) string { return v.DeviceID }))
	cmds, err := f.s.ListCommands(ctx, B, store.CommandFilter{}, opts)
	f.must(t, err, "ListCommands")
	only("ListCommands", keys(cmds.Items, func(v store.Command) string { return v.ID }), b.command.ID, b.pending.ID)
	cmds, err = f.s.ListCommands(ctx, B, store.CommandFilter{DeviceID: a.device.ID}, opts)
	f.must(t, err, "ListCommands")
	only("ListCommands of tenant A's device", keys(cmds.Items, func(v store.Command) string { return v.ID }))
	pending, err := f.s.PendingCommands(ctx, B, a.device.ID, at(0))
	f.must(t, err, "PendingCommands")
	only("PendingCommands of tenant A's device", keys(pending, func(v store.Command) string { return v.ID }))
	ros, err := f.s.ListRollouts(ctx, B, store.RolloutFilter{}, opts)
	f.must(t, err, "ListRollouts")
	only("ListRollouts", keys(ros.Items, func(v store.Rollout) string { return v.ID }), b.rollout.ID)
	rds, err := f.s.ListRolloutDevices(ctx, B, a.rollout.ID, opts)
	f.must(t, err, "ListRolloutDevices")
	only("ListRolloutDevices of tenant A's rollout", keys(rds.Items, func(v store.RolloutDevice) string { return v.DeviceID }))
	hist, err := f.s.DeviceUpdates(ctx, B, a.device.ID)
	f.must(t, err, "DeviceUpdates")
	only("DeviceUpdates of tenant A's device", keys(hist, func(v store.RolloutDevice) string { return v.RolloutID }))
	counts, err := f.s.CountRolloutDevices(ctx, B, a.rollout.ID)
	f.must(t, err, "CountRolloutDevices")
	for state, n := range counts {
		if n != 0 {
			t.Errorf("%s: CountRolloutDevices under tenant B of tenant A's rollout: %s = %d, want 0", f.s.Backend(), state, n)
		}
	}
	groups, err := f.s.ListErrorGroups(ctx, B, store.ErrorGroupFilter{}, opts)
	f.must(t, err, "ListErrorGroups")
	only("ListErrorGroups", keys(groups.Items, func(v store.ErrorGroup) string { return v.ID }), b.group.ID)
	groups, err = f.s.ListErrorGroups(ctx, B, store.ErrorGroupFilter{DeviceID: a.device.ID}, opts)
	f.must(t, err, "ListErrorGroups")
	only("ListErrorGroups of tenant A's device", keys(groups.Items, func(v store.ErrorGroup) string { return v.ID }))
	gdevs, err := f.s.ErrorGroupDevices(ctx, B, a.group.ID)
	f.must(t, err, "ErrorGroupDevices")
	only("ErrorGroupDevices of tenant A's group", keys(gdevs, func(v store.ErrorGroupDevice) string { return v.DeviceID }))
	reps, err := f.s.ListErrorReports(ctx, B, a.group.ID, "", opts)
	f.must(t, err, "ListErrorReports")
	only("ListErrorReports of tenant A's group", keys(reps.Items, func(v store.ErrorReport) string { return v.ID }))
	trend, err := f.s.CountErrorReportsByDay(ctx, B, a.group.ID, a.report.ReceivedAt, 1)
	f.must(t, err, "CountErrorReportsByDay")
	f.equal(t, "CountErrorReportsByDay under tenant B of tenant A's group", trend, []int64{0})
	reps, err = f.s.ListErrorReports(ctx, B, "", a.device.ID, opts)
	f.must(t, err, "ListErrorReports")
	only("ListErrorReports of tenant A's device", keys(reps.Items, func(v store.ErrorReport) string { return v.ID }))
	evs, err := f.s.ListAuditEvents(ctx, B, store.AuditFilter{}, opts)
	f.must(t, err, "ListAuditEvents")
	only("ListAuditEvents", keys(evs.Items, func(v store.AuditEvent) string { return v.ID }), b.audit.ID)
	evs, err = f.s.ListAuditEvents(ctx, B, store.AuditFilter{ResourceID: a.device.ID}, opts)
	f.must(t, err, "ListAuditEvents")
	only("ListAuditEvents of tenant A's device", keys(evs.Items, func(v store.AuditEvent) string { return v.ID }))
}
