package server

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/tests/testkit/poll"
)

func TestSetup(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.newClient()
	if st, resp := c.do("GET", "/api/v1/setup", nil); st != 200 || resp["needed"] != true {
		t.Fatalf("setup status: %d %v", st, resp)
	}
	old, err := h.accounts().PrepareSetup(t.Context())
	if err != nil || old == "" {
		t.Fatalf("prepare: %q %v", old, err)
	}
	token, err := h.accounts().PrepareSetup(t.Context()) // a restart replaces the old URL
	if err != nil {
		t.Fatal(err)
	}
	body := func(tok string) map[string]any {
		return map[string]any{"token": tok, "email": "owner@example.com", "password": "owner password 1",
			"name": "Owner", "tenant_name": "Acme Inc", "tenant_slug": "acme"}
	}
	bad := body(token)
	bad["tenant_slug"] = "Not A Slug"
	for _, tt := range []struct {
		name string
		body map[string]any
		st   int
		code string
	}{
		{"wrong token", body("wrong"), 403, "invalid_token"},
		{"replaced token", body(old), 403, "invalid_token"},
		{"invalid input keeps the token", bad, 422, "validation_failed"},
	} {
		st, resp := c.do("POST", "/api/v1/setup", tt.body)
		if st != tt.st || errCode(t, resp) != tt.code {
			t.Errorf("%s: %d %v", tt.name, st, resp)
		}
	}
	if n, _ := h.st.CountUsers(t.Context()); n != 0 {
		t.Fatalf("%d users after refused setups", n)
	}
	st, resp := c.do("POST", "/api/v1/setup", body(token))
	if st != 201 {
		t.Fatalf("setup: %d %v", st, resp)
	}
	ms := resp["memberships"].([]any)
	if len(ms) != 1 || ms[0].(map[string]any)["tenant_slug"] != "acme" || ms[0].(map[string]any)["role"] != "owner" {
		t.Errorf("memberships %v", ms)
	}
	if st, me := c.do("GET", "/api/v1/auth/me", nil); st != 200 || me["user"].(map[string]any)["email"] != "owner@example.com" {
		t.Errorf("not logged in after setup: %d %v", st, me)
	}
	// Works once.
	again := body(token)
	again["email"], again["tenant_slug"] = "intruder@example.com", "evil"
	if st, resp := h.newClient().do("POST", "/api/v1/setup", again); st != 403 || errCode(t, resp) != "setup_done" {
		t.Errorf("second setup: %d %v", st, resp)
	}
	if st, resp := c.do("GET", "/api/v1/setup", nil); st != 200 || resp["needed"] != false {
		t.Errorf("setup status after: %d %v", st, resp)
	}
	if tok, err := h.accounts().PrepareSetup(t.Context()); err != nil || tok != "" {
		t.Errorf("setup token made with users present: %q %v", tok, err)
	}
}

// linkToken extracts the token parameter from the link in a mail body.
func linkToken(t *testing.T, body string) string {
	t.Helper()
	for _, f := range strings.Fields(body) {
		if strings.HasPrefix(f, "http") && strings.Contains(f, "token=") {
			u, err := url.Parse(f)
			if err != nil {
				t.Fatal(err)
			}
			return u.Query().Get("token")
		}
	}
	t.Fatalf("no link in %q", body)
	return ""
}

func TestPasswordReset(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createUser(t, "ada@example.com", "", "")
	other := h.login(t, "ada@example.com")
	c := h.newClient()

	for _, email := range []string{"ada@example.com", "nobody@example.com"} {
		if st, resp := c.do("POST", "/api/v1/auth/password/forgot", map[string]any{"email": email}); st != 202 {
			t.Fatalf("forgot %s: %d %v", email, st, resp)
		}
	}
	poll.Wait(t, "reset mail", func() bool { return len(h.mail.To("ada@example.com")) == 1 })
	token := linkToken(t, h.mail.To("ada@example.com")[0].Body)

	st, resp := c.do("POST", "/api/v1/auth/password/reset", map[string]any{"token": token, "password": "short"})
	if st != 422 || errCode(t, resp) != "validation_failed" {
		t.Fatalf("weak new password: %d %v", st, resp)
	}
	if st, resp := c.do("POST", "/api/v1/auth/password/reset", map[string]any{"token": token, "password": "a new password!"}); st != 204 {
		t.Fatalf("reset: %d %v", st, resp)
	}
	// Used link refused; other sessions ended; new password works, old does not.
	if st, resp := c.do("POST", "/api/v1/auth/password/reset", map[string]any{"token": token, "password": "another password"}); st != 403 || errCode(t, resp) != "invalid_token" {
		t.Errorf("used link: %d %v", st, resp)
	}
	if st, _ := other.do("GET", "/api/v1/auth/me", nil); st != 401 {
		t.Errorf("session survived the reset: %d", st)
	}
	if st, _ := c.do("POST", "/api/v1/auth/login", map[string]any{"email": "ada@example.com", "password": testPassword}); st != 401 {
		t.Errorf("old password still works: %d", st)
	}
	if st, _ := c.do("POST", "/api/v1/auth/login", map[string]any{"email": "ada@example.com", "password": "a new password!"}); st != 200 {
		t.Errorf("new password refused: %d", st)
	}

	// An expired link is refused (admin link, no mail involved).
	secret, _, err := h.accounts().PasswordResetToken(t.Context(), "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Hour + time.Second)
	if st, resp := c.do("POST", "/api/v1/auth/password/reset", map[string]any{"token": secret, "password": "yet another pw"}); st != 403 || errCode(t, resp) != "invalid_token" {
		t.Errorf("expired link: %d %v", st, resp)
	}
}

func TestChangePasswordAndVerifyEmail(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	u := h.createUser(t, "ada@example.com", "", "")
	c := h.login(t, "ada@example.com")
	other := h.login(t, "ada@example.com")
	if st, resp := c.do("POST", "/api/v1/auth/password", map[string]any{"current_password": "wrong password", "new_password": "a brand new password"}); st != 403 || errCode(t, resp) != "wrong_password" {
		t.Fatalf("wrong current: %d %v", st, resp)
	}
	oldCSRF := c.csrf
	if st, resp := c.do("POST", "/api/v1/auth/password", map[string]any{"current_password": testPassword, "new_password": "a brand new password"}); st != 200 {
		t.Fatalf("change: %d %v", st, resp)
	}
	if c.csrf == oldCSRF {
		t.Error("no fresh session after a password change")
	}
	if st, _ := c.do("GET", "/api/v1/auth/me", nil); st != 200 {
		t.Errorf("own session ended: %d", st)
	}
	if st, _ := other.do("GET", "/api/v1/auth/me", nil); st != 401 {
		t.Errorf("other session survived: %d", st)
	}

	secret, err := h.accounts().EmailVerificationToken(t.Context(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st, resp := c.do("POST", "/api/v1/auth/email/verify", map[string]any{"token": secret}); st != 200 || resp["email_verified"] != true {
		t.Fatalf("verify: %d %v", st, resp)
	}
	if st, resp := c.do("POST", "/api/v1/auth/email/verify", map[string]any{"token": secret}); st != 403 || errCode(t, resp) != "invalid_token" {
		t.Errorf("verify twice: %d %v", st, resp)
	}
	got, _ := h.st.User(t.Context(), u.ID)
	if !got.EmailVerified {
		t.Error("email not marked verified")
	}
}
