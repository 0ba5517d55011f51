package server

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/ota/otatest"
	"github.com/espadmin/espadmin/store"
)

// TestBodiesRefuseNULAndInvalidUTF8 sends a NUL character (\u0000) and invalid UTF-8 in the
// JSON bodies that used to answer 500 or silently store U+FFFD: a NUL is 422
// validation_failed naming the field, invalid UTF-8 is 400 invalid_utf8, and nothing changes.
func TestBodiesRefuseNULAndInvalidUTF8(t *testing.T) {
	t.Parallel()
	w := newOTAWorld(t)
	w.h.createUser(t, memberEmail("alpha", store.RoleAdmin), "alpha", store.RoleAdmin)
	admin, err := w.h.st.UserByEmail(t.Context(), memberEmail("alpha", store.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	status, rel := w.owner.upload(w.releasesPath()+"?version=v-1.0.0&notes=first", "application/octet-stream",
		bytes.NewReader(otatest.Image(otatest.ImageOptions{Version: "v-1.0.0"})))
	if status != http.StatusCreated {
		t.Fatalf("upload: %d %v", status, rel)
	}
	releasePath := w.releasesPath() + "/" + rel["id"].(string)
	projectPath := "/api/v1/tenants/alpha/projects/" + w.project

	for _, tc := range []struct {
		name, method, path string
		anonymous          bool
		body               string // %s is replaced by the bad text
		field              string
	}{
		{"login", "POST", "/api/v1/auth/login", true, `{"email":"%s","password":"x"}`, "email"},
		{"device project", "POST", "/api/v1/tenants/alpha/devices", false, `{"name":"d","project_id":"%s"}`, "project_id"},
		{"device name", "POST", "/api/v1/tenants/alpha/devices", false, `{"name":"%s"}`, "name"},
		{"project description", "PATCH", projectPath, false, `{"description":"%s"}`, "description"},
		{"project create", "POST", "/api/v1/tenants/alpha/projects", false, `{"name":"p2","description":"%s"}`, "description"},
		{"release notes", "PATCH", releasePath, false, `{"notes":"%s"}`, "notes"},
		{"rollout release", "POST", "/api/v1/tenants/alpha/rollouts", false, `{"release_id":"%s","target":{"kind":"all"}}`, "release_id"},
		{"rollout target", "POST", "/api/v1/tenants/alpha/rollouts", false, `{"release_id":"r","target":{"kind":"devices","device_ids":["a","%s"]}}`, "target.device_ids[1]"},
		{"bugsnag key", "PUT", "/api/v1/tenants/alpha/settings/bugsnag", false, `{"api_key":"%s"}`, "api_key"},
		{"transfer ownership", "POST", "/api/v1/tenants/alpha/transfer-ownership", false, `{"user_id":"%s"}`, "user_id"},
		{"tenant name", "PATCH", "/api/v1/tenants/alpha", false, `{"name":"%s"}`, "name"},
		{"token name", "POST", "/api/v1/tenants/alpha/tokens", false, `{"name":"%s","scopes":["devices:read"]}`, "name"},
		{"broker username", "POST", "/api/v1/tenants/alpha/settings/broker/test", false, `{"url":"tcp://127.0.0.1:1","username":"%s"}`, "username"},
		{"broker client", "PUT", "/api/v1/tenants/alpha/settings/broker", false, `{"mode":"builtin","client_id":"%s","version":0}`, "client_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := w.owner
			if tc.anonymous {
				c = w.h.newClient()
			}
			body := strings.Replace(tc.body, `"user_id":"%s"`, `"user_id":"`+admin.ID+`%s"`, 1)
			// NUL: refused, naming the field.
			status, resp := c.do(tc.method, tc.path, strings.Replace(body, "%s", `ok\u0000ok`, 1))
			if status != http.StatusUnprocessableEntity || errCode(t, resp) != "validation_failed" {
				t.Fatalf("NUL: %d %v, want 422 validation_failed", status, resp)
			}
			if got := resp["error"].(map[string]any)["fields"].(map[string]any)[tc.field]; got != msgNUL {
				t.Errorf("NUL: fields %v, want %s: %s", resp["error"], tc.field, msgNUL)
			}
			// Invalid UTF-8 (a lone continuation byte and a truncated sequence): refused
			// before decoding, so nothing is stored with U+FFFD.
			for _, bad := range []string{"ok\x80ok", "ok\xe2\x82"} {
				status, resp = c.do(tc.method, tc.path, strings.Replace(body, "%s", bad, 1))
				if status != http.StatusBadRequest || errCode(t, resp) != "invalid_utf8" {
					t.Errorf("UTF-8 %q: %d %v, want 400 invalid_utf8", bad, status, resp)
				}
			}
		})
	}

	// Nothing changed.
	if p := w.get(t, projectPath); p["description"] != nil && p["description"] != "" {
		t.Errorf("project description changed: %v", p["description"])
	}
	if r := w.get(t, releasePath); r["notes"] != "first" {
		t.Errorf("release notes changed: %v", r["notes"])
	}
	if tn := w.get(t, "/api/v1/tenants/alpha"); strings.ContainsAny(tn["name"].(string), "\x00\uFFFD") {
		t.Errorf("tenant name changed: %q", tn["name"])
	}
	if list := w.get(t, "/api/v1/tenants/alpha/projects"); len(list["items"].([]any)) != 1 {
		t.Errorf("projects: %v", list["items"])
	}
	// A JSON string may still hold the text `\u0000` (an escaped backslash before u0000).
	status, resp := w.owner.do("PATCH", releasePath, `{"notes":"a \\u0000 b"}`)
	if status != http.StatusOK || resp["notes"] != `a \u0000 b` {
		t.Errorf("escaped backslash: %d %v", status, resp)
	}
}

// TestReleaseUploadRefusesBadText covers the text fields of an upload, which are query
// values or multipart fields rather than JSON: NUL and invalid UTF-8 are refused and no
// release is stored.
func TestReleaseUploadRefusesBadText(t *testing.T) {
	t.Parallel()
	w := newOTAWorld(t)
	image := otatest.Image(otatest.ImageOptions{Version: "v-1.0.0"})
	// Query values: 400 invalid_parameter (validTextMiddleware).
	for _, q := range []string{"?version=v-1.0.0&notes=a%00b", "?version=v-1.0.0&notes=a%FFb"} {
		status, resp := w.owner.upload(w.releasesPath()+q, "application/octet-stream", bytes.NewReader(image))
		if status != http.StatusBadRequest || errCode(t, resp) != "invalid_parameter" {
			t.Errorf("%s: %d %v, want 400 invalid_parameter", q, status, resp)
		}
	}
	// Multipart fields: 422 naming the field.
	for _, notes := range []string{"a\x00b", "a\xffb"} {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("version", "v-1.0.0")
		_ = mw.WriteField("notes", notes)
		fw, _ := mw.CreateFormFile("file", "fw.bin")
		_, _ = fw.Write(image)
		_ = mw.Close()
		status, resp := w.owner.upload(w.releasesPath(), mw.FormDataContentType(), &buf)
		if status != http.StatusUnprocessableEntity || resp["error"].(map[string]any)["fields"].(map[string]any)["notes"] == nil {
			t.Errorf("notes %q: %d %v, want 422 on notes", notes, status, resp)
		}
	}
	if list := w.get(t, w.releasesPath()); len(list["items"].([]any)) != 0 {
		t.Errorf("releases stored: %v", list["items"])
	}
}

// TestPathParametersRefuseBadText requests every route with a path parameter with %00 (NUL)
// and %FF (invalid UTF-8) in each parameter: 400 invalid_parameter before any handler runs,
// where GET routes on config, errors, projects, releases and rollouts used to answer 500.
func TestPathParametersRefuseBadText(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createUser(t, memberEmail("alpha", store.RoleOwner), "alpha", store.RoleOwner)
	owner := h.login(t, memberEmail("alpha", store.RoleOwner))
	param := regexp.MustCompile(`:[a-z_]+|\*`)
	n := 0
	for _, r := range h.srv.echo.Routes() {
		if !strings.Contains(r.Path, ":") || r.Method == echo.RouteNotFound {
			continue
		}
		for _, bad := range []string{"%00", "x%FFy"} {
			// One bad parameter at a time, the others plausible.
			locs := param.FindAllStringIndex(r.Path, -1)
			for i := range locs {
				path := ""
				last := 0
				for j, l := range locs {
					v := "alpha"
					if j == i {
						v = bad
					}
					path += r.Path[last:l[0]] + v
					last = l[1]
				}
				path += r.Path[last:]
				status, resp := owner.do(r.Method, path, nil)
				if status != http.StatusBadRequest || errCode(t, resp) != "invalid_parameter" {
					t.Errorf("%s %s: %d %v, want 400 invalid_parameter", r.Method, path, status, resp)
				}
				n++
			}
		}
	}
	if n < 60 {
		t.Errorf("only %d requests: are the routes registered?", n)
	}
}
