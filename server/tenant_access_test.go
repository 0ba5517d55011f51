package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/store"
)

// accessCase is one tenant route in the role matrix: a valid request body and the status each
// role gets.
type accessCase struct {
	body func(ids map[string]string) any
	want map[store.Role]int
}

func statuses(owner, admin, developer, viewer int) map[store.Role]int {
	return map[store.Role]int{store.RoleOwner: owner, store.RoleAdmin: admin, store.RoleDeveloper: developer, store.RoleViewer: viewer}
}

func noBody(map[string]string) any { return nil }

func jsonBody(v map[string]any) func(map[string]string) any {
	return func(map[string]string) any { return v }
}

// tenantAccess is the route × role table: a valid request per tenant route and the status
// each role gets with it. Routes added later should add a row; until they do, TestRoleMatrix
// still checks them against the permission table.
var tenantAccess = map[string]accessCase{
	"GET /api/v1/tenants/:tenant":   {noBody, statuses(200, 200, 200, 200)},
	"PATCH /api/v1/tenants/:tenant": {jsonBody(map[string]any{"name": "Renamed"}), statuses(200, 200, 403, 403)},
	"DELETE /api/v1/tenants/:tenant": {func(ids map[string]string) any { return map[string]any{"confirm": ids["tenant"]} },
		statuses(204, 403, 403, 403)},
	"POST /api/v1/tenants/:tenant/transfer-ownership": {func(ids map[string]string) any { return map[string]any{"user_id": ids["user"]} },
		statuses(200, 403, 403, 403)},
	"GET /api/v1/tenants/:tenant/members":          {noBody, statuses(200, 200, 200, 200)},
	"PATCH /api/v1/tenants/:tenant/members/:user":  {jsonBody(map[string]any{"role": "viewer"}), statuses(200, 200, 403, 403)},
	"DELETE /api/v1/tenants/:tenant/members/:user": {noBody, statuses(204, 204, 403, 403)},
	// The only owner cannot leave.
	"POST /api/v1/tenants/:tenant/leave": {noBody, statuses(409, 204, 204, 204)},
	"POST /api/v1/tenants/:tenant/invitations": {jsonBody(map[string]any{"email": "new@example.test", "role": "developer"}),
		statuses(201, 201, 403, 403)},
	"GET /api/v1/tenants/:tenant/invitations":                {noBody, statuses(200, 200, 403, 403)},
	"DELETE /api/v1/tenants/:tenant/invitations/:invitation": {noBody, statuses(204, 204, 403, 403)},
	"GET /api/v1/tenants/:tenant/tokens":                     {noBody, statuses(200, 200, 200, 200)},
	"POST /api/v1/tenants/:tenant/tokens": {jsonBody(map[string]any{"name": "laptop", "scopes": []string{"devices:read"}}),
		statuses(201, 201, 201, 201)},
	// The placeholder token is a tenant token: those who cannot manage tokens cannot see it.
	"DELETE /api/v1/tenants/:tenant/tokens/:token": {noBody, statuses(204, 204, 404, 404)},
	"GET /api/v1/tenants/:tenant/audit":            {noBody, statuses(200, 200, 403, 403)},

	// Devices and commands (devices_test.go has the scenarios). The event stream answers 406
	// to a request that does not accept text/event-stream, which proves the permission check
	// passed without holding the stream open.
	"POST /api/v1/tenants/:tenant/devices":                            {jsonBody(map[string]any{"name": "new"}), statuses(201, 201, 201, 403)},
	"GET /api/v1/tenants/:tenant/devices":                             {noBody, statuses(200, 200, 200, 200)},
	"GET /api/v1/tenants/:tenant/devices/:device":                     {noBody, statuses(200, 200, 200, 200)},
	"PATCH /api/v1/tenants/:tenant/devices/:device":                   {jsonBody(map[string]any{"name": "renamed"}), statuses(200, 200, 200, 403)},
	"DELETE /api/v1/tenants/:tenant/devices/:device":                  {noBody, statuses(204, 204, 204, 403)},
	"POST /api/v1/tenants/:tenant/devices/:device/rotate-credentials": {noBody, statuses(200, 200, 200, 403)},
	"POST /api/v1/tenants/:tenant/devices/:device/disable":            {noBody, statuses(200, 200, 200, 403)},
	"POST /api/v1/tenants/:tenant/devices/:device/enable":             {noBody, statuses(200, 200, 200, 403)},
	"GET /api/v1/tenants/:tenant/devices/:device/provisioning":        {noBody, statuses(200, 200, 200, 403)},
	"GET /api/v1/tenants/:tenant/devices/:device/commands":            {noBody, statuses(200, 200, 200, 200)},
	"GET /api/v1/tenants/:tenant/devices/:device/commands/:command":   {noBody, statuses(200, 200, 200, 200)},
	"GET /api/v1/tenants/:tenant/events":                              {noBody, statuses(406, 406, 406, 406)},
	// Live logs and device errors (logs_test.go has the scenarios). A plain GET of the log
	// stream answers 426, which proves the permission check passed without upgrading.
	"GET /api/v1/tenants/:tenant/devices/:device/logs/stream": {noBody, statuses(426, 426, 426, 426)},
	"GET /api/v1/tenants/:tenant/errors":                      {noBody, statuses(200, 200, 200, 200)},
	"GET /api/v1/tenants/:tenant/errors/:group":               {noBody, statuses(200, 200, 200, 200)},
	"POST /api/v1/tenants/:tenant/errors/:group/resolve":      {noBody, statuses(200, 200, 200, 403)},
	"POST /api/v1/tenants/:tenant/errors/:group/reopen":       {noBody, statuses(200, 200, 200, 403)},
	"GET /api/v1/tenants/:tenant/devices/:device/errors":      {noBody, statuses(200, 200, 200, 200)},
	"GET /api/v1/tenants/:tenant/settings/bugsnag":            {noBody, statuses(200, 200, 403, 403)},
	"PUT /api/v1/tenants/:tenant/settings/bugsnag": {jsonBody(map[string]any{"api_key": "0123456789abcdef0123456789abcdef", "release_stage": "field"}),
		statuses(200, 200, 403, 403)},
	// Tenant broker settings (broker_settings_test.go has the scenarios). Testing without
	// saved settings or a URL is 422, which proves the permission check passed.
	"GET /api/v1/tenants/:tenant/settings/broker":       {noBody, statuses(200, 200, 403, 403)},
	"PUT /api/v1/tenants/:tenant/settings/broker":       {jsonBody(map[string]any{"mode": "builtin", "version": 0}), statuses(200, 200, 403, 403)},
	"POST /api/v1/tenants/:tenant/settings/broker/test": {jsonBody(map[string]any{}), statuses(422, 422, 403, 403)},
	"GET /api/v1/tenants/:tenant/settings/broker/state": {noBody, statuses(200, 200, 403, 403)},
	"POST /api/v1/tenants/:tenant/commands": {func(ids map[string]string) any {
		return map[string]any{"name": "restart", "target": map[string]any{"device_ids": []string{ids["device"]}}}
	}, statuses(202, 202, 202, 403)},

	// Remote configuration (config_test.go has the scenarios). populateConfig gives the
	// project and the device the entry "interval" at version 1. A delete without ?version is
	// 422, which proves the permission and the lookup passed.
	"GET /api/v1/tenants/:tenant/projects/:project/config": {noBody, statuses(200, 200, 200, 200)},
	"PUT /api/v1/tenants/:tenant/projects/:project/config": {jsonBody(map[string]any{"entries": []map[string]any{
		{"key": "other", "type": "int", "value": 1, "version": 0}}}), statuses(200, 200, 200, 403)},
	"GET /api/v1/tenants/:tenant/projects/:project/config/:key": {noBody, statuses(200, 200, 200, 200)},
	"PUT /api/v1/tenants/:tenant/projects/:project/config/:key": {jsonBody(map[string]any{"type": "int", "value": 5, "version": 1}),
		statuses(200, 200, 200, 403)},
	"DELETE /api/v1/tenants/:tenant/projects/:project/config/:key": {noBody, statuses(422, 422, 422, 403)},
	"GET /api/v1/tenants/:tenant/devices/:device/config":           {noBody, statuses(200, 200, 200, 200)},
	"PUT /api/v1/tenants/:tenant/devices/:device/config": {jsonBody(map[string]any{"entries": []map[string]any{
		{"key": "other", "type": "string", "value": "x", "version": 0}}}), statuses(200, 200, 200, 403)},
	"GET /api/v1/tenants/:tenant/devices/:device/config/:key": {noBody, statuses(200, 200, 200, 200)},
	"PUT /api/v1/tenants/:tenant/devices/:device/config/:key": {jsonBody(map[string]any{"type": "int", "value": 7, "version": 1}),
		statuses(200, 200, 200, 403)},
	"DELETE /api/v1/tenants/:tenant/devices/:device/config/:key":   {noBody, statuses(422, 422, 422, 403)},
	"GET /api/v1/tenants/:tenant/devices/:device/config/effective": {noBody, statuses(200, 200, 200, 200)},
	"GET /api/v1/tenants/:tenant/devices/:device/config/versions":  {noBody, statuses(200, 200, 200, 200)},
	"POST /api/v1/tenants/:tenant/devices/:device/config/rollback": {jsonBody(map[string]any{"version": 1}), statuses(200, 200, 200, 403)},
	"POST /api/v1/tenants/:tenant/config/push": {func(ids map[string]string) any {
		return map[string]any{"target": map[string]any{"device_ids": []string{ids["device"]}}}
	}, statuses(202, 202, 202, 403)},

	// Projects, releases and rollouts (releases_test.go has the scenarios). populateOTA gives
	// the project a release v-1.0.0 used by an active rollout, so deleting the release is 409
	// and resuming the rollout is 409; a JSON body is not an image upload (415). Each proves the
	// permission and the lookups passed.
	"GET /api/v1/tenants/:tenant/projects":                                     {noBody, statuses(200, 200, 200, 200)},
	"POST /api/v1/tenants/:tenant/projects":                                    {jsonBody(map[string]any{"name": "new project"}), statuses(201, 201, 201, 403)},
	"GET /api/v1/tenants/:tenant/projects/:project":                            {noBody, statuses(200, 200, 200, 200)},
	"PATCH /api/v1/tenants/:tenant/projects/:project":                          {jsonBody(map[string]any{"description": "d"}), statuses(200, 200, 200, 403)},
	"DELETE /api/v1/tenants/:tenant/projects/:project":                         {noBody, statuses(204, 204, 204, 403)},
	"GET /api/v1/tenants/:tenant/projects/:project/releases":                   {noBody, statuses(200, 200, 200, 200)},
	"POST /api/v1/tenants/:tenant/projects/:project/releases":                  {jsonBody(map[string]any{}), statuses(415, 415, 415, 403)},
	"GET /api/v1/tenants/:tenant/projects/:project/releases/:release":          {noBody, statuses(200, 200, 200, 200)},
	"PATCH /api/v1/tenants/:tenant/projects/:project/releases/:release":        {jsonBody(map[string]any{"notes": "n"}), statuses(200, 200, 200, 403)},
	"DELETE /api/v1/tenants/:tenant/projects/:project/releases/:release":       {noBody, statuses(409, 409, 409, 403)},
	"GET /api/v1/tenants/:tenant/projects/:project/releases/:release/download": {noBody, statuses(200, 200, 200, 200)},
	"GET /api/v1/tenants/:tenant/rollouts":                                     {noBody, statuses(200, 200, 200, 200)},
	"POST /api/v1/tenants/:tenant/rollouts": {func(ids map[string]string) any {
		return map[string]any{"release_id": ids["release"], "target": map[string]any{"kind": "devices", "device_ids": []string{ids["device"]}}}
	}, statuses(201, 201, 201, 403)},
	"POST /api/v1/tenants/:tenant/rollouts/preview": {func(ids map[string]string) any {
		return map[string]any{"release_id": ids["release"], "target": map[string]any{"kind": "all"}}
	}, statuses(200, 200, 200, 403)},
	"GET /api/v1/tenants/:tenant/rollouts/:rollout":         {noBody, statuses(200, 200, 200, 200)},
	"GET /api/v1/tenants/:tenant/rollouts/:rollout/devices": {noBody, statuses(200, 200, 200, 200)},
	"POST /api/v1/tenants/:tenant/rollouts/:rollout/pause":  {noBody, statuses(200, 200, 200, 403)},
	"POST /api/v1/tenants/:tenant/rollouts/:rollout/resume": {noBody, statuses(409, 409, 409, 403)},
	"POST /api/v1/tenants/:tenant/rollouts/:rollout/abort":  {noBody, statuses(200, 200, 200, 403)},
	"GET /api/v1/tenants/:tenant/devices/:device/updates":   {noBody, statuses(200, 200, 200, 200)},

	// Alerts (alerts_api_test.go has the scenarios). populateAlerts gives each tenant a
	// webhook channel, a rule, an alert acknowledged already (409 proves the check passed) and
	// a delivery.
	"GET /api/v1/tenants/:tenant/alerts":                              {noBody, statuses(200, 200, 200, 200)},
	"GET /api/v1/tenants/:tenant/alerts/:alert":                       {noBody, statuses(200, 200, 200, 200)},
	"POST /api/v1/tenants/:tenant/alerts/:alert/acknowledge":          {noBody, statuses(409, 409, 409, 409)},
	"GET /api/v1/tenants/:tenant/alerts/rules":                        {noBody, statuses(200, 200, 403, 403)},
	"POST /api/v1/tenants/:tenant/alerts/rules":                       {jsonBody(map[string]any{"name": "new", "kind": "error_new"}), statuses(201, 201, 403, 403)},
	"GET /api/v1/tenants/:tenant/alerts/rules/:rule":                  {noBody, statuses(200, 200, 403, 403)},
	"PUT /api/v1/tenants/:tenant/alerts/rules/:rule":                  {jsonBody(map[string]any{"name": "renamed", "kind": "error_new"}), statuses(200, 200, 403, 403)},
	"DELETE /api/v1/tenants/:tenant/alerts/rules/:rule":               {noBody, statuses(204, 204, 403, 403)},
	"GET /api/v1/tenants/:tenant/alerts/channels":                     {noBody, statuses(200, 200, 403, 403)},
	"POST /api/v1/tenants/:tenant/alerts/channels":                    {jsonBody(map[string]any{"name": "mail", "kind": "email", "target": "ops@example.com"}), statuses(201, 201, 403, 403)},
	"GET /api/v1/tenants/:tenant/alerts/channels/:channel":            {noBody, statuses(200, 200, 403, 403)},
	"PUT /api/v1/tenants/:tenant/alerts/channels/:channel":            {jsonBody(map[string]any{"name": "hook", "target": "https://8.8.8.8/hook"}), statuses(200, 200, 403, 403)},
	"DELETE /api/v1/tenants/:tenant/alerts/channels/:channel":         {noBody, statuses(204, 204, 403, 403)},
	"POST /api/v1/tenants/:tenant/alerts/channels/:channel/secret":    {noBody, statuses(200, 200, 403, 403)},
	"POST /api/v1/tenants/:tenant/alerts/channels/:channel/test":      {noBody, statuses(202, 202, 403, 403)},
	"GET /api/v1/tenants/:tenant/alerts/deliveries":                   {noBody, statuses(200, 200, 403, 403)},
	"POST /api/v1/tenants/:tenant/alerts/deliveries/:delivery/resend": {noBody, statuses(202, 202, 403, 403)},
	"GET /api/v1/tenants/:tenant/alerts/push/key":                     {noBody, statuses(200, 200, 200, 200)},
	"POST /api/v1/tenants/:tenant/alerts/push/subscriptions": {jsonBody(map[string]any{"endpoint": "https://push.example.com/s/1",
		"keys": map[string]any{"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}),
		statuses(201, 201, 201, 201)},
	"DELETE /api/v1/tenants/:tenant/alerts/push/subscriptions": {jsonBody(map[string]any{"endpoint": "https://push.example.com/none"}), statuses(404, 404, 404, 404)},
}

// tenantAPIRoutes lists the tenant routes of the route table, the same table that registers
// them. The handlers are never called, so a zero Server serves to build it.
func tenantAPIRoutes() []apiRoute {
	var out []apiRoute
	for _, r := range (&Server{}).apiRoutes() {
		if r.Auth == authTenant {
			out = append(out, r)
		}
	}
	return out
}

// TestRoleMatrix sends every tenant route as every role, each against a fresh world so one
// request's change cannot affect another, and checks the status against the table — and the
// table against the permission table: a role without the route's permission must get 403.
// A route without a row in tenantAccess (one added by a later feature) is still checked
// from the permission table: every role lacking its permission gets 403. Its allowed roles
// are checked once it has a row (a streaming route, for instance, needs its own test).
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	for _, r := range tenantAPIRoutes() {
		key := r.Method + " " + r.Path
		tc, hasRow := tenantAccess[key]
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			var shared *tenantWorld
			if r.Method == http.MethodGet || !hasRow {
				shared = newTenantWorld(t)
			}
			for _, role := range testRoles {
				want := http.StatusForbidden
				if hasRow {
					want = tc.want[role]
					if !roleAllows(role, r.Perm) && want != http.StatusForbidden {
						t.Errorf("%s lacks %s but the table expects %d", role, r.Perm, want)
					}
				} else if roleAllows(role, r.Perm) {
					continue
				}
				w := shared
				if w == nil {
					w = newTenantWorld(t)
				}
				c := w.session(t, "alpha", role)
				status, resp := c.do(r.Method, fill(t, r.Path, w.a), requestBody(key, w.a))
				if status != want {
					t.Errorf("%s as %s: status %d, want %d; body %v", key, role, status, want, resp)
				}
				if status >= 400 {
					errCode(t, resp)
				}
			}
		})
	}
}

// requestBody is the row's body for a route, or an empty object for a route without a row
// that takes a body.
func requestBody(key string, ids map[string]string) any {
	if row, ok := tenantAccess[key]; ok {
		return row.body(ids)
	}
	if strings.HasPrefix(key, "GET ") || strings.HasPrefix(key, "DELETE ") {
		return nil
	}
	return map[string]any{}
}

// TestAnonymous: every tenant route answers 401 without credentials, and 401 also for an
// unknown tenant (authentication comes before anything is looked up).
func TestAnonymous(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	c := w.h.newClient()
	for _, r := range tenantAPIRoutes() {
		for _, ids := range []map[string]string{w.a, {"tenant": "no-such-tenant", "user": "x", "invitation": "x", "token": "x", "device": "x", "command": "x", "release": "x", "rollout": "x", "project": "x", "key": "x", "group": "x", "report": "x",
			"rule": "x", "channel": "x", "alert": "x", "delivery": "x"}} {
			status, resp := c.do(r.Method, fill(t, r.Path, ids), requestBody(r.Method+" "+r.Path, ids))
			wantError(t, r.Method+" "+r.Path, status, resp, http.StatusUnauthorized)
		}
	}
	for _, p := range []struct{ method, path string }{{"GET", "/api/v1/tenants"}, {"POST", "/api/v1/tenants"}, {"POST", "/api/v1/invitations/accept"}} {
		status, resp := c.do(p.method, p.path, map[string]any{})
		if p.method == "GET" {
			status, resp = c.do(p.method, p.path, nil)
		}
		wantError(t, p.path, status, resp, http.StatusUnauthorized)
	}
}

// TestTenantIsolation sends every tenant route (iterating the route table, so routes added
// later are covered) as members and tokens of tenant A against tenant B's slug and B's real
// resource IDs, and against A's slug with B's resource IDs. Each gets 404 — never 403 —
// and B is unchanged afterwards.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	h := w.h
	callers := map[string]*apiClient{
		"owner session":          w.session(t, "alpha", store.RoleOwner),
		"viewer session":         w.session(t, "alpha", store.RoleViewer),
		"owner personal token":   h.tokenClient(h.apiToken(t, memberEmail("alpha", store.RoleOwner), "alpha", store.ScopeAdmin)),
		"tenant token (admin)":   h.tokenClient(h.apiToken(t, "", "alpha", store.ScopeAdmin)),
		"tenant token (devices)": h.tokenClient(h.apiToken(t, "", "alpha", store.ScopeDevicesRead)),
	}
	// A's slug with B's IDs: only routes that name a resource.
	crossIDs := map[string]string{}
	for k, v := range w.b {
		crossIDs[k] = v
	}
	crossIDs["tenant"] = w.a["tenant"]

	before := snapshotTenant(t, h.st, tenantID(t, h.st, "beta"))
	for name, c := range callers {
		for _, r := range tenantAPIRoutes() {
			key := r.Method + " " + r.Path
			status, resp := c.do(r.Method, fill(t, r.Path, w.b), requestBody(key, w.b))
			wantError(t, fmt.Sprintf("%s: %s on tenant B", name, key), status, resp, http.StatusNotFound)

			if strings.Count(r.Path, ":") < 2 {
				continue
			}
			status, resp = c.do(r.Method, fill(t, r.Path, crossIDs), requestBody(key, crossIDs))
			if status == http.StatusForbidden && !roleOrScopeAllows(name, r.Perm) {
				continue // the caller may not use this route at all in A; that is 403 before any lookup
			}
			wantError(t, fmt.Sprintf("%s: %s in A with B's IDs", name, key), status, resp, http.StatusNotFound)
		}
	}
	if after := snapshotTenant(t, h.st, tenantID(t, h.st, "beta")); after != before {
		t.Errorf("tenant B changed:\nbefore %s\nafter  %s", before, after)
	}
}

// roleOrScopeAllows tells, for the isolation callers, whether they hold perm in their own
// tenant.
func roleOrScopeAllows(caller string, perm Permission) bool {
	switch caller {
	case "owner session", "owner personal token":
		return roleAllows(store.RoleOwner, perm)
	case "viewer session":
		return roleAllows(store.RoleViewer, perm)
	case "tenant token (admin)":
		return roleAllows(tenantTokenRole, perm)
	case "tenant token (devices)":
		return roleAllows(tenantTokenRole, perm) && scopesAllow([]string{store.ScopeDevicesRead}, perm)
	}
	return false
}

// snapshotTenant summarises a tenant's data, to compare before and after.
func snapshotTenant(t *testing.T, st store.Store, id string) string {
	t.Helper()
	ctx := t.Context()
	tn, err := st.Tenant(ctx, id)
	if err != nil {
		return "gone: " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tenant %s %s %s;", tn.Slug, tn.Name, tn.UpdatedAt)
	ms, _ := st.ListMemberships(ctx, id, store.ListOptions{Limit: store.MaxPageSize})
	for _, m := range ms.Items {
		fmt.Fprintf(&b, " member %s %s;", m.UserID, m.Role)
	}
	invs, _ := st.ListInvitations(ctx, id, store.ListOptions{Limit: store.MaxPageSize})
	for _, i := range invs.Items {
		fmt.Fprintf(&b, " invitation %s %v;", i.ID, i.AcceptedAt)
	}
	toks, _ := st.ListAPITokens(ctx, id, store.ListOptions{Limit: store.MaxPageSize})
	for _, tk := range toks.Items {
		fmt.Fprintf(&b, " token %s;", tk.ID)
	}
	ev, _ := st.ListAuditEvents(ctx, id, store.AuditFilter{}, store.ListOptions{Limit: store.MaxPageSize})
	fmt.Fprintf(&b, " audit %d", len(ev.Items))
	return b.String()
}

// TestTokenScopes checks tokens against routes: without the scope 403, with it 2xx; a
// personal token is limited by both its scopes and its member's role; a tenant token is at
// most an admin; tokens cannot widen themselves or leave their tenant.
func TestTokenScopes(t *testing.T) {
	t.Parallel()
	type call struct {
		method, path string
		body         any
		want         int
	}
	members := "/api/v1/tenants/alpha/members"
	tests := []struct {
		name   string
		email  string // "" for a tenant token
		scopes []string
		calls  func(ids map[string]string) []call
	}{
		{"admin's devices:read token", memberEmail("alpha", store.RoleAdmin), []string{store.ScopeDevicesRead}, func(ids map[string]string) []call {
			return []call{
				{"GET", members, nil, 200},
				{"GET", "/api/v1/tenants/alpha/audit", nil, 403},
				{"PATCH", "/api/v1/tenants/alpha", map[string]any{"name": "x"}, 403},
				{"POST", "/api/v1/tenants/alpha/invitations", map[string]any{"email": "a@b.test", "role": "viewer"}, 403},
				{"PATCH", members + "/" + ids["user"], map[string]any{"role": "viewer"}, 403},
				// It may mint a token with its own scopes, never a wider one.
				{"POST", "/api/v1/tenants/alpha/tokens", map[string]any{"name": "n", "scopes": []string{"devices:read"}}, 201},
				{"POST", "/api/v1/tenants/alpha/tokens", map[string]any{"name": "n", "scopes": []string{"admin"}}, 403},
				{"POST", "/api/v1/tenants/alpha/tokens", map[string]any{"name": "n", "kind": "tenant", "scopes": []string{"devices:read"}}, 403},
			}
		}},
		{"admin's admin token", memberEmail("alpha", store.RoleAdmin), []string{store.ScopeAdmin}, func(ids map[string]string) []call {
			return []call{
				{"GET", "/api/v1/tenants/alpha/audit", nil, 200},
				{"PATCH", members + "/" + ids["user"], map[string]any{"role": "viewer"}, 200},
				{"POST", "/api/v1/tenants/alpha/invitations", map[string]any{"email": "a@b.test", "role": "viewer"}, 201},
				{"POST", "/api/v1/tenants/alpha/tokens", map[string]any{"name": "n", "kind": "tenant", "scopes": []string{"admin"}}, 201},
				{"DELETE", "/api/v1/tenants/alpha", map[string]any{"confirm": "alpha"}, 403}, // role
			}
		}},
		{"viewer's admin token", memberEmail("alpha", store.RoleViewer), []string{store.ScopeAdmin}, func(ids map[string]string) []call {
			return []call{
				{"GET", members, nil, 200},
				{"PATCH", members + "/" + ids["user"], map[string]any{"role": "viewer"}, 403},
				{"DELETE", members + "/" + ids["user"], nil, 403},
				{"POST", "/api/v1/tenants/alpha/invitations", map[string]any{"email": "a@b.test", "role": "viewer"}, 403},
				{"GET", "/api/v1/tenants/alpha/audit", nil, 403},
				{"POST", "/api/v1/tenants/alpha/tokens", map[string]any{"name": "n", "kind": "tenant", "scopes": []string{"admin"}}, 403},
			}
		}},
		{"owner's admin token", memberEmail("alpha", store.RoleOwner), []string{store.ScopeAdmin}, func(ids map[string]string) []call {
			return []call{
				{"POST", "/api/v1/tenants/alpha/transfer-ownership", map[string]any{"user_id": ids["user"]}, 200},
			}
		}},
		{"tenant admin token", "", []string{store.ScopeAdmin}, func(ids map[string]string) []call {
			return []call{
				{"GET", "/api/v1/tenants/alpha/audit", nil, 200},
				{"DELETE", members + "/" + ids["user"], nil, 204},
				{"POST", "/api/v1/tenants/alpha/leave", nil, 403},
				{"POST", "/api/v1/tenants/alpha/tokens", map[string]any{"name": "n", "scopes": []string{"admin"}}, 403}, // personal needs a person
				{"POST", "/api/v1/tenants/alpha/transfer-ownership", map[string]any{"user_id": ids["user"]}, 403},
				{"DELETE", "/api/v1/tenants/alpha", map[string]any{"confirm": "alpha"}, 403},
			}
		}},
		{"tenant devices:read token", "", []string{store.ScopeDevicesRead}, func(ids map[string]string) []call {
			return []call{
				{"GET", "/api/v1/tenants/alpha", nil, 200},
				{"GET", "/api/v1/tenants/alpha/audit", nil, 403},
				{"GET", "/api/v1/tenants/alpha/invitations", nil, 403},
				{"DELETE", "/api/v1/tenants/alpha/tokens/" + ids["token"], nil, 404},
			}
		}},
		{"tokens stay in their tenant", memberEmail("alpha", store.RoleOwner), []string{store.ScopeAdmin}, func(ids map[string]string) []call {
			return []call{
				{"POST", "/api/v1/tenants", map[string]any{"slug": "gamma", "name": "Gamma"}, 403},
				{"POST", "/api/v1/invitations/accept", map[string]any{"token": "whatever"}, 403},
				{"GET", "/api/v1/tenants/beta", nil, 404},
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newTenantWorld(t)
			c := w.h.tokenClient(w.h.apiToken(t, tt.email, "alpha", tt.scopes...))
			for _, cl := range tt.calls(w.a) {
				status, resp := c.do(cl.method, cl.path, cl.body)
				if status != cl.want {
					t.Errorf("%s %s: status %d, want %d; body %v", cl.method, cl.path, status, cl.want, resp)
				}
			}
		})
	}
}

// TestTokenListsAndDemotion: members see only their own tokens, admins all; removing a member
// deletes their tokens, and demoting one narrows what their token can do at once.
func TestTokenListsAndDemotion(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	h := w.h
	admin := w.session(t, "alpha", store.RoleAdmin)
	devEmail := memberEmail("alpha", store.RoleDeveloper)
	dev := h.login(t, devEmail)
	status, created := dev.do("POST", "/api/v1/tenants/alpha/tokens", map[string]any{"name": "mine", "scopes": []string{"admin"}, "expires_in": "30d"})
	if status != 201 || !strings.HasPrefix(created["token"].(string), "esp_") || created["kind"] != "personal" || created["expires_at"] == nil {
		t.Fatalf("create: %d %v", status, created)
	}
	_, mine := dev.do("GET", "/api/v1/tenants/alpha/tokens", nil)
	if got := items(t, mine); len(got) != 1 || got[0]["id"] != created["id"] || got[0]["token"] != nil {
		t.Errorf("developer's list: %v", got)
	}
	_, all := admin.do("GET", "/api/v1/tenants/alpha/tokens", nil)
	if got := items(t, all); len(got) != 2 {
		t.Errorf("admin's list: %v", got)
	}

	bearer := h.tokenClient(created["token"].(string))
	if status, _ := bearer.do("GET", "/api/v1/tenants/alpha", nil); status != 200 {
		t.Fatalf("token works: %d", status)
	}
	devID := created["user_id"].(string)
	if status, resp := admin.do("PATCH", "/api/v1/tenants/alpha/members/"+devID, map[string]any{"role": "viewer"}); status != 200 {
		t.Fatalf("demote: %d %v", status, resp)
	}
	if status, _ := bearer.do("POST", "/api/v1/tenants/alpha/tokens", map[string]any{"name": "x", "scopes": []string{"devices:read"}}); status != 201 {
		t.Errorf("viewer's token creating a personal token: %d", status)
	}
	if status, _ := admin.do("DELETE", "/api/v1/tenants/alpha/members/"+devID, nil); status != 204 {
		t.Fatalf("remove: %d", status)
	}
	if status, _ := bearer.do("GET", "/api/v1/tenants/alpha", nil); status != 401 && status != 404 {
		t.Errorf("removed member's token still works: %d", status)
	}
	_, all = admin.do("GET", "/api/v1/tenants/alpha/tokens", nil)
	for _, tk := range items(t, all) {
		if tk["user_id"] == devID {
			t.Errorf("removed member's token kept: %v", tk)
		}
	}
	// Bad token requests.
	for _, body := range []map[string]any{
		{"name": "", "scopes": []string{"admin"}},
		{"name": "n", "scopes": []string{}},
		{"name": "n", "scopes": []string{"root"}},
		{"name": "n", "scopes": []string{"admin"}, "expires_in": "forever"},
		{"name": "n", "scopes": []string{"admin"}, "expires_in": "-1h"},
		{"name": "n", "scopes": []string{"admin"}, "kind": "robot"},
	} {
		status, resp := admin.do("POST", "/api/v1/tenants/alpha/tokens", body)
		wantError(t, fmt.Sprint(body), status, resp, 422)
	}
}
