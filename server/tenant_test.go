package server

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/espadmin/espadmin/store"
)

func TestTenantLifecycle(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	h := w.h
	c := w.session(t, "alpha", store.RoleViewer)

	status, resp := c.do("POST", "/api/v1/tenants", map[string]any{"slug": "gamma", "name": "  Gamma Labs "})
	if status != 201 || resp["slug"] != "gamma" || resp["name"] != "Gamma Labs" || resp["role"] != "owner" {
		t.Fatalf("create: %d %v", status, resp)
	}
	_, list := c.do("GET", "/api/v1/tenants", nil)
	roles := map[string]any{}
	for _, it := range items(t, list) {
		roles[it["slug"].(string)] = it["role"]
	}
	if !reflect.DeepEqual(roles, map[string]any{"alpha": "viewer", "gamma": "owner"}) {
		t.Errorf("tenants %v", roles)
	}
	// A token lists only its own tenant.
	tok := h.tokenClient(h.apiToken(t, memberEmail("alpha", store.RoleViewer), "alpha", store.ScopeDevicesRead))
	_, list = tok.do("GET", "/api/v1/tenants", nil)
	if got := items(t, list); len(got) != 1 || got[0]["slug"] != "alpha" {
		t.Errorf("token's tenants %v", got)
	}

	status, resp = c.do("PATCH", "/api/v1/tenants/gamma", map[string]any{"slug": "gamma-2"})
	if status != 200 || resp["slug"] != "gamma-2" {
		t.Fatalf("rename: %d %v", status, resp)
	}
	if status, _ := c.do("GET", "/api/v1/tenants/gamma", nil); status != 404 {
		t.Errorf("old slug: %d", status)
	}
	status, resp = c.do("PATCH", "/api/v1/tenants/gamma-2", map[string]any{"slug": "beta"})
	wantError(t, "rename to a taken slug", status, resp, 422)
	status, resp = c.do("DELETE", "/api/v1/tenants/gamma-2", map[string]any{"confirm": "gamma"})
	wantError(t, "delete with the wrong confirmation", status, resp, 422)
	if status, _ := c.do("DELETE", "/api/v1/tenants/gamma-2", map[string]any{"confirm": "gamma-2"}); status != 204 {
		t.Fatalf("delete: %d", status)
	}
	if status, _ := c.do("GET", "/api/v1/tenants/gamma-2", nil); status != 404 {
		t.Errorf("deleted tenant: %d", status)
	}
}

// TestOwnerRules: the last owner cannot be demoted, removed or leave; only owners grant or
// change the owner role; transferring ownership swaps roles.
func TestOwnerRules(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	h := w.h
	owner := w.session(t, "alpha", store.RoleOwner)
	admin := w.session(t, "alpha", store.RoleAdmin)
	ownerID := lateUserID(t, h, memberEmail("alpha", store.RoleOwner))
	adminID := lateUserID(t, h, memberEmail("alpha", store.RoleAdmin))
	members := "/api/v1/tenants/alpha/members/"

	status, resp := owner.do("PATCH", members+ownerID, map[string]any{"role": "admin"})
	wantError(t, "demote last owner", status, resp, 409)
	if errCode(t, resp) != "last_owner" {
		t.Errorf("code %v", resp)
	}
	status, resp = owner.do("DELETE", members+ownerID, nil)
	wantError(t, "remove last owner", status, resp, 409)
	status, resp = admin.do("PATCH", members+w.a["user"], map[string]any{"role": "owner"})
	wantError(t, "admin grants owner", status, resp, 403)
	status, resp = admin.do("PATCH", members+ownerID, map[string]any{"role": "viewer"})
	wantError(t, "admin demotes owner", status, resp, 403)
	status, resp = admin.do("DELETE", members+ownerID, nil)
	wantError(t, "admin removes owner", status, resp, 403)
	status, resp = owner.do("PATCH", members+"nobody", map[string]any{"role": "viewer"})
	wantError(t, "unknown member", status, resp, 404)

	status, resp = owner.do("POST", "/api/v1/tenants/alpha/transfer-ownership", map[string]any{"user_id": adminID})
	if status != 200 || resp["role"] != "admin" {
		t.Fatalf("transfer: %d %v", status, resp)
	}
	roleOf := func(id string) store.Role {
		m, err := h.st.Membership(t.Context(), tenantID(t, h.st, "alpha"), id)
		if err != nil {
			t.Fatal(err)
		}
		return m.Role
	}
	if roleOf(adminID) != store.RoleOwner || roleOf(ownerID) != store.RoleAdmin {
		t.Errorf("after transfer: %s %s", roleOf(adminID), roleOf(ownerID))
	}
	// With two owners one may step down.
	if status, _ := admin.do("PATCH", members+ownerID, map[string]any{"role": "owner"}); status != 200 {
		t.Fatalf("new owner grants owner: %d", status)
	}
	if status, _ := owner.do("POST", "/api/v1/tenants/alpha/leave", nil); status != 204 {
		t.Errorf("an owner leaves while another remains: %d", status)
	}
	if status, _ := owner.do("GET", "/api/v1/tenants/alpha", nil); status != 404 {
		t.Errorf("after leaving: %d", status)
	}
}

// TestAuditTrail: every change is recorded with its actor, token, address and details; the
// log filters and pages; no secret ever appears in it.
func TestAuditTrail(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	h := w.h
	owner := w.session(t, "alpha", store.RoleOwner)
	ownerID := lateUserID(t, h, memberEmail("alpha", store.RoleOwner))
	secrets := append([]string(nil), w.secrets...)

	// Changes through a session.
	_, created := owner.do("POST", "/api/v1/tenants/alpha/tokens", map[string]any{"name": "deploy", "scopes": []string{"admin"}})
	secrets = append(secrets, created["token"].(string))
	tokenID := created["id"].(string)
	inv, invToken := invite(t, owner, "audited@example.test", "viewer")
	secrets = append(secrets, invToken, inv["link"].(string))
	owner.do("PATCH", "/api/v1/tenants/alpha/members/"+w.a["user"], map[string]any{"role": "viewer"})
	owner.do("PATCH", "/api/v1/tenants/alpha", map[string]any{"name": "Alpha Inc"})
	owner.do("DELETE", "/api/v1/tenants/alpha/invitations/"+w.a["invitation"], nil)
	// Changes through the token.
	bearer := h.tokenClient(created["token"].(string))
	if status, _ := bearer.do("DELETE", "/api/v1/tenants/alpha/members/"+w.a["user"], nil); status != 204 {
		t.Fatalf("remove by token: %d", status)
	}
	_, second := bearer.do("POST", "/api/v1/tenants/alpha/tokens", map[string]any{"name": "child", "scopes": []string{"devices:read"}})
	secrets = append(secrets, second["token"].(string))
	bearer.do("DELETE", "/api/v1/tenants/alpha/tokens/"+second["id"].(string), nil)
	// Acceptance is recorded in the tenant too.
	invitee := h.signupUser(t, "audited@example.test", testPassword)
	invitee.do("POST", "/api/v1/invitations/accept", map[string]any{"token": invToken})

	status, resp := owner.do("GET", "/api/v1/tenants/alpha/audit?limit=500", nil)
	if status != 200 {
		t.Fatalf("audit: %d %v", status, resp)
	}
	events := items(t, resp)
	type want struct {
		action, resourceType string
		viaToken             bool
	}
	wants := []want{
		{auditTokenCreate, "token", false},
		{auditInvitationCreate, "invitation", false},
		{auditMemberRole, "member", false},
		{auditTenantUpdate, "tenant", false},
		{auditInvitationRevoke, "invitation", false},
		{auditMemberRemove, "member", true},
		{auditTokenCreate, "token", true},
		{auditTokenDelete, "token", true},
		{auditMemberJoin, "member", false},
	}
	if len(events) != len(wants) {
		t.Fatalf("%d events, want %d: %v", len(events), len(wants), events)
	}
	for i, wnt := range wants {
		ev := events[len(events)-1-i] // newest first
		if ev["action"] != wnt.action || ev["resource_type"] != wnt.resourceType || ev["remote_addr"] != "127.0.0.1" || ev["created_at"] == nil {
			t.Errorf("event %d: %v, want %+v", i, ev, wnt)
		}
		if wnt.action == auditMemberJoin {
			if ev["actor_user_id"] == ownerID || ev["actor_user_id"] == nil {
				t.Errorf("join actor %v", ev)
			}
			continue
		}
		if ev["actor_user_id"] != ownerID {
			t.Errorf("event %d actor %v", i, ev["actor_user_id"])
		}
		if wnt.viaToken != (ev["actor_token_id"] == tokenID) {
			t.Errorf("event %d token %v, via token %v", i, ev["actor_token_id"], wnt.viaToken)
		}
	}
	if d := events[len(events)-3]["details"].(map[string]any); d["from"] != "developer" || d["to"] != "viewer" {
		t.Errorf("role change details %v", d)
	}

	// No secret in any event, read back raw from the store.
	page, err := h.st.ListAuditEvents(t.Context(), tenantID(t, h.st, "alpha"), store.AuditFilter{}, store.ListOptions{Limit: store.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(page.Items)
	for _, s := range secrets {
		if strings.Contains(string(raw), s) {
			t.Errorf("secret %q in the audit log", s)
		}
	}

	// Filters and pages.
	_, resp = owner.do("GET", "/api/v1/tenants/alpha/audit?action=token.create", nil)
	if got := items(t, resp); len(got) != 2 {
		t.Errorf("filter by action: %v", got)
	}
	_, resp = owner.do("GET", "/api/v1/tenants/alpha/audit?resource_type=invitation&actor="+ownerID, nil)
	if got := items(t, resp); len(got) != 2 {
		t.Errorf("filter by resource type and actor: %v", got)
	}
	var seen []any
	cursor := ""
	for range len(wants) + 1 {
		_, resp = owner.do("GET", "/api/v1/tenants/alpha/audit?limit=4&cursor="+cursor, nil)
		for _, ev := range items(t, resp) {
			seen = append(seen, ev["id"])
		}
		if cursor = resp["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if len(seen) != len(wants) || seen[0] != events[0]["id"] {
		t.Errorf("paged %d events, want %d", len(seen), len(wants))
	}
	// The beta tenant's log holds none of this.
	bp, _ := h.st.ListAuditEvents(t.Context(), tenantID(t, h.st, "beta"), store.AuditFilter{}, store.ListOptions{})
	if len(bp.Items) != 0 {
		t.Errorf("beta has %d events", len(bp.Items))
	}
}

func TestScrubDetails(t *testing.T) {
	t.Parallel()
	in := map[string]any{
		"name": "ok", "password": "p", "new_secret": "s", "Token": "t", "api_key": "k",
		"nested": map[string]any{"token_value": "t", "role": "viewer"},
	}
	got, dropped := scrubDetails(in)
	want := map[string]any{"name": "ok", "nested": map[string]any{"role": "viewer"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("scrubbed %v", got)
	}
	if len(dropped) != 5 {
		t.Errorf("dropped %v", dropped)
	}
}

// TestBadInput: malformed or invalid requests get a 4xx in the error shape, and write
// nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	h := w.h
	owner := w.session(t, "alpha", store.RoleOwner)
	big := `{"slug":"big","name":"` + strings.Repeat("x", DefaultBodyLimit) + `"}`
	tests := []struct {
		name, method, path string
		body               any
		status             int
		code               string
		field              string
	}{
		{"malformed JSON", "POST", "/api/v1/tenants", `{"slug": "x",`, 400, "", ""},
		{"not an object", "POST", "/api/v1/tenants", `["slug"]`, 400, "", ""},
		{"trailing data", "POST", "/api/v1/tenants", `{"slug":"t1","name":"T"} {}`, 400, "", ""},
		{"empty body", "POST", "/api/v1/tenants", "", 400, "", ""},
		{"unknown field", "POST", "/api/v1/tenants", map[string]any{"slug": "t2", "name": "T", "owner": "me"}, 400, "unknown_field", ""},
		{"wrong type", "POST", "/api/v1/tenants", map[string]any{"slug": 7, "name": "T"}, 422, "validation_failed", "slug"},
		{"oversized body", "POST", "/api/v1/tenants", big, 413, "payload_too_large", ""},
		{"invalid slug", "POST", "/api/v1/tenants", map[string]any{"slug": "Bad Slug!", "name": "T"}, 422, "validation_failed", "slug"},
		{"blank name", "POST", "/api/v1/tenants", map[string]any{"slug": "t3", "name": "  "}, 422, "validation_failed", "name"},
		{"duplicate slug", "POST", "/api/v1/tenants", map[string]any{"slug": "beta", "name": "B"}, 422, "validation_failed", "slug"},
		{"invalid role", "PATCH", "/api/v1/tenants/alpha/members/" + w.a["user"], map[string]any{"role": "superuser"}, 422, "validation_failed", "role"},
		{"invalid email", "POST", "/api/v1/tenants/alpha/invitations", map[string]any{"email": "not-an-email", "role": "viewer"}, 422, "validation_failed", "email"},
		{"invitation role", "POST", "/api/v1/tenants/alpha/invitations", map[string]any{"email": "a@b.test", "role": "king"}, 422, "validation_failed", "role"},
		{"scopes wrong type", "POST", "/api/v1/tenants/alpha/tokens", map[string]any{"name": "n", "scopes": "admin"}, 422, "validation_failed", "scopes"},
		{"limit out of range", "GET", "/api/v1/tenants/alpha/members?limit=100000", nil, 422, "validation_failed", "limit"},
		{"limit not a number", "GET", "/api/v1/tenants/alpha/audit?limit=ten", nil, 422, "validation_failed", "limit"},
		{"bad cursor", "GET", "/api/v1/tenants/alpha/audit?cursor=%27%20OR%201%3D1", nil, 422, "validation_failed", "cursor"},
		{"transfer to nobody", "POST", "/api/v1/tenants/alpha/transfer-ownership", map[string]any{"user_id": ""}, 422, "validation_failed", "user_id"},
	}
	before := snapshotTenant(t, h.st, tenantID(t, h.st, "alpha"))
	tenants := countTenants(t, h.st)
	for _, tt := range tests {
		status, resp := owner.do(tt.method, tt.path, tt.body)
		if status != tt.status {
			t.Errorf("%s: status %d, want %d; %v", tt.name, status, tt.status, resp)
			continue
		}
		code := errCode(t, resp)
		if tt.code != "" && code != tt.code {
			t.Errorf("%s: code %s, want %s", tt.name, code, tt.code)
		}
		if tt.field != "" {
			fields, _ := resp["error"].(map[string]any)["fields"].(map[string]any)
			if _, ok := fields[tt.field]; !ok {
				t.Errorf("%s: no error for field %s: %v", tt.name, tt.field, resp)
			}
		}
	}
	if after := snapshotTenant(t, h.st, tenantID(t, h.st, "alpha")); after != before {
		t.Errorf("bad input changed the tenant:\n%s\n%s", before, after)
	}
	if n := countTenants(t, h.st); n != tenants {
		t.Errorf("tenants %d, want %d", n, tenants)
	}
}

// interleavingStore runs before once, just ahead of the first membership role change or
// removal it is asked for: a request of another replica landing between this request's
// owner count and its own change.
type interleavingStore struct {
	store.Store
	once   sync.Once
	before func()
}

func (s *interleavingStore) UpdateMembershipRole(ctx context.Context, tenantID, userID string, role store.Role) error {
	s.once.Do(s.before)
	return s.Store.UpdateMembershipRole(ctx, tenantID, userID, role)
}

func (s *interleavingStore) DeleteMembership(ctx context.Context, tenantID, userID string) error {
	s.once.Do(s.before)
	return s.Store.DeleteMembership(ctx, tenantID, userID)
}

// TestOwnersDemotingEachOtherKeepOne: two owners demote (or remove) each other at the same
// moment; both pass the "another owner remains" check, and the change that would leave no
// owner is undone and refused as last_owner.
func TestOwnersDemotingEachOtherKeepOne(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	h := w.h
	tenant := tenantID(t, h.st, "alpha")
	ownerID := lateUserID(t, h, memberEmail("alpha", store.RoleOwner))
	otherID := lateUserID(t, h, memberEmail("alpha", store.RoleAdmin))
	owner := w.session(t, "alpha", store.RoleOwner)
	members := "/api/v1/tenants/alpha/members/"
	roleOf := func(id string) store.Role {
		m, err := h.st.Membership(t.Context(), tenant, id)
		if err != nil {
			t.Fatalf("membership of %s: %v", id, err)
		}
		return m.Role
	}
	for _, tc := range []struct {
		name, method string
		body         map[string]any
	}{
		{"demote", "PATCH", map[string]any{"role": "admin"}},
		{"remove", "DELETE", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Two owners again.
			if err := h.st.UpdateMembershipRole(t.Context(), tenant, ownerID, store.RoleOwner); err != nil {
				t.Fatal(err)
			}
			if err := h.st.UpdateMembershipRole(t.Context(), tenant, otherID, store.RoleOwner); err != nil {
				t.Fatal(err)
			}
			// The other owner's demotion of this one lands while this request runs.
			racing := &interleavingStore{Store: h.st, before: func() {
				if err := h.st.UpdateMembershipRole(context.Background(), tenant, ownerID, store.RoleAdmin); err != nil {
					t.Error(err)
				}
			}}
			_, url, _ := h.startServer(racing)
			c := *owner
			c.base = url
			status, resp := c.do(tc.method, members+otherID, tc.body)
			wantError(t, tc.name+" the other owner while being demoted", status, resp, 409)
			if errCode(t, resp) != "last_owner" {
				t.Errorf("code %v", resp)
			}
			if got := roleOf(otherID); got != store.RoleOwner {
				t.Errorf("the other owner is now %s; the tenant has no owner", got)
			}
			if got := roleOf(ownerID); got != store.RoleAdmin {
				t.Errorf("the concurrent demotion was lost: %s", got)
			}
		})
	}
}
