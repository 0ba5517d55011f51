package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes registers the middleware and every route of the server: the operational routes and
// the web UI here, the JSON API from the table in apiRoutes.
func (s *Server) routes() {
	e := s.echo
	// Order matters: the request ID exists before anything logs; observe sees the final
	// status, including errors and recovered panics; the body limit applies to everything.
	e.Use(
		requestIDMiddleware,
		s.observeMiddleware,
		s.recoverMiddleware,
		s.routeBodyLimit, // BodyLimit(DefaultBodyLimit) unless the route sets its own
		validTextMiddleware,
	)

	// Operations.
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.deps.Gatherer, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{s},
	})))

	// The JSON API. authenticate identifies the caller (session cookie or bearer token) on
	// every route below and leaves anonymous requests to the route's own checks. Every API
	// route comes from one table (apiRoutes): it registers the route, builds the OpenAPI
	// document and drives the permission tests, so the three cannot disagree.
	api := e.Group("/api/v1", s.authenticate)
	table := s.apiRoutes()
	doc, err := json.Marshal(openAPIDocument(table, securityNames{Cookie: sessionCookie, CSRFHeader: csrfHeader}))
	if err != nil {
		panic("server: build OpenAPI document: " + err.Error()) // a programming error in a wire type
	}
	s.openAPI = doc
	for _, r := range table {
		s.register(api, r)
	}
	// Event and log streams end when shutdown begins, or Shutdown would wait for them until
	// its deadline.
	s.http.RegisterOnShutdown(s.closeEventStreams)
	s.http.RegisterOnShutdown(s.closeLogStreams)

	// --- Web UI ---
	// Server-rendered pages (package ui, server/ui.go); their scripts read the API above.
	// Static files live under a content hash and are cached for a year.
	s.ui = mustUI()
	e.GET("/static/*", echo.WrapHandler(s.ui.StaticHandler("/static/")))
	e.HEAD("/static/*", echo.WrapHandler(s.ui.StaticHandler("/static/")))
	e.GET("/sw.js", echo.WrapHandler(s.ui.ServiceWorker()))
	// uiHeaders is applied per route, not through an Echo group: a group with middleware
	// registers catch-all routes, which would answer every unknown path and every wrong
	// method with the UI's 404 instead of the API's 404 and 405.
	pages := uiRoutes{e}
	pages.GET("/", s.uiHome)
	pages.GET("/setup", s.uiSetup)
	// Browsers and bookmarks ask for /favicon.ico whatever the page says.
	pages.GET("/favicon.ico", func(c echo.Context) error {
		return c.Redirect(http.StatusMovedPermanently, s.ui.AssetURL("favicon.svg"))
	})
	pages.GET("/login", s.uiLogin)
	pages.GET("/signup", s.uiSignup)
	pages.GET("/forgot-password", s.uiForgot)
	pages.GET("/reset-password", s.uiReset)
	pages.GET("/verify-email", s.uiVerify)
	pages.GET(invitationAcceptPath, s.uiInvitation)
	pages.GET("/tenants", s.uiTenants)
	pages.GET("/account", s.uiAccount)
	pages.GET("/t/:tenant", s.uiTenantRedirect)
	pages.GET("/t/:tenant/", s.tenantPage("dashboard", PermDevicesRead, s.uiDashboard))
	pages.GET("/t/:tenant/devices", s.tenantPage("devices", PermDevicesRead, s.uiDevices))
	pages.GET("/t/:tenant/devices/:device", s.tenantPage("devices", PermDevicesRead, s.uiDevice))
	pages.GET("/t/:tenant/projects", s.tenantPage("projects", PermDevicesRead, s.uiProjects))
	pages.GET("/t/:tenant/projects/:project", s.tenantPage("projects", PermDevicesRead, s.uiProject))
	pages.GET("/t/:tenant/errors", s.tenantPage("errors", PermDevicesRead, s.uiErrors))
	pages.GET("/t/:tenant/errors/:group", s.tenantPage("errors", PermDevicesRead, s.uiErrorGroup))
	pages.GET("/t/:tenant/alerts", s.tenantPage("alerts", PermDevicesRead, s.uiAlerts))
	pages.GET("/t/:tenant/settings", s.tenantPage("settings", PermSettingsManage, s.uiSettings))
	pages.GET("/t/:tenant/settings/members", s.tenantPage("members", PermTenantRead, s.uiMembers))
	pages.GET("/t/:tenant/settings/tokens", s.tenantPage("tokens", PermTenantRead, s.uiTokens))
	pages.GET("/t/:tenant/settings/audit", s.tenantPage("audit", PermAuditRead, s.uiAudit))
}

// authKind says how a route authenticates.
type authKind int

const (
	// authNone: public route. Anonymous callers are served, and a stale session cookie is
	// cleared rather than refused (see authenticate).
	authNone authKind = iota
	// authAny: a session or any API token.
	authAny
	// authSession: a signed-in user through a browser session only; API tokens are refused.
	authSession
	// authTenant: a member of the tenant in the path (session or personal token) or a
	// tenant token, holding the route's permission.
	authTenant
)

// apiRoute is one route of the JSON API: what serves it, who may call it, and how the
// OpenAPI document describes it. The table of them (apiRoutes) is the one place a route is
// written down.
type apiRoute struct {
	Method string
	Path   string // Echo syntax: /api/v1/tenants/:tenant
	// Handler serves the route; Middleware runs before it, after authentication and, for
	// tenant routes, after the permission check.
	Handler    echo.HandlerFunc
	Middleware []echo.MiddlewareFunc
	// OwnAuth routes skip the API's session and token authentication: their Middleware
	// checks the caller (the device authentication endpoints external brokers call with a
	// shared secret, possibly as HTTP basic auth).
	OwnAuth bool
	// BodyLimit, when set, replaces DefaultBodyLimit and is read at each request.
	BodyLimit func() int64

	Tag     string
	Summary string
	// Description adds detail; the permission and auth notes are appended automatically.
	Description string
	Auth        authKind
	// Perm is the permission tenant routes need (Auth == authTenant); tenantScope checks it.
	Perm Permission
	// Query is a struct whose `query` tagged fields are the query parameters.
	Query any
	// Request is the JSON body's wire type; nil means no body.
	Request any
	// Status is the success status (200 when zero); Response its body type (nil: no body).
	Status   int
	Response any
	// RequestType and ResponseType are the bodies' media types when not application/json
	// (a CSV upload, a CSV or zip download).
	RequestType, ResponseType string
	// Errors lists the error statuses beyond those every route of its Auth kind can return.
	Errors []int
}

// apiRoutes is the table of every route under /api/v1, grouped by feature; each group lives
// in its routes_*.go file beside the handlers' wire types.
func (s *Server) apiRoutes() []apiRoute {
	var table []apiRoute
	table = append(table, s.tenancyRoutes()...)
	table = append(table, s.accountRoutes()...)
	table = append(table, s.deviceRoutes()...)
	table = append(table, s.logRoutes()...)
	table = append(table, s.configRoutes()...)
	table = append(table, s.releaseRoutes()...)
	table = append(table, s.brokerRoutes()...)
	table = append(table, s.crashRoutes()...)
	table = append(table, s.alertRoutes()...)
	return table
}

// register adds one API route to Echo. Tenant routes get their permission check
// (tenantScope) as their first middleware. Each route gets its own middleware rather than an
// echo.Group with Use, because Group.Use also registers catch-all not-found routes, and
// several groups with different permissions on the same prefix would overwrite each other's.
func (s *Server) register(api *echo.Group, r apiRoute) {
	mw := r.Middleware
	if r.Auth == authTenant {
		mw = append([]echo.MiddlewareFunc{s.tenantScope(r.Perm)}, mw...)
	}
	var route *echo.Route
	if r.OwnAuth {
		route = s.echo.Add(r.Method, r.Path, r.Handler, mw...)
	} else {
		route = api.Add(r.Method, strings.TrimPrefix(r.Path, "/api/v1"), r.Handler, mw...)
	}
	if r.Auth == authNone {
		s.public(route)
	}
	if r.BodyLimit != nil {
		s.withBodyLimit(route, r.BodyLimit)
	}
}

// mount serves h for every method and every path under prefix (which must end in "/"), with
// the request path unchanged. It is how other packages' handlers (Deps.Mounts) join the
// server, for example the local blob store's signed downloads at /blobs/.
func (s *Server) mount(prefix string, h http.Handler) {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	s.echo.Any(prefix+"*", func(c echo.Context) error {
		h.ServeHTTP(sendfileResponse{c.Response()}, c.Request())
		return nil
	})
}

// sendfileResponse lets a mounted handler's io.Copy reach the connection's ReadFrom, so file
// downloads (firmware images served by the local blob store) go out through sendfile(2)
// instead of being copied through user space; echo.Response alone hides ReadFrom. Status and
// size are still recorded on the echo.Response for logs and metrics.
type sendfileResponse struct{ *echo.Response }

// ReadFrom implements io.ReaderFrom.
func (w sendfileResponse) ReadFrom(r io.Reader) (int64, error) {
	if !w.Committed {
		w.WriteHeader(http.StatusOK)
	}
	rf, ok := w.Writer.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{w.Response}, r)
	}
	n, err := rf.ReadFrom(r)
	w.Size += n
	return n, err
}

type healthResponse struct {
	Status string `json:"status"`
}

// healthz answers while the process is alive; it checks nothing else, so an orchestrator
// restarts the process only when it is truly stuck.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, healthResponse{Status: "ok"})
}

// readyz answers 200 when the server can do useful work (the store answers) and 503 in the
// usual error shape otherwise, so load balancers stop sending traffic to it.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
	defer cancel()
	if err := s.deps.Ready(ctx); err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "not_ready", Message: "not ready", Err: err}
	}
	return c.JSON(http.StatusOK, healthResponse{Status: "ok"})
}

// slogPrinter adapts the server logger to promhttp's error log.
type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) {
	p.s.log.Error("metrics handler", "error", strings.TrimSpace(fmt.Sprintln(v...)))
}

// uiRoutes registers web UI pages with the UI's headers (CSP, caching).
type uiRoutes struct{ e *echo.Echo }

// GET registers one page.
func (r uiRoutes) GET(path string, h echo.HandlerFunc) { r.e.GET(path, h, uiHeaders) }
