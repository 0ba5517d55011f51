package server

import (
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/store"
)

// roles in the order the tests iterate.
var testRoles = []store.Role{store.RoleOwner, store.RoleAdmin, store.RoleDeveloper, store.RoleViewer}

// tenantWorld is two tenants with members of every role and a resource of every kind, so a
// test can act in tenant A ("alpha") and probe tenant B ("beta").
type tenantWorld struct {
	h *harness
	// ids maps a path parameter to the ID of one of alpha's (a) or beta's (b) resources.
	a, b map[string]string
	// secrets are values that must never appear in the audit log.
	secrets []string
}

// email of the member of tenant slug with role.
func memberEmail(slug string, role store.Role) string { return string(role) + "@" + slug + ".test" }

func newTenantWorld(t *testing.T, opts ...harnessOption) *tenantWorld {
	t.Helper()
	h := newHarness(t, opts...)
	w := &tenantWorld{h: h}
	w.a = w.populate(t, "alpha")
	w.b = w.populate(t, "beta")
	return w
}

// populate creates tenant slug with one member per role, a further developer (the target of
// member routes), a pending invitation and a tenant token; it returns the path parameters
// naming them.
func (w *tenantWorld) populate(t *testing.T, slug string) map[string]string {
	t.Helper()
	h := w.h
	for _, r := range testRoles {
		h.createUser(t, memberEmail(slug, r), slug, r)
	}
	target := h.createUser(t, "target@"+slug+".test", slug, store.RoleDeveloper)
	tn, err := h.st.TenantBySlug(t.Context(), slug)
	if err != nil {
		t.Fatal(err)
	}
	secret := "invitation-secret-" + slug
	inv := store.Invitation{TenantID: tn.ID, Email: "invitee@" + slug + ".test", Role: store.RoleViewer,
		TokenHash: account.HashSecret(secret), ExpiresAt: h.clock.Now().Add(time.Hour)}
	if err := h.st.CreateInvitation(t.Context(), &inv); err != nil {
		t.Fatal(err)
	}
	tok, err := h.accounts().CreateAPIToken(t.Context(), account.NewAPIToken{TenantID: tn.ID, Name: "ci", Scopes: []string{store.ScopeDevicesRead}})
	if err != nil {
		t.Fatal(err)
	}
	w.secrets = append(w.secrets, secret, tok.Token, testPassword)
	deviceID, commandID := w.populateFleet(t, tn.ID)
	projectID, configKey := w.populateConfig(t, tn.ID, deviceID)
	releaseID, rolloutID := w.populateOTA(t, tn.ID, projectID)
	groupID, reportID := w.populateErrors(t, tn.ID, deviceID)
	ids := w.populateAlerts(t, tn.ID)
	return map[string]string{
		"rule": ids.rule, "channel": ids.channel, "alert": ids.alert, "delivery": ids.delivery,
		"release": releaseID, "rollout": rolloutID,
		"tenant": slug, "user": target.ID, "invitation": inv.ID, "token": tok.APIToken.ID,
		"device": deviceID, "command": commandID, "project": projectID, "key": configKey,
		"group": groupID, "report": reportID,
	}
}

// session returns a client logged in as the member of tenant slug with role.
func (w *tenantWorld) session(t *testing.T, slug string, role store.Role) *apiClient {
	t.Helper()
	return w.h.login(t, memberEmail(slug, role))
}

// fill replaces :params in an Echo path with ids; it fails the test for a parameter it has
// no resource for, so a new kind of route gets a placeholder before it is covered.
func fill(t *testing.T, path string, ids map[string]string) string {
	t.Helper()
	return echoParam.ReplaceAllStringFunc(path, func(m string) string {
		id, ok := ids[m[1:]]
		if !ok {
			t.Fatalf("no placeholder resource for %s in %s: add one to tenantWorld.populate", m, path)
		}
		return id
	})
}

// wantError checks an error response: status and the one error shape.
func wantError(t *testing.T, what string, status int, resp map[string]any, want int) {
	t.Helper()
	if status != want {
		t.Fatalf("%s: status %d, want %d; body %v", what, status, want, resp)
	}
	errCode(t, resp)
}

// countTenants counts all tenants, to prove a failed request wrote nothing.
func countTenants(t *testing.T, st store.Store) int {
	t.Helper()
	p, err := st.ListTenants(t.Context(), store.ListOptions{Limit: store.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	return len(p.Items)
}

func tenantID(t *testing.T, st store.Store, slug string) string {
	t.Helper()
	tn, err := st.TenantBySlug(t.Context(), slug)
	if err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

func items(t *testing.T, resp map[string]any) []map[string]any {
	t.Helper()
	raw, ok := resp["items"].([]any)
	if !ok {
		t.Fatalf("not a page: %v", resp)
	}
	if _, ok := resp["next_cursor"].(string); !ok {
		t.Fatalf("page without next_cursor: %v", resp)
	}
	out := make([]map[string]any, len(raw))
	for i, it := range raw {
		out[i] = it.(map[string]any)
	}
	return out
}

func lower(s string) string { return strings.ToLower(s) }
