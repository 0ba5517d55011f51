package storetest

import (
	"testing"

	"github.com/espadmin/espadmin/store"
)

func fullAuditEvent(f *fixture, tenantID, actor, action, resourceType, resourceID string) store.AuditEvent {
	return store.AuditEvent{
		ID:           f.id(),
		TenantID:     tenantID,
		ActorUserID:  actor,
		ActorTokenID: "token-" + f.id(),
		Action:       action,
		ResourceType: resourceType,
		ResourceID:   resourceID,
		RemoteAddr:   "[2001:db8::1]:443",
		Details:      `{"name":"Kitchen Sensor","tags":["a","b"]}`,
		CreatedAt:    at(80),
	}
}

func testAudit(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"RoundTrip", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			in := fullAuditEvent(f, tn.ID, "user-1", "device.create", "device", "dev-1")
			want := in
			f.must(t, f.s.CreateAuditEvent(ctx, &in), "CreateAuditEvent")
			page, err := f.s.ListAuditEvents(ctx, tn.ID, store.AuditFilter{}, store.ListOptions{})
			f.must(t, err, "ListAuditEvents")
			if len(page.Items) != 1 {
				t.Fatalf("%s: ListAuditEvents = %d events, want 1", f.s.Backend(), len(page.Items))
			}
			f.equal(t, "AuditEvent after CreateAuditEvent", page.Items[0], want)

			assigned := store.AuditEvent{TenantID: tn.ID, Action: "member.invite", ResourceType: "invitation", Details: "{}"}
			f.must(t, f.s.CreateAuditEvent(ctx, &assigned), "CreateAuditEvent with an empty ID")
			if assigned.ID == "" || assigned.CreatedAt.IsZero() {
				t.Errorf("%s: CreateAuditEvent left ID %q CreatedAt %v", f.s.Backend(), assigned.ID, assigned.CreatedAt)
			}
		}},
		{"Filters", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			mk := func(actor, action, rtype, rid string) store.AuditEvent {
				e := fullAuditEvent(f, tn.ID, actor, action, rtype, rid)
				f.must(t, f.s.CreateAuditEvent(ctx, &e), "CreateAuditEvent")
				return e
			}
			e1 := mk("alice", "device.create", "device", "d1")
			e2 := mk("bob", "device.update", "device", "d1")
			e3 := mk("alice", "config.put", "device", "d2")
			e4 := mk("", "release.create", "release", "r1") // by a tenant token
			other := f.tenant(t)
			e := fullAuditEvent(f, other.ID, "alice", "device.create", "device", "d1")
			f.must(t, f.s.CreateAuditEvent(ctx, &e), "CreateAuditEvent")

			id := func(e store.AuditEvent) string { return e.ID }
			cases := []struct {
				name   string
				filter store.AuditFilter
				want   []store.AuditEvent
			}{
				{"none", store.AuditFilter{}, []store.AuditEvent{e1, e2, e3, e4}},
				{"actor", store.AuditFilter{ActorUserID: "alice"}, []store.AuditEvent{e1, e3}},
				{"action", store.AuditFilter{Action: "device.update"}, []store.AuditEvent{e2}},
				{"resource type", store.AuditFilter{ResourceType: "device"}, []store.AuditEvent{e1, e2, e3}},
				{"resource", store.AuditFilter{ResourceType: "device", ResourceID: "d1"}, []store.AuditEvent{e1, e2}},
				{"resource ID", store.AuditFilter{ResourceID: "r1"}, []store.AuditEvent{e4}},
				{"actor and resource", store.AuditFilter{ActorUserID: "alice", ResourceID: "d1"}, []store.AuditEvent{e1}},
				{"no match", store.AuditFilter{Action: "device"}, nil},
			}
			for _, c := range cases {
				page, err := f.s.ListAuditEvents(ctx, tn.ID, c.filter, store.ListOptions{})
				f.must(t, err, "ListAuditEvents %s", c.name)
				f.equalKeys(t, "ListAuditEvents filter "+c.name, keys(page.Items, id), keys(c.want, id))
			}
			page, err := f.s.ListAuditEvents(ctx, tn.ID, store.AuditFilter{}, store.ListOptions{Desc: true})
			f.must(t, err, "ListAuditEvents")
			f.equalKeys(t, "ListAuditEvents newest first", keys(page.Items, id), []string{e4.ID, e3.ID, e2.ID, e1.ID})
		}},
	})
}
