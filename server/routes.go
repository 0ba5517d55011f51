package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/espadmin/espadmin/store"
)

// routes registers the middleware and every route of the server. Keep all routes in this
// file so the API reads top to bottom.
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
	// every route below and leaves anonymous requests to the route's own checks.
	api := e.Group("/api/v1", s.authenticate)
	s.api = api

	// --- Accounts and sessions (authn) ---
	// Public routes (s.public) also work from a browser holding a stale session cookie.
	s.public(api.GET("/setup", s.setupStatus))
	s.public(api.POST("/setup", s.setup))
	s.public(api.POST("/auth/signup", s.signup))
	s.public(api.POST("/auth/login", s.login))
	api.POST("/auth/logout", s.logout, s.requireUser)
	api.GET("/auth/me", s.me, s.requireUser)
	api.POST("/auth/password", s.changePassword, s.requireUser)
	s.public(api.POST("/auth/password/forgot", s.forgotPassword))
	s.public(api.POST("/auth/password/reset", s.resetPassword))
	s.public(api.POST("/auth/email/verify", s.verifyEmail))
	s.public(api.GET("/auth/providers", s.listProviders))
	s.public(api.GET("/auth/oauth/:provider", s.oauthBegin))
	s.public(api.GET("/auth/oauth/:provider/callback", s.oauthCallback))

	// --- Tenants (tenancy) ---
	// Tenant routes are registered with the permission they need (permissions.go) through
	// s.tenantRoute, and each is described in openapi_routes.go.
	api.GET("/openapi.json", s.serveOpenAPI(apiRouteDocs(), securityNames{Cookie: sessionCookie, CSRFHeader: csrfHeader}))
	api.GET("/tenants", s.listTenants)
	api.POST("/tenants", s.createTenant)
	api.POST("/invitations/accept", s.acceptInvitation)
	s.tenantRoute(PermTenantRead).GET("", s.getTenant)
	s.tenantRoute(PermSettingsManage).PATCH("", s.updateTenant)
	s.tenantRoute(PermTenantDelete).DELETE("", s.deleteTenant)
	s.tenantRoute(PermOwnershipTransfer).POST("/transfer-ownership", s.transferOwnership)
	s.tenantRoute(PermTenantRead).GET("/members", s.listMembers)
	s.tenantRoute(PermMembersManage).PATCH("/members/:user", s.updateMember)
	s.tenantRoute(PermMembersManage).DELETE("/members/:user", s.removeMember)
	s.tenantRoute(PermTenantRead).POST("/leave", s.leaveTenant)
	s.tenantRoute(PermMembersManage).POST("/invitations", s.createInvitation)
	s.tenantRoute(PermMembersManage).GET("/invitations", s.listInvitations)
	s.tenantRoute(PermMembersManage).DELETE("/invitations/:invitation", s.revokeInvitation)
	s.tenantRoute(PermTenantRead).GET("/tokens", s.listTokens)
	s.tenantRoute(PermTenantRead).POST("/tokens", s.createToken)
	s.tenantRoute(PermTenantRead).DELETE("/tokens/:token", s.deleteToken)
	s.tenantRoute(PermAuditRead).GET("/audit", s.listAudit)

	// --- Devices and commands ---
	// Described in devices_openapi.go; the services live in package fleet.
	s.tenantRoute(PermDevicesWrite).POST("/devices", s.createDevice)
	s.tenantRoute(PermDevicesRead).GET("/devices", s.listDevices)
	s.tenantRoute(PermDevicesRead).GET("/devices/:device", s.getDevice)
	s.tenantRoute(PermDevicesWrite).PATCH("/devices/:device", s.updateDevice)
	s.tenantRoute(PermDevicesWrite).DELETE("/devices/:device", s.deleteDevice)
	s.tenantRoute(PermDevicesWrite).POST("/devices/:device/rotate-credentials", s.rotateDevice)
	s.tenantRoute(PermDevicesWrite).POST("/devices/:device/disable", s.setDeviceDisabled(true))
	s.tenantRoute(PermDevicesWrite).POST("/devices/:device/enable", s.setDeviceDisabled(false))
	s.tenantRoute(PermDevicesWrite).GET("/devices/:device/provisioning", s.deviceProvisioning)
	s.tenantRoute(PermCommandsWrite).POST("/commands", s.sendCommand)
	s.tenantRoute(PermDevicesRead).GET("/devices/:device/commands", s.listDeviceCommands)
	s.tenantRoute(PermDevicesRead).GET("/devices/:device/commands/:command", s.getDeviceCommand)
	s.tenantRoute(PermDevicesRead).GET("/events", s.streamEvents)
	// Event streams end when shutdown begins, or Shutdown would wait for them until its deadline.
	s.http.RegisterOnShutdown(s.closeEventStreams)

	// --- Live logs and device errors ---
	// Described in logs_openapi.go; the services live in packages logrelay and devicerrors.
	// The log stream is a WebSocket (logs.go); the error routes read the store directly, so
	// any replica answers them.
	s.tenantRoute(PermDevicesRead).GET("/devices/:device/logs/stream", s.streamLogs)
	s.http.RegisterOnShutdown(s.closeLogStreams)
	s.tenantRoute(PermDevicesRead).GET("/errors", s.listErrorGroups)
	s.tenantRoute(PermDevicesRead).GET("/errors/:group", s.getErrorGroup)
	s.tenantRoute(PermDevicesWrite).POST("/errors/:group/resolve", s.setErrorGroupResolved(true))
	s.tenantRoute(PermDevicesWrite).POST("/errors/:group/reopen", s.setErrorGroupResolved(false))
	s.tenantRoute(PermDevicesRead).GET("/devices/:device/errors", s.listDeviceErrorGroups)
	s.tenantRoute(PermSettingsManage).GET("/settings/bugsnag", s.getBugsnagSettings)
	s.tenantRoute(PermSettingsManage).PUT("/settings/bugsnag", s.putBugsnagSettings)

	// --- Tenant broker and device auth ---
	// Described in broker_settings_openapi.go. A tenant's own MQTT broker (package
	// tenantbus runs the bridges), and the endpoints external brokers call to check device
	// credentials and topics; those sit outside the API group's authentication (they carry
	// the shared secret mqtt.auth_secret, possibly as HTTP basic auth) and are public.
	s.tenantRoute(PermSettingsManage).GET("/settings/broker", s.getBrokerSettings)
	s.tenantRoute(PermSettingsManage).PUT("/settings/broker", s.putBrokerSettings)
	s.tenantRoute(PermSettingsManage).POST("/settings/broker/test", s.testBrokerSettings)
	s.tenantRoute(PermSettingsManage).GET("/settings/broker/state", s.brokerState)
	s.public(e.POST("/api/v1/mqtt/auth", s.emqxAuth, s.deviceAuthGuard))
	s.public(e.POST("/api/v1/mqtt/user", s.goAuthUser, s.deviceAuthGuard))
	s.public(e.POST("/api/v1/mqtt/superuser", s.goAuthSuperuser, s.deviceAuthGuard))
	s.public(e.POST("/api/v1/mqtt/acl", s.goAuthACL, s.deviceAuthGuard))

	// --- Remote configuration ---
	// Described in config_openapi.go; the service lives in package devconfig. Entries of a
	// project ("project variables") and of a device ("custom properties"); the static
	// segments effective, versions and rollback take precedence over :key.
	s.tenantRoute(PermDevicesRead).GET("/projects/:project/config", s.listConfig(store.ScopeProject))
	s.tenantRoute(PermConfigWrite).PUT("/projects/:project/config", s.putConfigBatch(store.ScopeProject))
	s.tenantRoute(PermDevicesRead).GET("/projects/:project/config/:key", s.getConfigEntry(store.ScopeProject))
	s.tenantRoute(PermConfigWrite).PUT("/projects/:project/config/:key", s.putConfigEntry(store.ScopeProject))
	s.tenantRoute(PermConfigWrite).DELETE("/projects/:project/config/:key", s.deleteConfigEntry(store.ScopeProject))
	s.tenantRoute(PermDevicesRead).GET("/devices/:device/config", s.listConfig(store.ScopeDevice))
	s.tenantRoute(PermConfigWrite).PUT("/devices/:device/config", s.putConfigBatch(store.ScopeDevice))
	s.tenantRoute(PermDevicesRead).GET("/devices/:device/config/effective", s.effectiveConfig)
	s.tenantRoute(PermDevicesRead).GET("/devices/:device/config/versions", s.configVersions)
	s.tenantRoute(PermConfigWrite).POST("/devices/:device/config/rollback", s.rollbackConfig)
	s.tenantRoute(PermDevicesRead).GET("/devices/:device/config/:key", s.getConfigEntry(store.ScopeDevice))
	s.tenantRoute(PermConfigWrite).PUT("/devices/:device/config/:key", s.putConfigEntry(store.ScopeDevice))
	s.tenantRoute(PermConfigWrite).DELETE("/devices/:device/config/:key", s.deleteConfigEntry(store.ScopeDevice))
	s.tenantRoute(PermConfigWrite).POST("/config/push", s.pushConfig)

	// --- Projects, releases and rollouts ---
	// Described in release_openapi.go; the service lives in package ota (docs/ota.md).
	s.tenantRoute(PermDevicesRead).GET("/projects", s.listProjects)
	s.tenantRoute(PermReleasesWrite).POST("/projects", s.createProject)
	s.tenantRoute(PermDevicesRead).GET("/projects/:project", s.getProject)
	s.tenantRoute(PermReleasesWrite).PATCH("/projects/:project", s.updateProject)
	s.tenantRoute(PermReleasesWrite).DELETE("/projects/:project", s.deleteProject)
	s.tenantRoute(PermDevicesRead).GET("/projects/:project/releases", s.listReleases)
	s.withBodyLimit(s.tenantRoute(PermReleasesWrite).POST("/projects/:project/releases", s.createRelease), s.releaseBodyLimit)
	s.tenantRoute(PermDevicesRead).GET("/projects/:project/releases/:release", s.getRelease)
	s.tenantRoute(PermReleasesWrite).PATCH("/projects/:project/releases/:release", s.updateRelease)
	s.tenantRoute(PermReleasesWrite).DELETE("/projects/:project/releases/:release", s.deleteRelease)
	s.tenantRoute(PermDevicesRead).GET("/projects/:project/releases/:release/download", s.releaseDownload)
	s.public(api.GET("/public/tenants/:tenant/releases/:release/firmware.bin", s.publicRelease))
	s.tenantRoute(PermDevicesRead).GET("/rollouts", s.listRollouts)
	s.tenantRoute(PermReleasesWrite).POST("/rollouts", s.createRollout)
	s.tenantRoute(PermDevicesRead).GET("/rollouts/:rollout", s.getRollout)
	s.tenantRoute(PermDevicesRead).GET("/rollouts/:rollout/devices", s.listRolloutDevices)
	s.tenantRoute(PermReleasesWrite).POST("/rollouts/:rollout/pause", s.rolloutAction("pause"))
	s.tenantRoute(PermReleasesWrite).POST("/rollouts/:rollout/resume", s.rolloutAction("resume"))
	s.tenantRoute(PermReleasesWrite).POST("/rollouts/:rollout/abort", s.rolloutAction("abort"))
	s.tenantRoute(PermDevicesRead).GET("/devices/:device/updates", s.deviceUpdates)

	// --- Web UI ---
	// Server-rendered pages (package ui, server/ui.go); their scripts read the API above.
	// Static files live under a content hash and are cached for a year.
	s.ui = mustUI()
	e.GET("/static/*", echo.WrapHandler(s.ui.StaticHandler("/static/")))
	e.HEAD("/static/*", echo.WrapHandler(s.ui.StaticHandler("/static/")))
	// uiHeaders is applied per route, not through an Echo group: a group with middleware
	// registers catch-all routes, which would answer every unknown path and every wrong
	// method with the UI's 404 instead of the API's 404 and 405.
	pages := uiRoutes{e}
	pages.GET("/", s.uiHome)
	pages.GET("/setup", s.uiSetup)
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
	pages.GET("/t/:tenant/settings", s.tenantPage("settings", PermSettingsManage, s.uiSettings))
	pages.GET("/t/:tenant/settings/members", s.tenantPage("members", PermTenantRead, s.uiMembers))
	pages.GET("/t/:tenant/settings/tokens", s.tenantPage("tokens", PermTenantRead, s.uiTokens))
	pages.GET("/t/:tenant/settings/audit", s.tenantPage("audit", PermAuditRead, s.uiAudit))
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
