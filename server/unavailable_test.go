package server

import (
	"net/http"
	"testing"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// TestDatabaseDownIs503 stops a real PostgreSQL under a running server: every API call that
// needs the database answers 503 with Retry-After and the code "unavailable" (not a 500), and
// the same calls work again once the database is back, without a restart.
func TestDatabaseDownIs503(t *testing.T) {
	pg := testsvc.PostgresForOutage(t)
	h := newHarness(t, withDatabase(pg.URL))
	h.createUser(t, "owner@example.com", "acme", store.RoleOwner)
	session := h.login(t, "owner@example.com")
	token := h.tokenClient(h.apiToken(t, "owner@example.com", "acme", store.ScopeAdmin))

	calls := []struct {
		name   string
		client *apiClient
		method string
		path   string
		body   any
	}{
		{"session list devices", session, "GET", "/api/v1/tenants/acme/devices", nil},
		{"token list devices", token, "GET", "/api/v1/tenants/acme/devices", nil},
		{"token create project", token, "POST", "/api/v1/tenants/acme/projects", map[string]any{"name": "p"}},
		{"login", h.newClient(), "POST", "/api/v1/auth/login", map[string]any{"email": "owner@example.com", "password": testPassword}},
	}
	for _, c := range calls {
		if st, resp := c.client.do(c.method, c.path, c.body); st >= 300 {
			t.Fatalf("%s with the database up: %d %v", c.name, st, resp)
		}
	}

	pg.Stop(t)
	for _, c := range calls {
		st, resp := c.client.do(c.method, c.path, c.body)
		if st != http.StatusServiceUnavailable {
			t.Errorf("%s with the database down: status %d %v, want 503", c.name, st, resp)
			continue
		}
		if code := errCode(t, resp); code != "unavailable" {
			t.Errorf("%s with the database down: code %q, want unavailable", c.name, code)
		}
		if ra := c.client.last.Get("Retry-After"); ra == "" {
			t.Errorf("%s with the database down: no Retry-After header", c.name)
		}
	}

	pg.Start(t)
	for _, c := range calls[:2] {
		// The pool's connections died with the server; the first call may still find one.
		poll.Wait(t, c.name+" after the database returned", func() bool {
			st, _ := c.client.do(c.method, c.path, c.body)
			return st == http.StatusOK
		})
	}
}
