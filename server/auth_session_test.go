package server

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

func TestSignup(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("p", 257)
	tests := []struct {
		name      string
		open      bool
		body      any
		wantCode  int
		wantErr   string
		wantField string
	}{
		{"open", true, map[string]any{"email": " Ada@Example.COM ", "password": "long enough pw", "name": "Ada"}, 201, "", ""},
		{"closed", false, map[string]any{"email": "ada@example.com", "password": "long enough pw"}, 403, "signup_closed", ""},
		{"weak password", true, map[string]any{"email": "ada@example.com", "password": "short"}, 422, "validation_failed", "password"},
		{"too long password", true, map[string]any{"email": "ada@example.com", "password": long}, 422, "validation_failed", "password"},
		{"invalid email", true, map[string]any{"email": "not-an-email", "password": "long enough pw"}, 422, "validation_failed", "email"},
		{"email with name", true, map[string]any{"email": "Ada <ada@example.com>", "password": "long enough pw"}, 422, "validation_failed", "email"},
		{"malformed JSON", true, `{"email": "ada@example.com",`, 400, "malformed_json", ""},
		{"unknown field", true, map[string]any{"email": "ada@example.com", "password": "long enough pw", "admin": true}, 400, "unknown_field", ""},
		{"wrong type", true, map[string]any{"email": 42, "password": "long enough pw"}, 422, "validation_failed", "email"},
		{"two objects", true, `{"email":"ada@example.com","password":"long enough pw"} {}`, 400, "bad_request", ""},
		{"empty body", true, nil, 400, "bad_request", ""},
		{"oversized body", true, `{"email":"` + strings.Repeat("a", DefaultBodyLimit) + `"}`, 413, "payload_too_large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var opts []harnessOption
			if tt.open {
				opts = append(opts, withSignupOpen())
			}
			h := newHarness(t, opts...)
			c := h.newClient()
			st, resp := c.do("POST", "/api/v1/auth/signup", tt.body)
			if st != tt.wantCode {
				t.Fatalf("status %d, want %d: %v", st, tt.wantCode, resp)
			}
			n, err := h.st.CountUsers(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" {
				if code := errCode(t, resp); code != tt.wantErr {
					t.Errorf("code %q, want %q", code, tt.wantErr)
				}
				if tt.wantField != "" {
					fields, _ := resp["error"].(map[string]any)["fields"].(map[string]any)
					if _, ok := fields[tt.wantField]; !ok {
						t.Errorf("no error for field %q: %v", tt.wantField, resp)
					}
				}
				if n != 0 {
					t.Errorf("%d users written by a refused sign-up", n)
				}
				return
			}
			user := resp["user"].(map[string]any)
			if user["email"] != "ada@example.com" || user["name"] != "Ada" || user["email_verified"] != false {
				t.Errorf("user %v", user)
			}
			if resp["csrf_token"] == "" || resp["via"] != "session" {
				t.Errorf("response %v", resp)
			}
			// The new session works, and a verification mail went out.
			if st, me := c.do("GET", "/api/v1/auth/me", nil); st != 200 || me["user"].(map[string]any)["email"] != "ada@example.com" {
				t.Errorf("me after signup: %d %v", st, me)
			}
			poll.Wait(t, "verification mail", func() bool { return len(h.mail.To("ada@example.com")) == 1 })
			// The same email again is a conflict.
			st, resp = h.newClient().do("POST", "/api/v1/auth/signup", map[string]any{"email": "ADA@example.com", "password": "another long pw"})
			if st != 409 || errCode(t, resp) != "email_taken" {
				t.Errorf("duplicate signup: %d %v", st, resp)
			}
		})
	}
}

func TestLoginLogout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createUser(t, "ada@example.com", "acme", store.RoleOwner)
	c := h.newClient()

	st, resp := c.do("POST", "/api/v1/auth/login", map[string]any{"email": "ADA@example.com", "password": testPassword})
	if st != 200 {
		t.Fatalf("login: %d %v", st, resp)
	}
	ms := resp["memberships"].([]any)
	if len(ms) != 1 || ms[0].(map[string]any)["tenant_slug"] != "acme" || ms[0].(map[string]any)["role"] != "owner" {
		t.Errorf("memberships %v", ms)
	}
	// The cookie is HttpOnly, SameSite=Lax, not Secure on http.
	ck := c.last.Get("Set-Cookie")
	for _, want := range []string{sessionCookie + "=", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(ck, want) {
			t.Errorf("cookie %q lacks %q", ck, want)
		}
	}
	if strings.Contains(ck, "Secure") {
		t.Errorf("cookie %q is Secure on http", ck)
	}
	// Only the hash of the cookie is stored.
	val := strings.TrimPrefix(strings.SplitN(ck, ";", 2)[0], sessionCookie+"=")
	if _, err := h.st.SessionByTokenHash(t.Context(), []byte(val)); err == nil {
		t.Error("session found by its clear-text token")
	}

	// The session works on a second replica too.
	h2 := h.secondServer()
	c2 := c.on(h2)
	if st, me := c2.do("GET", "/api/v1/auth/me", nil); st != 200 || me["csrf_token"] != c.csrf {
		t.Fatalf("me on second server: %d %v", st, me)
	}

	// Logout on server 1 is immediate on both.
	if st, resp := c.do("POST", "/api/v1/auth/logout", nil); st != 204 {
		t.Fatalf("logout: %d %v", st, resp)
	}
	if st, _ := c2.do("GET", "/api/v1/auth/me", nil); st != 401 {
		t.Errorf("me on second server after logout: %d", st)
	}
	if st, _ := c.do("GET", "/api/v1/auth/me", nil); st != 401 {
		t.Errorf("me after logout: %d", st)
	}
	// A stale cookie does not block logging in again.
	c3 := c2
	if st, resp := c3.do("POST", "/api/v1/auth/login", map[string]any{"email": "ada@example.com", "password": testPassword}); st != 200 {
		t.Errorf("login with stale cookie: %d %v", st, resp)
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createUser(t, "ada@example.com", "", "")
	var bodies []map[string]any
	for _, body := range []map[string]any{
		{"email": "ada@example.com", "password": "wrong password!"},
		{"email": "nobody@example.com", "password": "wrong password!"},
	} {
		st, resp := h.newClient().do("POST", "/api/v1/auth/login", body)
		if st != 401 || errCode(t, resp) != "invalid_credentials" {
			t.Fatalf("%v: %d %v", body, st, resp)
		}
		delete(resp["error"].(map[string]any), "request_id")
		bodies = append(bodies, resp)
	}
	if !reflect.DeepEqual(bodies[0], bodies[1]) {
		t.Errorf("wrong password %v differs from unknown email %v", bodies[0], bodies[1])
	}
}

func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createUser(t, "ada@example.com", "", "")
	c := h.newClient()
	bad := map[string]any{"email": "ada@example.com", "password": "wrong password!"}
	good := map[string]any{"email": "ada@example.com", "password": testPassword}
	for i := 0; i < 5; i++ {
		if st, resp := c.do("POST", "/api/v1/auth/login", bad); st != 401 {
			t.Fatalf("attempt %d: %d %v", i, st, resp)
		}
	}
	// The 6th failure starts the backoff: 1 s, then 2 s.
	c.do("POST", "/api/v1/auth/login", bad)
	st, resp := c.do("POST", "/api/v1/auth/login", good)
	if st != 429 || errCode(t, resp) != "too_many_requests" || c.last.Get("Retry-After") != "1" {
		t.Fatalf("locked: %d %v retry-after %q", st, resp, c.last.Get("Retry-After"))
	}
	h.clock.Advance(time.Second)
	c.do("POST", "/api/v1/auth/login", bad) // 7th failure: 2 s
	h.clock.Advance(time.Second)
	if st, _ := c.do("POST", "/api/v1/auth/login", good); st != 429 || c.last.Get("Retry-After") != "1" {
		t.Fatalf("backoff did not double: %d retry-after %q", st, c.last.Get("Retry-After"))
	}
	h.clock.Advance(time.Second)
	if st, resp := c.do("POST", "/api/v1/auth/login", good); st != 200 {
		t.Fatalf("after backoff: %d %v", st, resp)
	}
}

// TestLoginRateLimitSharedByReplicas: the failure counts live in the database, so failures
// spread over two replicas use up one budget and the lock holds on both.
func TestLoginRateLimitSharedByReplicas(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h2 := h.secondServer()
	h.createUser(t, "ada@example.com", "", "")
	c1, c2 := h.newClient(), h2.newClient()
	bad := map[string]any{"email": "ada@example.com", "password": "wrong password!"}
	good := map[string]any{"email": "ada@example.com", "password": testPassword}
	for i := 0; i < 6; i++ { // 3 failures on each replica: the 6th starts the backoff
		c := []*apiClient{c1, c2}[i%2]
		if st, resp := c.do("POST", "/api/v1/auth/login", bad); st != 401 {
			t.Fatalf("failure %d: %d %v", i+1, st, resp)
		}
	}
	for name, c := range map[string]*apiClient{"first": c1, "second": c2} {
		if st, resp := c.do("POST", "/api/v1/auth/login", good); st != 429 || errCode(t, resp) != "too_many_requests" {
			t.Errorf("%s replica while locked: %d %v", name, st, resp)
		}
	}
	h.clock.Advance(time.Second)
	if st, resp := c2.do("POST", "/api/v1/auth/login", good); st != 200 {
		t.Fatalf("after backoff: %d %v", st, resp)
	}
}

// limitsDown is a store whose rate-limit counts cannot be read.
type limitsDown struct{ store.Store }

func (limitsDown) LoginLimit(context.Context, string) (store.LoginLimit, error) {
	return store.LoginLimit{}, errors.New("database down")
}

// TestLoginFailsClosedWithoutLimits: when the counts cannot be read, login answers 500 (the
// detail goes to the log), never lets the attempt through, and looks the same for unknown
// emails.
func TestLoginFailsClosedWithoutLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createUser(t, "ada@example.com", "", "")
	down := *h
	down.srv, down.url, down.logs = h.startServer(limitsDown{h.st})
	for _, email := range []string{"ada@example.com", "nobody@example.com"} {
		c := down.newClient()
		st, resp := c.do("POST", "/api/v1/auth/login", map[string]any{"email": email, "password": testPassword})
		if st != 500 || errCode(t, resp) != "internal" {
			t.Errorf("login %s without limits: %d %v", email, st, resp)
		}
		if st, _ := c.do("GET", "/api/v1/auth/me", nil); st != 401 {
			t.Errorf("session after a failed login %s: %d", email, st)
		}
	}
	if st, resp := down.newClient().do("POST", "/api/v1/auth/password/forgot", map[string]any{"email": "ada@example.com"}); st != 500 {
		t.Errorf("forgot password without limits: %d %v", st, resp)
	}
	if !strings.Contains(down.logs.String(), "database down") {
		t.Errorf("the store's error is not in the log: %s", down.logs.String())
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createUser(t, "ada@example.com", "acme", store.RoleOwner)
	for _, tt := range []struct {
		name string
		csrf string
	}{{"missing", ""}, {"forged", "forged-token"}} {
		t.Run(tt.name, func(t *testing.T) {
			c := h.login(t, "ada@example.com")
			c.csrf = tt.csrf
			st, resp := c.do("POST", "/api/v1/auth/password", map[string]any{"current_password": testPassword, "new_password": "a brand new password"})
			if st != 403 || errCode(t, resp) != "csrf" {
				t.Fatalf("%d %v", st, resp)
			}
			if st, resp := c.do("POST", "/api/v1/auth/logout", nil); st != 403 || errCode(t, resp) != "csrf" {
				t.Fatalf("logout: %d %v", st, resp)
			}
			// Nothing changed: the old password still logs in, the session still works.
			if st, _ := c.do("GET", "/api/v1/auth/me", nil); st != 200 {
				t.Errorf("session ended by a forged request: %d", st)
			}
			h.login(t, "ada@example.com")
		})
	}
	// Bearer tokens need no CSRF token.
	tok := h.apiToken(t, "ada@example.com", "acme", store.ScopeDevicesRead)
	tc := h.tokenClient(tok)
	if st, me := tc.do("GET", "/api/v1/auth/me", nil); st != 200 || me["via"] != "token" || me["csrf_token"] != nil {
		t.Fatalf("me by token: %d %v", st, me)
	}
	if st, resp := tc.do("POST", "/api/v1/auth/logout", nil); st != 400 {
		t.Errorf("logout by token: %d %v", st, resp)
	}
	for _, bad := range []string{"esp_nope", "not-a-token", ""} {
		c := h.tokenClient(bad)
		if bad == "" {
			c.bearer = " "
		}
		if st, resp := c.do("GET", "/api/v1/auth/me", nil); st != 401 || errCode(t, resp) != "unauthorized" {
			t.Errorf("bearer %q: %d %v", bad, st, resp)
		}
	}
}

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createUser(t, "ada@example.com", "", "")

	// Idle: used every 23 h it lives on; 24 h unused ends it.
	c := h.login(t, "ada@example.com")
	for i := 0; i < 3; i++ {
		h.clock.Advance(23 * time.Hour)
		if st, _ := c.do("GET", "/api/v1/auth/me", nil); st != 200 {
			t.Fatalf("after %d×23 h of use: %d", i+1, st)
		}
	}
	h.clock.Advance(24 * time.Hour)
	if st, resp := c.do("GET", "/api/v1/auth/me", nil); st != 401 || errCode(t, resp) != "unauthorized" {
		t.Fatalf("idle session: %d %v", st, resp)
	}

	// Absolute: even in constant use, 30 days end it.
	c = h.login(t, "ada@example.com")
	for elapsed := time.Duration(0); elapsed < 30*24*time.Hour-12*time.Hour; elapsed += 12 * time.Hour {
		if st, _ := c.do("GET", "/api/v1/auth/me", nil); st != 200 {
			t.Fatalf("at %s: %d", elapsed, st)
		}
		h.clock.Advance(12 * time.Hour)
	}
	h.clock.Advance(12 * time.Hour)
	if st, _ := c.do("GET", "/api/v1/auth/me", nil); st != 401 {
		t.Fatalf("session past its absolute expiry: %d", st)
	}
}

func TestAuthRoutesAnonymous(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.newClient()
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/auth/me"}, {"POST", "/api/v1/auth/logout"}, {"POST", "/api/v1/auth/password"},
	} {
		if st, resp := c.do(r.method, r.path, nil); st != 401 || errCode(t, resp) != "unauthorized" {
			t.Errorf("%s %s: %d %v", r.method, r.path, st, resp)
		}
	}
	c.http.Jar.SetCookies(mustURL(t, h.url), []*http.Cookie{{Name: sessionCookie, Value: "made-up"}})
	if st, _ := c.do("GET", "/api/v1/auth/me", nil); st != 401 {
		t.Errorf("made-up cookie: %d", st)
	}
}
