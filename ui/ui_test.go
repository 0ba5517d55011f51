package ui

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// allPerms is every permission of docs/roles.md: an owner's view of each page.
var allPerms = map[string]bool{
	"tenant:read": true, "devices:read": true, "devices:write": true, "commands:write": true,
	"config:write": true, "releases:write": true, "members:manage": true, "tokens:manage": true,
	"settings:manage": true, "audit:read": true, "tenant:delete": true, "ownership:transfer": true,
}

func userBase(perms map[string]bool, role string) Base {
	return Base{
		Title: "Sample", CSRF: "csrf-sample", User: &User{ID: "u1", Email: "ada@example.com", Name: "Ada"},
		Tenant:  &Tenant{Slug: "acme", Name: "Acme", Role: role},
		Tenants: []Tenant{{Slug: "acme", Name: "Acme", Role: role}, {Slug: "beta", Name: "Beta", Role: "viewer"}},
		Perms:   perms, Section: "devices",
	}
}

// samples is one view per page; the test fails when a page has none, so a new template
// cannot go untested.
func samples(b Base) map[string]View {
	anon := Base{Title: "Sample"}
	return map[string]View{
		"setup":      &SetupView{Base: anon, Token: "tok"},
		"login":      &LoginView{Base: anon, Next: "/t/acme/", SignupOpen: true},
		"signup":     &SignupView{Base: anon, Next: "/"},
		"forgot":     &ForgotView{Base: anon},
		"reset":      &ResetView{Base: anon, Token: "tok"},
		"verify":     &VerifyView{Base: anon, Token: "tok"},
		"invitation": &InvitationView{Base: b, Token: "tok"},
		"tenants":    &TenantsView{Base: b},
		"account":    &AccountView{Base: b},
		"dashboard":  &DashboardView{Base: b},
		"devices":    &DevicesView{Base: b},
		"device":     &DeviceView{Base: b, DeviceID: "dev-1"},
		"members":    &MembersView{Base: b},
		"projects":   &ProjectsView{Base: b},
		"project":    &ProjectView{Base: b, ProjectID: "prj-1"},
		"tokens":     &TokensView{Base: b},
		"audit":      &AuditView{Base: b},
		"alerts":     &AlertsView{Base: b},
		"error":      &ErrorView{Base: b, Status: 404, Message: "no such thing"},
		"errors":     &ErrorsView{Base: b},
		"errorgroup": &ErrorGroupView{Base: b, GroupID: "grp-1"},
		"settings":   &SettingsView{Base: b},
	}
}

func mustNew(t *testing.T) *UI {
	t.Helper()
	u, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// renderAll renders every page as an owner and as a viewer.
func renderAll(t *testing.T, u *UI) map[string]string {
	t.Helper()
	out := map[string]string{}
	viewer := map[string]bool{"tenant:read": true, "devices:read": true}
	for _, who := range []struct {
		name string
		base Base
	}{{"owner", userBase(allPerms, "owner")}, {"viewer", userBase(viewer, "viewer")}} {
		views := samples(who.base)
		for _, page := range u.Pages() {
			v, ok := views[page]
			if !ok {
				t.Fatalf("page %q has no sample view in samples(); add one", page)
			}
			var buf bytes.Buffer
			if err := u.Render(&buf, page, v); err != nil {
				t.Fatalf("render %s as %s: %v", page, who.name, err)
			}
			out[page+"/"+who.name] = buf.String()
		}
	}
	return out
}

func TestUIEveryTemplateRenders(t *testing.T) {
	u := mustNew(t)
	if len(u.Pages()) < 10 {
		t.Fatalf("only %d pages parsed", len(u.Pages()))
	}
	for name, doc := range renderAll(t, u) {
		if !strings.Contains(doc, "</html>") || !strings.Contains(doc, "<main") {
			t.Errorf("%s: not a complete page", name)
		}
		if strings.Contains(doc, "<no value>") {
			t.Errorf("%s: a template printed <no value>", name)
		}
	}
	if err := u.Render(io.Discard, "nope", &ForgotView{}); err == nil {
		t.Error("rendering an unknown page succeeded")
	}
}

// labelled reports every form field without a label: a <label for=id> or a wrapping label.
func unlabelled(doc string) ([]string, error) {
	root, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		return nil, err
	}
	labelFor := map[string]bool{}
	type field struct {
		desc    string
		id      string
		wrapped bool
	}
	var fields []field
	var walk func(n *html.Node, inLabel bool)
	walk = func(n *html.Node, inLabel bool) {
		if n.Type == html.ElementNode {
			attr := func(k string) string {
				for _, a := range n.Attr {
					if a.Key == k {
						return a.Val
					}
				}
				return ""
			}
			switch n.Data {
			case "label":
				if f := attr("for"); f != "" {
					labelFor[f] = true
				}
				inLabel = true
			case "input", "select", "textarea":
				typ := strings.ToLower(attr("type"))
				if n.Data != "input" || (typ != "hidden" && typ != "submit" && typ != "button" && typ != "reset" && typ != "image") {
					var b bytes.Buffer
					_ = html.Render(&b, n)
					fields = append(fields, field{desc: b.String(), id: attr("id"), wrapped: inLabel})
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inLabel)
		}
	}
	walk(root, false)
	var bad []string
	for _, f := range fields {
		if !f.wrapped && (f.id == "" || !labelFor[f.id]) {
			bad = append(bad, f.desc)
		}
	}
	return bad, nil
}

func TestUIEveryFormFieldHasALabel(t *testing.T) {
	u := mustNew(t)
	for name, doc := range renderAll(t, u) {
		bad, err := unlabelled(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, b := range bad {
			t.Errorf("%s: form field without a label: %s", name, b)
		}
	}
}

// The label check itself must catch what it claims to.
func TestUILabelCheckFindsUnlabelledFields(t *testing.T) {
	doc := `<form><label for="a">A</label><input id="a"><label>B <input name="b"></label>
	<input name="c"><select id="d"></select><input type="hidden" name="e"><textarea id="f"></textarea>
	<label for="g">G</label><textarea id="g"></textarea></form>`
	bad, err := unlabelled(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 3 {
		t.Fatalf("found %d unlabelled fields, want 3 (c, d, f): %v", len(bad), bad)
	}
}

func TestUIViewerSeesNoActionsTheyCannotTake(t *testing.T) {
	u := mustNew(t)
	pages := renderAll(t, u)
	for _, marker := range []string{"create-device-form", `id="cmd-restart"`, `data-bulk="restart"`, `id="rotate"`, "edit-device-form", "invite-form", `id="config-form"`, "upload-form", "rollout-form", "project-form",
		"project-config-form", `data-bulk="tag"`, `data-bulk="config-push"`, "tenant-form", "bugsnag-form",
		"broker-form", `id="broker-test"`, `id="broker-state"`} {
		found := false
		for name, doc := range pages {
			if strings.HasSuffix(name, "/viewer") && strings.Contains(doc, marker) {
				t.Errorf("%s shows %s to a viewer", name, marker)
			}
			if strings.HasSuffix(name, "/owner") && strings.Contains(doc, marker) {
				found = true
			}
		}
		if !found {
			t.Errorf("no page shows %s to an owner", marker)
		}
	}
}

var assetRef = regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`)

func TestUIStaticAssetsAreHashedAndCacheable(t *testing.T) {
	u := mustNew(t)
	h := u.StaticHandler("/static/")
	refs := map[string]bool{}
	for _, doc := range renderAll(t, u) {
		for _, m := range assetRef.FindAllStringSubmatch(doc, -1) {
			refs[m[1]] = true
		}
	}
	if len(refs) < 3 {
		t.Fatalf("pages reference only %v", refs)
	}
	for ref := range refs {
		if !strings.HasPrefix(ref, "/static/"+u.Version()+"/") {
			t.Errorf("%s does not carry the content hash %s", ref, u.Version())
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, ref, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d", ref, rec.Code)
			continue
		}
		if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") || !strings.Contains(cc, "immutable") {
			t.Errorf("%s Cache-Control = %q", ref, cc)
		}
		if ct := rec.Header().Get("Content-Type"); path.Ext(ref) == ".js" && !strings.HasPrefix(ct, "text/javascript") {
			t.Errorf("%s Content-Type = %q", ref, ct)
		}
	}
	for _, stale := range []string{"/static/0000000000000000/app.js", "/static/" + u.Version() + "/nope.js", "/static/" + u.Version()} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, stale, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", stale, rec.Code)
		}
	}
}

var (
	importRef  = regexp.MustCompile(`(?m)(?:^import .* from|^import) "(\.[^"]+)"`)
	pageModule = regexp.MustCompile(`const pages = \[([^\]]*)\]`)
)

// Every relative import of every module resolves to an embedded file, and every page module
// app.js loads exists, so a typo cannot break a page only at run time.
func TestUIModuleImportsResolve(t *testing.T) {
	u := mustNew(t)
	for name, body := range u.static {
		if path.Ext(name) != ".js" {
			continue
		}
		for _, m := range importRef.FindAllStringSubmatch(string(body), -1) {
			target := path.Join(path.Dir(name), m[1])
			if _, ok := u.static[target]; !ok {
				t.Errorf("%s imports %s, which does not exist", name, m[1])
			}
		}
	}
	m := pageModule.FindStringSubmatch(string(u.static["app.js"]))
	if m == nil {
		t.Fatal("app.js has no page list")
	}
	for _, p := range strings.Split(m[1], ",") {
		p = strings.Trim(strings.TrimSpace(p), `"`)
		if _, ok := u.static["pages/"+p+".js"]; !ok {
			t.Errorf("app.js loads pages/%s.js, which does not exist", p)
		}
		if _, ok := u.pages[p]; !ok {
			t.Errorf("app.js has a module for page %s, which has no template", p)
		}
	}
	entries, err := os.ReadDir("static/pages")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.Contains(m[1], `"`+strings.TrimSuffix(e.Name(), ".js")+`"`) {
			t.Errorf("static/pages/%s is never loaded: add it to app.js's page list", e.Name())
		}
	}
}

func TestUINoInlineScripts(t *testing.T) {
	u := mustNew(t)
	inline := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|\son[a-z]+="`)
	for name, doc := range renderAll(t, u) {
		if loc := inline.FindStringIndex(doc); loc != nil {
			t.Errorf("%s has inline script (forbidden by the CSP): %q", name, doc[loc[0]:min(loc[1]+40, len(doc))])
		}
	}
	if !strings.Contains(ContentSecurityPolicy, "script-src 'self'") || strings.Contains(ContentSecurityPolicy, "unsafe-inline") {
		t.Errorf("CSP %q", ContentSecurityPolicy)
	}
}

// findNodes returns the elements of the tree under n for which match holds.
func findNodes(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	if n.Type == html.ElementNode && match(n) {
		out = append(out, n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		out = append(out, findNodes(c, match)...)
	}
	return out
}

func attrOf(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func byID(root *html.Node, id string) *html.Node {
	nodes := findNodes(root, func(n *html.Node) bool { v, _ := attrOf(n, "id"); return v == id })
	if len(nodes) != 1 {
		return nil
	}
	return nodes[0]
}

// The broker section of the settings page: the mode, the external broker's fields (each with
// a place for its field error), a write-only password, the test and save buttons, the live
// state, and the 409 reload button, hidden until needed.
func TestUISettingsBrokerSection(t *testing.T) {
	u := mustNew(t)
	var buf bytes.Buffer
	if err := u.Render(&buf, "settings", &SettingsView{Base: userBase(allPerms, "owner")}); err != nil {
		t.Fatal(err)
	}
	root, err := html.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	form := byID(root, "broker-form")
	if form == nil {
		t.Fatal("no broker-form")
	}
	named := func(name string) []*html.Node {
		return findNodes(form, func(n *html.Node) bool { v, _ := attrOf(n, "name"); return v == name })
	}
	var modes []string
	for _, n := range named("mode") {
		if typ, _ := attrOf(n, "type"); typ != "radio" {
			t.Errorf("mode is a %s, want radio buttons", typ)
		}
		v, _ := attrOf(n, "value")
		modes = append(modes, v)
	}
	if strings.Join(modes, ",") != "builtin,external" {
		t.Errorf("mode choices = %v, want builtin and external", modes)
	}
	external := byID(root, "broker-external")
	if external == nil {
		t.Fatal("no broker-external")
	}
	if _, hidden := attrOf(external, "hidden"); !hidden {
		t.Error("the external broker's fields are shown before the mode is known")
	}
	for _, f := range []struct{ name, tag string }{
		{"url", "input"}, {"username", "input"}, {"password", "input"}, {"ca_cert_pem", "textarea"},
		{"topic_root", "input"}, {"client_id", "input"},
	} {
		nodes := findNodes(external, func(n *html.Node) bool { v, _ := attrOf(n, "name"); return v == f.name })
		if len(nodes) != 1 || nodes[0].Data != f.tag {
			t.Errorf("field %s: want one <%s> among the external broker's fields, found %d", f.name, f.tag, len(nodes))
			continue
		}
		errs := findNodes(form, func(n *html.Node) bool { v, _ := attrOf(n, "data-error-for"); return v == f.name })
		if len(errs) != 1 {
			t.Errorf("field %s has %d places for its field error, want 1", f.name, len(errs))
		}
	}
	if pw := named("password"); len(pw) == 1 {
		if typ, _ := attrOf(pw[0], "type"); typ != "password" {
			t.Errorf("password type = %q", typ)
		}
		if _, ok := attrOf(pw[0], "value"); ok {
			t.Error("the password field carries a value: it is write-only")
		}
	}
	for id, text := range map[string]string{"broker-test": "Test connection", "broker-reload": "Reload"} {
		n := byID(root, id)
		if n == nil || n.Data != "button" {
			t.Errorf("no <button id=%s>", id)
			continue
		}
		var b bytes.Buffer
		_ = html.Render(&b, n)
		if !strings.Contains(b.String(), text) {
			t.Errorf("%s reads %q, want %q in it", id, b.String(), text)
		}
	}
	if _, hidden := attrOf(byID(root, "broker-reload"), "hidden"); !hidden {
		t.Error("the reload button is shown before a conflict")
	}
	if res := byID(root, "broker-test-result"); res == nil {
		t.Error("no place for the test result")
	} else if role, _ := attrOf(res, "role"); role != "status" {
		t.Errorf("test result role = %q, want status", role)
	}
	if st := byID(root, "broker-state"); st == nil {
		t.Error("no live state")
	} else if role, _ := attrOf(st, "role"); role != "status" {
		t.Errorf("live state role = %q, want status", role)
	}
	if len(findNodes(form, func(n *html.Node) bool {
		typ, _ := attrOf(n, "type")
		return n.Data == "button" && typ == "submit" && strings.Contains(n.FirstChild.Data, "Save broker settings")
	})) != 1 {
		t.Error("no Save broker settings button")
	}

	// Someone without settings:manage sees neither the form nor the state.
	buf.Reset()
	viewer := userBase(map[string]bool{"tenant:read": true, "devices:read": true}, "viewer")
	if err := u.Render(&buf, "settings", &SettingsView{Base: viewer}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"broker-form", "broker-state", "settings/broker"} {
		if strings.Contains(buf.String(), m) {
			t.Errorf("a viewer's settings page contains %s", m)
		}
	}
}
