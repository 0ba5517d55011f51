package server

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/ui"
)

// The web UI's pages (package ui). A page handler decides only who may see the page and
// what the caller's role allows; the page's scripts read the data from the JSON API with the
// session cookie and the CSRF token the page carries. Routes are registered in routes.go.

// mustUI parses the embedded templates. They are compiled into the binary, so a template
// that does not parse is a programming error: the server refuses to start (and the ui tests
// fail) rather than failing at the first visit.
func mustUI() *ui.UI {
	u, err := ui.New()
	if err != nil {
		panic(err)
	}
	return u
}

// uiHeaders sets the security headers of every page.
func uiHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		setPageHeaders(c.Response().Header())
		return next(c)
	}
}

func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ui.ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}

// uiCaller is the signed-in user of a page request.
type uiCaller struct {
	csrf    string
	user    ui.User
	tenants []ui.Tenant
}

// caller resolves the session cookie; nil means anonymous (no cookie, or a stale one).
func (s *Server) uiCallerOf(c echo.Context) (*uiCaller, error) {
	if s.accounts == nil {
		return nil, nil
	}
	ck, err := c.Request().Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, nil
	}
	ctx := c.Request().Context()
	sess, err := s.accounts.Session(ctx, ck.Value)
	if errors.Is(err, account.ErrUnauthenticated) {
		s.clearSessionCookie(c)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	u, err := s.deps.Store.User(ctx, sess.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	me, err := s.meFor(ctx, u, "session")
	if err != nil {
		return nil, err
	}
	out := &uiCaller{csrf: sess.CSRFToken, user: ui.User{ID: u.ID, Email: u.Email, Name: u.Name}}
	for _, m := range me.Memberships {
		out.tenants = append(out.tenants, ui.Tenant{Slug: m.TenantSlug, Name: m.TenantName, Role: m.Role})
	}
	return out, nil
}

func (k *uiCaller) base(title string) ui.Base {
	return ui.Base{Title: title, CSRF: k.csrf, User: &k.user, Tenants: k.tenants}
}

// anonymousBase is the base of the pages without a user.
func anonymousBase(title string) ui.Base { return ui.Base{Title: title} }

func (s *Server) render(c echo.Context, status int, page string, v ui.View) error {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	return s.ui.Render(c.Response(), page, v)
}

// localPath keeps a "next" parameter on this site: a path, never another origin.
func localPath(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return ""
	}
	return next
}

// toLogin sends an anonymous visitor to the login page, or to setup while the install has no
// user yet.
func (s *Server) toLogin(c echo.Context) error {
	if s.accounts != nil {
		needed, err := s.accounts.SetupNeeded(c.Request().Context())
		if err != nil {
			return err
		}
		if needed {
			return c.Redirect(http.StatusSeeOther, "/setup")
		}
	}
	next := c.Request().URL.RequestURI()
	if next == "/" {
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(next))
}

// userPage wraps a page that needs a signed-in user.
func (s *Server) userPage(h func(echo.Context, *uiCaller) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		k, err := s.uiCallerOf(c)
		if err != nil {
			return err
		}
		if k == nil {
			return s.toLogin(c)
		}
		return h(c, k)
	}
}

// tenantPage wraps a page of /t/:tenant/: the caller must be a member (else 404, as the API
// answers), and perm, when not empty, must be allowed to their role (else 403).
func (s *Server) tenantPage(section string, perm Permission, h func(echo.Context, ui.Base) error) echo.HandlerFunc {
	return s.userPage(func(c echo.Context, k *uiCaller) error {
		slug := c.Param("tenant")
		var tn *ui.Tenant
		for i := range k.tenants {
			if k.tenants[i].Slug == slug {
				tn = &k.tenants[i]
			}
		}
		b := k.base("")
		if tn == nil {
			b.Title = "Not found"
			return s.render(c, http.StatusNotFound, "error", &ui.ErrorView{Base: b, Status: http.StatusNotFound,
				Message: "There is no such tenant, or you are not a member of it."})
		}
		b.Tenant, b.Section = tn, section
		b.Perms = map[string]bool{}
		for _, p := range permissions {
			if roleAllows(store.Role(tn.Role), p.Perm) {
				b.Perms[string(p.Perm)] = true
			}
		}
		if b.Perms[string(PermDevicesWrite)] {
			b.Notices = s.endpointNotices(c, slug)
		}
		if perm != "" && !b.Perms[string(perm)] {
			b.Title = "Not allowed"
			return s.render(c, http.StatusForbidden, "error", &ui.ErrorView{Base: b, Status: http.StatusForbidden,
				Message: "Your role in this tenant (" + tn.Role + ") does not allow this page."})
		}
		return h(c, b)
	})
}

// endpointNotices warns those who create devices when the bundles they would download
// point devices at this machine only (the default public URL is http://localhost:8080).
func (s *Server) endpointNotices(c echo.Context, slug string) []string {
	if s.deps.Devices == nil {
		return nil
	}
	tn, err := s.deps.Store.TenantBySlug(c.Request().Context(), slug)
	if err != nil {
		return nil
	}
	return s.deps.Devices.EndpointFor(tn.ID).LoopbackWarnings()
}

func (s *Server) uiHome(c echo.Context) error {
	return s.userPage(func(c echo.Context, k *uiCaller) error {
		if len(k.tenants) == 0 {
			return c.Redirect(http.StatusSeeOther, "/tenants")
		}
		return c.Redirect(http.StatusSeeOther, "/t/"+url.PathEscape(k.tenants[0].Slug)+"/")
	})(c)
}

func (s *Server) uiSetup(c echo.Context) error {
	if s.accounts != nil {
		needed, err := s.accounts.SetupNeeded(c.Request().Context())
		if err != nil {
			return err
		}
		if !needed {
			return c.Redirect(http.StatusSeeOther, "/login")
		}
	}
	return s.render(c, http.StatusOK, "setup", &ui.SetupView{Base: anonymousBase("Set up"), Token: c.QueryParam("token")})
}

func (s *Server) uiLogin(c echo.Context) error {
	next := localPath(c.QueryParam("next"))
	k, err := s.uiCallerOf(c)
	if err != nil {
		return err
	}
	if k != nil {
		if next == "" {
			next = "/"
		}
		return c.Redirect(http.StatusSeeOther, next)
	}
	if s.accounts != nil {
		if needed, err := s.accounts.SetupNeeded(c.Request().Context()); err != nil {
			return err
		} else if needed {
			return c.Redirect(http.StatusSeeOther, "/setup")
		}
	}
	if next == "" {
		next = "/"
	}
	return s.render(c, http.StatusOK, "login", &ui.LoginView{Base: anonymousBase("Sign in"), Next: next,
		SignupOpen: s.accounts != nil && s.accounts.SignupOpen()})
}

func (s *Server) uiSignup(c echo.Context) error {
	next := localPath(c.QueryParam("next"))
	if s.accounts == nil || !s.accounts.SignupOpen() {
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	if next == "" {
		next = "/"
	}
	return s.render(c, http.StatusOK, "signup", &ui.SignupView{Base: anonymousBase("Create an account"), Next: next})
}

func (s *Server) uiForgot(c echo.Context) error {
	return s.render(c, http.StatusOK, "forgot", &ui.ForgotView{Base: anonymousBase("Forgot password")})
}

func (s *Server) uiReset(c echo.Context) error {
	return s.render(c, http.StatusOK, "reset", &ui.ResetView{Base: anonymousBase("Reset password"), Token: c.QueryParam("token")})
}

func (s *Server) uiVerify(c echo.Context) error {
	return s.render(c, http.StatusOK, "verify", &ui.VerifyView{Base: anonymousBase("Confirm email"), Token: c.QueryParam("token")})
}

func (s *Server) uiInvitation(c echo.Context) error {
	return s.userPage(func(c echo.Context, k *uiCaller) error {
		return s.render(c, http.StatusOK, "invitation", &ui.InvitationView{Base: k.base("Invitation"), Token: c.QueryParam("token")})
	})(c)
}

func (s *Server) uiTenants(c echo.Context) error {
	return s.userPage(func(c echo.Context, k *uiCaller) error {
		return s.render(c, http.StatusOK, "tenants", &ui.TenantsView{Base: k.base("Tenants")})
	})(c)
}

func (s *Server) uiAccount(c echo.Context) error {
	return s.userPage(func(c echo.Context, k *uiCaller) error {
		return s.render(c, http.StatusOK, "account", &ui.AccountView{Base: k.base("Your account")})
	})(c)
}

func (s *Server) uiTenantRedirect(c echo.Context) error {
	return c.Redirect(http.StatusMovedPermanently, "/t/"+url.PathEscape(c.Param("tenant"))+"/")
}

func (s *Server) uiDashboard(c echo.Context, b ui.Base) error {
	b.Title = b.Tenant.Name
	return s.render(c, http.StatusOK, "dashboard", &ui.DashboardView{Base: b})
}

func (s *Server) uiDevices(c echo.Context, b ui.Base) error {
	b.Title = "Devices"
	return s.render(c, http.StatusOK, "devices", &ui.DevicesView{Base: b})
}

func (s *Server) uiDevice(c echo.Context, b ui.Base) error {
	id := c.Param("device")
	if !protocol.ValidDeviceID(id) {
		b.Title = "Not found"
		return s.render(c, http.StatusNotFound, "error", &ui.ErrorView{Base: b, Status: http.StatusNotFound, Message: "There is no such device."})
	}
	b.Title = "Device " + id
	return s.render(c, http.StatusOK, "device", &ui.DeviceView{Base: b, DeviceID: id})
}

func (s *Server) uiMembers(c echo.Context, b ui.Base) error {
	b.Title = "Members"
	return s.render(c, http.StatusOK, "members", &ui.MembersView{Base: b})
}

func (s *Server) uiTokens(c echo.Context, b ui.Base) error {
	b.Title = "API tokens"
	return s.render(c, http.StatusOK, "tokens", &ui.TokensView{Base: b})
}

func (s *Server) uiAudit(c echo.Context, b ui.Base) error {
	b.Title = "Audit log"
	return s.render(c, http.StatusOK, "audit", &ui.AuditView{Base: b})
}

func (s *Server) uiAlerts(c echo.Context, b ui.Base) error {
	b.Title = "Alerts"
	return s.render(c, http.StatusOK, "alerts", &ui.AlertsView{Base: b})
}

func (s *Server) uiProjects(c echo.Context, b ui.Base) error {
	b.Title = "Projects"
	return s.render(c, http.StatusOK, "projects", &ui.ProjectsView{Base: b})
}

func (s *Server) uiProject(c echo.Context, b ui.Base) error {
	id := c.Param("project")
	if id == "" || len(id) > 64 || strings.ContainsAny(id, "/?#") {
		b.Title = "Not found"
		return s.render(c, http.StatusNotFound, "error", &ui.ErrorView{Base: b, Status: http.StatusNotFound, Message: "There is no such project."})
	}
	b.Title = "Project"
	return s.render(c, http.StatusOK, "project", &ui.ProjectView{Base: b, ProjectID: id})
}

func (s *Server) uiErrors(c echo.Context, b ui.Base) error {
	b.Title = "Errors"
	return s.render(c, http.StatusOK, "errors", &ui.ErrorsView{Base: b})
}

func (s *Server) uiErrorGroup(c echo.Context, b ui.Base) error {
	id := c.Param("group")
	if id == "" || len(id) > 64 || strings.ContainsAny(id, "/?#") {
		b.Title = "Not found"
		return s.render(c, http.StatusNotFound, "error", &ui.ErrorView{Base: b, Status: http.StatusNotFound, Message: "There is no such error group."})
	}
	b.Title = "Error group"
	return s.render(c, http.StatusOK, "errorgroup", &ui.ErrorGroupView{Base: b, GroupID: id})
}

func (s *Server) uiSettings(c echo.Context, b ui.Base) error {
	b.Title = "Settings"
	return s.render(c, http.StatusOK, "settings", &ui.SettingsView{Base: b})
}
