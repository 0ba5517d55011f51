package server

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
)

// invite creates an invitation as c and returns the response and the token from its link.
func invite(t *testing.T, c *apiClient, email, role string) (map[string]any, string) {
	t.Helper()
	status, resp := c.do("POST", "/api/v1/tenants/alpha/invitations", map[string]any{"email": email, "role": role})
	if status != 201 {
		t.Fatalf("invite %s: %d %v", email, status, resp)
	}
	u, err := url.Parse(resp["link"].(string))
	if err != nil || u.Path != invitationAcceptPath {
		t.Fatalf("link %v", resp["link"])
	}
	return resp, u.Query().Get("token")
}

func TestInvitations(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	h := w.h
	admin := w.session(t, "alpha", store.RoleAdmin)

	inv, token := invite(t, admin, "New.Person@Example.test", "developer")
	if inv["email"] != "new.person@example.test" || inv["status"] != "pending" || inv["email_sent"] != true || token == "" {
		t.Fatalf("invitation %v", inv)
	}
	exp, _ := time.Parse(time.RFC3339, inv["expires_at"].(string))
	if want := h.clock.Now().Add(7 * 24 * time.Hour); !exp.Equal(want.Truncate(time.Millisecond)) {
		t.Errorf("expires_at %v, want %v", exp, want)
	}
	msgs := h.mail.Messages()
	if len(msgs) != 1 || msgs[0].To != "new.person@example.test" || !strings.Contains(msgs[0].Body, inv["link"].(string)) {
		t.Fatalf("mail %+v", msgs)
	}

	// Someone else with the link cannot use it.
	other := h.signupUser(t, "someone.else@example.test", testPassword)
	status, resp := other.do("POST", "/api/v1/invitations/accept", map[string]any{"token": token})
	wantError(t, "accept with another email", status, resp, 403)

	invitee := h.signupUser(t, "new.person@example.test", testPassword)
	status, resp = invitee.do("POST", "/api/v1/invitations/accept", map[string]any{"token": token})
	if status != 200 || resp["slug"] != "alpha" || resp["role"] != "developer" {
		t.Fatalf("accept: %d %v", status, resp)
	}
	if status, resp := invitee.do("GET", "/api/v1/tenants/alpha/devices-do-not-exist-yet", nil); status != 404 {
		t.Errorf("unknown route: %d %v", status, resp)
	}
	if status, _ := invitee.do("GET", "/api/v1/tenants/alpha/members", nil); status != 200 {
		t.Errorf("new member cannot list members: %d", status)
	}
	_, list := admin.do("GET", "/api/v1/tenants/alpha/members?limit=500", nil)
	found := false
	for _, m := range items(t, list) {
		if m["email"] == "new.person@example.test" {
			found = m["role"] == "developer"
		}
	}
	if !found {
		t.Errorf("invitee not a developer: %v", list)
	}
	// Used.
	status, resp = invitee.do("POST", "/api/v1/invitations/accept", map[string]any{"token": token})
	wantError(t, "accept twice", status, resp, 409)
	if c := errCode(t, resp); c != "invitation_used" {
		t.Errorf("code %s", c)
	}
	_, invs := admin.do("GET", "/api/v1/tenants/alpha/invitations", nil)
	if got := items(t, invs); got[0]["id"] != inv["id"] || got[0]["status"] != "accepted" || got[0]["link"] != nil {
		t.Errorf("invitation list (newest first): %v", got)
	}

	// Revoked.
	rev, revToken := invite(t, admin, "revoked@example.test", "viewer")
	if status, _ := admin.do("DELETE", "/api/v1/tenants/alpha/invitations/"+rev["id"].(string), nil); status != 204 {
		t.Fatalf("revoke: %d", status)
	}
	revoked := h.signupUser(t, "revoked@example.test", testPassword)
	status, resp = revoked.do("POST", "/api/v1/invitations/accept", map[string]any{"token": revToken})
	wantError(t, "accept revoked", status, resp, 404)

	// Expired, by the injected clock.
	_, oldToken := invite(t, admin, "late@example.test", "viewer")
	h.signupUser(t, "late@example.test", testPassword)
	h.clock.Advance(7*24*time.Hour + time.Second)
	// The earlier sessions expired meanwhile.
	late := h.login(t, "late@example.test")
	admin = w.session(t, "alpha", store.RoleAdmin)
	status, resp = late.do("POST", "/api/v1/invitations/accept", map[string]any{"token": oldToken})
	wantError(t, "accept expired", status, resp, 410)
	if _, err := h.st.Membership(t.Context(), tenantID(t, h.st, "alpha"), lateUserID(t, h, "late@example.test")); err == nil {
		t.Error("expired invitation made a member")
	}

	// Unknown token, admin inviting an owner, inviting a member.
	status, resp = late.do("POST", "/api/v1/invitations/accept", map[string]any{"token": "nope"})
	wantError(t, "accept unknown", status, resp, 404)
	status, resp = admin.do("POST", "/api/v1/tenants/alpha/invitations", map[string]any{"email": "boss@example.test", "role": "owner"})
	wantError(t, "admin invites owner", status, resp, 403)
	status, resp = admin.do("POST", "/api/v1/tenants/alpha/invitations", map[string]any{"email": memberEmail("alpha", store.RoleViewer), "role": "admin"})
	wantError(t, "invite a member", status, resp, 409)
	owner := w.session(t, "alpha", store.RoleOwner)
	if status, _ := owner.do("POST", "/api/v1/tenants/alpha/invitations", map[string]any{"email": "boss@example.test", "role": "owner"}); status != 201 {
		t.Errorf("owner invites owner: %d", status)
	}
}

func lateUserID(t *testing.T, h *harness, email string) string {
	t.Helper()
	u, err := h.st.UserByEmail(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// TestInvitationWithoutMail: with no SMTP the invitation still works and the inviter gets the
// link to pass on.
func TestInvitationWithoutMail(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t, withoutMailer())
	admin := w.session(t, "alpha", store.RoleAdmin)
	inv, token := invite(t, admin, "nomail@example.test", "viewer")
	if inv["email_sent"] != false || !strings.HasPrefix(inv["link"].(string), w.h.url+"/invitations/accept?token=") {
		t.Fatalf("invitation %v", inv)
	}
	u := w.h.signupUser(t, "nomail@example.test", testPassword)
	if status, resp := u.do("POST", "/api/v1/invitations/accept", map[string]any{"token": token}); status != 200 || resp["role"] != "viewer" {
		t.Fatalf("accept: %d %v", status, resp)
	}
}
