package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// undocumentedRoutes are the routes outside the JSON API, which the OpenAPI document does
// not describe. Everything else registered on Echo must be in the document. Add to this
// list deliberately.
var undocumentedRoutes = []string{
	"GET /healthz",
	"GET /readyz",
	"GET /metrics",
	// Web UI pages (ui.go).
	"GET /", "GET /setup", "GET /login", "GET /signup", "GET /forgot-password",
	"GET /reset-password", "GET /verify-email", "GET " + invitationAcceptPath, "GET /tenants",
	"GET /account", "GET /favicon.ico",
	// The UI's service worker (Web Push notifications), served at the root for its scope.
	"GET /sw.js",
}

// undocumentedPrefixes are mounted handlers and pages outside the JSON API: signed blob
// downloads, the UI's static files and the UI's tenant pages.
var undocumentedPrefixes = []string{"/blobs/", "/static/", "/t/"}

func undocumented(method, path string) bool {
	if slices.Contains(undocumentedRoutes, method+" "+path) {
		return true
	}
	for _, p := range undocumentedPrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// registeredRoutes lists "METHOD /path/{param}" for every route registered on s, without
// Echo's internal not-found routes.
func registeredRoutes(s *Server) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range s.echo.Routes() {
		if r.Method == echo.RouteNotFound || undocumented(r.Method, r.Path) {
			continue
		}
		k := r.Method + " " + openAPIPath(r.Path)
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// documentedRoutes lists "METHOD /path/{param}" for every operation in the served document.
func documentedRoutes(t *testing.T, doc map[string]any) []string {
	t.Helper()
	var out []string
	paths, _ := doc["paths"].(map[string]any)
	for p, item := range paths {
		for method := range item.(map[string]any) {
			out = append(out, strings.ToUpper(method)+" "+p)
		}
	}
	sort.Strings(out)
	return out
}

func fetchOpenAPI(t *testing.T, s *Server) map[string]any {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: %d %s", rec.Code, rec.Body)
	}
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestOpenAPICoversRoutes fails when a route registered on Echo is missing from the
// document (registered beside the route table rather than through it), or the document names
// a route that does not exist. Mounting /blobs/ shows
// mounted handlers are excluded explicitly, not by accident.
func TestOpenAPICoversRoutes(t *testing.T) {
	t.Parallel()
	s := New(HTTPConfig{Addr: "127.0.0.1:0"}, Deps{})
	s.mount("/blobs/", http.NotFoundHandler())
	doc := fetchOpenAPI(t, s)
	registered := registeredRoutes(s)
	documented := documentedRoutes(t, doc)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is registered but missing from the OpenAPI document (add it to the route table, apiRoutes)", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(registered, r) {
			t.Errorf("the OpenAPI document names %s, which is not registered", r)
		}
	}
	if len(registered) < 20 {
		t.Errorf("only %d API routes registered: %v", len(registered), registered)
	}
}

// TestOpenAPIDocument checks the document's shape: version, the shared error component,
// security schemes, parameters for every path segment, and tenant routes naming their
// permission.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	s := New(HTTPConfig{Addr: "127.0.0.1:0"}, Deps{})
	doc := fetchOpenAPI(t, s)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi %v", doc["openapi"])
	}
	comps := doc["components"].(map[string]any)
	schemas := comps["schemas"].(map[string]any)
	errSchema, ok := schemas["ErrorResponse"].(map[string]any)
	if !ok {
		t.Fatalf("no ErrorResponse schema: %v", keys(schemas))
	}
	if !reflect.DeepEqual(errSchema["required"], []any{"error"}) {
		t.Errorf("error schema %v", errSchema)
	}
	if _, ok := comps["responses"].(map[string]any)["Error"]; !ok {
		t.Error("no shared Error response")
	}
	sec := comps["securitySchemes"].(map[string]any)
	for _, name := range []string{"session", "csrf", "bearer"} {
		if _, ok := sec[name]; !ok {
			t.Errorf("security scheme %s missing", name)
		}
	}
	if sec["session"].(map[string]any)["name"] != sessionCookie || sec["csrf"].(map[string]any)["name"] != csrfHeader {
		t.Errorf("security schemes name the wrong cookie or header: %v", sec)
	}

	// Every schema reference resolves.
	raw, _ := json.Marshal(doc)
	for _, part := range strings.Split(string(raw), `"$ref":"`)[1:] {
		target := part[:strings.IndexByte(part, '"')]
		name, ok := strings.CutPrefix(target, "#/components/schemas/")
		if ok {
			if _, ok := schemas[name]; !ok {
				t.Errorf("dangling $ref %s", target)
			}
			continue
		}
		if target != "#/components/responses/Error" {
			t.Errorf("unexpected $ref %s", target)
		}
	}

	byKey := map[string]apiRoute{}
	for _, r := range s.apiRoutes() {
		k := r.Method + " " + r.Path
		if _, dup := byKey[k]; dup {
			t.Errorf("route %s described twice", k)
		}
		byKey[k] = r
		if r.Auth == authTenant && r.Perm == "" {
			t.Errorf("tenant route %s has no permission", k)
		}
		if r.Auth == authTenant && !strings.HasPrefix(r.Path, "/api/v1/tenants/:tenant") {
			t.Errorf("route %s is tenant-scoped but not under /api/v1/tenants/:tenant", k)
		}
		if r.Handler == nil {
			t.Errorf("route %s has no handler", k)
		}
		if r.Summary == "" {
			t.Errorf("route %s has no summary", k)
		}
	}

	paths := doc["paths"].(map[string]any)
	for p, item := range paths {
		for method, o := range item.(map[string]any) {
			op := o.(map[string]any)
			var names []string
			for _, prm := range asSlice(op["parameters"]) {
				pm := prm.(map[string]any)
				if pm["in"] == "path" {
					names = append(names, pm["name"].(string))
				}
			}
			for _, seg := range strings.Split(p, "/") {
				if strings.HasPrefix(seg, "{") && !slices.Contains(names, strings.Trim(seg, "{}")) {
					t.Errorf("%s %s: path parameter %s undocumented", method, p, seg)
				}
			}
			resp := op["responses"].(map[string]any)
			if _, ok := resp["default"]; !ok {
				t.Errorf("%s %s: no default error response", method, p)
			}
			if _, ok := op["security"]; !ok {
				t.Errorf("%s %s: no security requirement", method, p)
			}
			if strings.HasPrefix(p, "/api/v1/tenants/{tenant}") && op["x-permission"] == nil {
				t.Errorf("%s %s: no x-permission", method, p)
			}
		}
	}

	// A request body schema is derived from the wire struct: fields, required, enums.
	tokenReq := paths["/api/v1/tenants/{tenant}/tokens"].(map[string]any)["post"].(map[string]any)
	body := tokenReq["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
	name := strings.TrimPrefix(body["$ref"].(string), "#/components/schemas/")
	sch := schemas[name].(map[string]any)
	props := sch["properties"].(map[string]any)
	for _, f := range []string{"name", "kind", "scopes", "expires_in"} {
		if _, ok := props[f]; !ok {
			t.Errorf("CreateTokenRequest lacks %s: %v", f, keys(props))
		}
	}
	if !reflect.DeepEqual(sch["required"], []any{"name", "scopes"}) {
		t.Errorf("required %v", sch["required"])
	}
	items := props["scopes"].(map[string]any)["items"].(map[string]any)
	if len(asSlice(items["enum"])) != 6 {
		t.Errorf("scope enum %v", items)
	}
	// Embedded structs are flattened: the created token has both the token's fields and the secret.
	created := schemas["TokenCreatedResponse"].(map[string]any)["properties"].(map[string]any)
	for _, f := range []string{"id", "scopes", "token"} {
		if _, ok := created[f]; !ok {
			t.Errorf("TokenCreatedResponse lacks %s", f)
		}
	}
	// Lists are pages.
	if _, ok := schemas["MemberResponsePage"].(map[string]any)["properties"].(map[string]any)["next_cursor"]; !ok {
		t.Error("member list is not a page")
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestComponentName(t *testing.T) {
	t.Parallel()
	for typ, want := range map[reflect.Type]string{
		reflect.TypeOf(tenantResponse{}):                   "TenantResponse",
		reflect.TypeOf(pageResponse[tenantResponse]{}):     "TenantResponsePage",
		reflect.TypeOf(pageResponse[auditEventResponse]{}): "AuditEventResponsePage",
	} {
		if got := componentName(typ); got != want {
			t.Errorf("%v: %s, want %s", typ, got, want)
		}
	}
	if got := openAPIPath("/api/v1/tenants/:tenant/members/:user"); got != "/api/v1/tenants/{tenant}/members/{user}" {
		t.Errorf("openAPIPath: %s", got)
	}
}
