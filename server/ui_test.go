package server

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/ui"
)

// The web UI's pages and static files are not part of the JSON API, so the OpenAPI coverage
// test (openapi_test.go) must not expect them in the document.
// pageClient fetches pages without following redirects, with the cookies of c (nil: a
// fresh anonymous browser).
func pageClient(h *harness, c *apiClient) *http.Client {
	var jar http.CookieJar
	if c != nil {
		jar = c.http.Jar
	} else {
		jar, _ = cookiejar.New(nil)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func getPage(t *testing.T, h *harness, cl *http.Client, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8") // as a browser asks
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestUIAnonymousVisitorsGoToSetupThenLogin(t *testing.T) {
	h := newHarness(t)
	anon := pageClient(h, nil)
	for _, p := range []string{"/", "/t/acme/devices", "/tenants"} {
		resp, _ := getPage(t, h, anon, p)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/setup" {
			t.Errorf("GET %s without users = %d %q, want a redirect to /setup", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp, body := getPage(t, h, anon, "/setup?token=abc")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `value="abc"`) {
		t.Fatalf("setup page = %d", resp.StatusCode)
	}
	// Without the token there is no form that could only fail: the page says where the
	// one-time link is.
	resp, body = getPage(t, h, anon, "/setup")
	if resp.StatusCode != http.StatusOK || strings.Contains(body, "<form") || !strings.Contains(body, "setup_url") ||
		!strings.Contains(body, "espadmin user create") {
		t.Errorf("setup page without a token = %d, want the explanation and no form:\n%s", resp.StatusCode, body)
	}

	h.createUser(t, "ada@example.com", "acme", store.RoleOwner)
	resp, _ = getPage(t, h, anon, "/t/acme/devices?online=true")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/login?next=%2Ft%2Facme%2Fdevices%3Fonline%3Dtrue" {
		t.Errorf("anonymous device list = %d %q, want the login page with next", resp.StatusCode, loc)
	}
	resp, _ = getPage(t, h, anon, "/setup")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Errorf("setup once a user exists = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = getPage(t, h, anon, "/login?next=//evil.example/")
	if resp.StatusCode != http.StatusOK || strings.Contains(body, "evil.example") {
		t.Errorf("login keeps an off-site next: %d", resp.StatusCode)
	}
	if resp, _ = getPage(t, h, anon, "/signup"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-up page while closed = %d, want a redirect", resp.StatusCode)
	}
}

// TestUIUnknownAddressIsAPage: a mistyped UI address gets an HTML 404 page, signed in or
// not; the API and the machine endpoints keep the JSON error.
func TestUIUnknownAddressIsAPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	anon := pageClient(h, nil)
	for _, p := range []string{"/no-such-page", "/t/acme/devicez/x/y"} {
		resp, body := getPage(t, h, anon, p)
		if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(body, "Page not found") || strings.Contains(body, `"error"`) {
			t.Errorf("GET %s = %d %q, want an HTML 404 page:\n%s", p, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); csp == "" {
			t.Errorf("GET %s: the 404 page has no Content-Security-Policy", p)
		}
	}
	// A client that does not ask for HTML keeps the JSON error everywhere.
	req, _ := http.NewRequest(http.MethodGet, h.url+"/no-such-page", nil)
	req.Header.Set("Accept", "application/json")
	if r, err := anon.Do(req); err != nil || r.StatusCode != http.StatusNotFound || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Errorf("GET /no-such-page asking for JSON = %v %v, want the JSON 404", r, err)
	} else {
		r.Body.Close()
	}
	for _, p := range []string{"/api/v1/no-such-route", "/api/v1/tenants/acme/nothing"} {
		resp, body := getPage(t, h, anon, p)
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
			!strings.Contains(body, `"error"`) {
			t.Errorf("GET %s = %d %q %s, want the JSON error", p, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
}

func TestUIPagesCarryCSPAndRoleAwareActions(t *testing.T) {
	h := newHarness(t)
	h.createUser(t, "owner@example.com", "acme", store.RoleOwner)
	h.createUser(t, "viewer@example.com", "acme", store.RoleViewer)
	h.createUser(t, "other@example.com", "other", store.RoleOwner)
	owner := pageClient(h, h.login(t, "owner@example.com"))
	viewer := pageClient(h, h.login(t, "viewer@example.com"))

	resp, _ := getPage(t, h, owner, "/")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/t/acme/" {
		t.Fatalf("home = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	pages := []string{"/t/acme/", "/t/acme/devices", "/t/acme/devices/dev-1", "/t/acme/settings/members",
		"/t/acme/settings/tokens", "/t/acme/settings/audit", "/tenants", "/account", "/invitations/accept?token=x",
		"/t/acme/errors", "/t/acme/errors/grp-1", "/t/acme/settings", "/t/acme/projects/prj-1"}
	for _, p := range pages {
		resp, body := getPage(t, h, owner, p)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("owner GET %s = %d", p, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != ui.ContentSecurityPolicy {
			t.Errorf("GET %s CSP = %q", p, got)
		}
		if !strings.Contains(body, `name="csrf-token"`) {
			t.Errorf("GET %s carries no CSRF token", p)
		}
	}
	_, body := getPage(t, h, owner, "/t/acme/devices/dev-1")
	for _, want := range []string{`id="cmd-restart"`, `id="rotate"`, "edit-device-form"} {
		if !strings.Contains(body, want) {
			t.Errorf("owner's device page lacks %s", want)
		}
	}

	for p, forbidden := range map[string][]string{
		"/t/acme/devices":          {"create-device-form", "data-bulk="},
		"/t/acme/devices/dev-1":    {`id="cmd-restart"`, `id="rotate"`, "edit-device-form"},
		"/t/acme/settings/members": {"invite-form"},
		"/t/acme/projects/prj-1":   {"upload-form", "rollout-form", "project-config-form"},
		"/t/acme/errors":           {"Actions"},
		"/t/acme/errors/grp-1":     {`id="group-resolve"`, `id="group-reopen"`},
		"/t/acme/":                 {`href="/t/acme/settings"`},
	} {
		resp, body := getPage(t, h, viewer, p)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("viewer GET %s = %d", p, resp.StatusCode)
		}
		for _, f := range forbidden {
			if strings.Contains(body, f) {
				t.Errorf("viewer sees %s on %s", f, p)
			}
		}
	}
	for _, p := range []string{"/t/acme/settings/audit", "/t/acme/settings"} {
		if resp, body := getPage(t, h, viewer, p); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "viewer") {
			t.Errorf("viewer's %s = %d, want 403", p, resp.StatusCode)
		}
	}
	if resp, _ := getPage(t, h, viewer, "/t/other/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a tenant the viewer is not in = %d, want 404", resp.StatusCode)
	}
}

func TestUIStaticAssetsAreHashedAndCached(t *testing.T) {
	h := newHarness(t)
	anon := pageClient(h, nil)
	_, body := getPage(t, h, anon, "/setup")
	i := strings.Index(body, `/static/`)
	if i < 0 {
		t.Fatal("setup page references no static file")
	}
	ref := body[i : i+strings.IndexByte(body[i:], '"')]
	resp, _ := getPage(t, h, anon, ref)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("GET %s = %d %q", ref, resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	if resp, _ := getPage(t, h, anon, "/static/0123456789abcdef/app.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a stale asset URL = %d, want 404", resp.StatusCode)
	}
}

// TestUIFavicon: every page names its icon, which is served, and /favicon.ico (asked for by
// browsers regardless) leads to it instead of a 404 on every page.
func TestUIFavicon(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	anon := pageClient(h, nil)
	_, body := getPage(t, h, anon, "/setup")
	i := strings.Index(body, `rel="icon"`)
	if i < 0 {
		t.Fatal("the page links no icon")
	}
	j := strings.Index(body[i:], `href="`) + i + len(`href="`)
	ref := body[j : j+strings.IndexByte(body[j:], '"')]
	if resp, _ := getPage(t, h, anon, ref); resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" {
		t.Errorf("GET %s = %d %q", ref, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, _ := getPage(t, h, anon, "/favicon.ico"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != ref {
		t.Errorf("GET /favicon.ico = %d → %q, want a redirect to %s", resp.StatusCode, resp.Header.Get("Location"), ref)
	}
}
