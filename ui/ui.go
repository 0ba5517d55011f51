// Package ui is ESP Admin's web interface: server-rendered html/template pages with a little
// hand-written JavaScript (ES modules) for the live parts, all embedded in the binary. There
// is no build step and nothing is loaded from another site.
//
// Pages are rendered from typed view structs (views.go). The data a page shows is read from
// the JSON API by the page's module in the browser, with the session cookie and the CSRF
// token the page carries in a <meta> element; the server decides only who may see the page
// and which actions the caller's role allows, so no button is drawn that would fail.
//
// Static files are served under /static/<hash>/, where <hash> is a hash of every static
// file's content: relative imports between modules keep working, and any change yields new
// URLs, so the files can be cached for a year.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// ContentSecurityPolicy is sent with every page: scripts, styles, images and connections
// only from this server; no inline script, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// UI holds the parsed templates and the static files.
type UI struct {
	pages   map[string]*template.Template
	static  map[string][]byte
	version string
}

// New parses every template and hashes the static files. It fails when a template does not
// parse, so a broken page stops the server at start rather than at the first visit.
func New() (*UI, error) {
	u := &UI{pages: map[string]*template.Template{}, static: map[string][]byte{}}
	h := sha256.New()
	var names []string
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ui: static files: %w", err)
	}
	sort.Strings(names)
	for _, p := range names {
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("ui: read %s: %w", p, err)
		}
		name := strings.TrimPrefix(p, "static/")
		u.static[name] = b
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(b))
		h.Write(b)
	}
	u.version = hex.EncodeToString(h.Sum(nil))[:16]

	funcs := template.FuncMap{
		"asset": u.AssetURL,
		"scopes": func() []string {
			return []string{"devices:read", "devices:write", "commands:write", "config:write", "releases:write", "admin"}
		},
	}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui: parse layout: %w", err)
	}
	entries, err := fs.ReadDir(templateFS, "templates")
	if err != nil {
		return nil, fmt.Errorf("ui: templates: %w", err)
	}
	for _, e := range entries {
		if e.Name() == "layout.html" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, "templates/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("ui: parse %s: %w", e.Name(), err)
		}
		u.pages[strings.TrimSuffix(e.Name(), ".html")] = t
	}
	return u, nil
}

// Pages lists the names of every page template.
func (u *UI) Pages() []string {
	out := make([]string, 0, len(u.pages))
	for n := range u.pages {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Version is the hash of the static files, the folder they are served under.
func (u *UI) Version() string { return u.version }

// AssetURL is the cacheable URL of a static file, e.g. "/static/3f2a…/app.css".
func (u *UI) AssetURL(name string) string {
	return "/static/" + u.version + "/" + name
}

// Render writes page name with its view. The page is rendered into a buffer first, so a
// template error never leaves half a page on the wire.
func (u *UI) Render(w io.Writer, name string, v View) error {
	t, ok := u.pages[name]
	if !ok {
		return fmt.Errorf("ui: no page %q", name)
	}
	b := v.base()
	b.Page = name
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return fmt.Errorf("ui: render %s: %w", name, err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// ServiceWorker serves the service worker at the site root (/sw.js), so that it may control
// every page and receive push messages; it is revalidated at every visit so a new version
// takes over.
func (u *UI) ServiceWorker() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Service-Worker-Allowed", "/")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(u.static["sw.js"])
	})
}

// StaticHandler serves /static/<version>/<file>; prefix is the path the handler is mounted
// at ("/static/"). Files of another version are 404: the page that asked for them is stale.
func (u *UI) StaticHandler(prefix string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, prefix)
		version, name, ok := strings.Cut(rest, "/")
		b, found := u.static[name]
		if !ok || version != u.version || !found {
			http.NotFound(w, r)
			return
		}
		ct := mime.TypeByExtension(path.Ext(name))
		if path.Ext(name) == ".js" {
			ct = "text/javascript; charset=utf-8"
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		h := w.Header()
		h.Set("Content-Type", ct)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", `"`+u.version+`"`)
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b)
	})
}
