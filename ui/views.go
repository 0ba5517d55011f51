package ui

import (
	"sort"
	"strings"
)

// View is what a page is rendered from: a struct embedding Base.
type View interface{ base() *Base }

// User is the signed-in person.
type User struct {
	ID    string
	Email string
	Name  string
}

// Tenant is a tenant the user belongs to, with the user's role in it.
type Tenant struct {
	Slug string
	Name string
	Role string
}

// Base is what every page has: the title, the caller and what their role allows.
type Base struct {
	Title string
	// Page is the template's name, set by Render (used for the page's script and body class).
	Page string
	// CSRF is the session's CSRF token, sent back by the page's scripts in X-CSRF-Token.
	CSRF string
	// User is nil on the anonymous pages (login, setup, sign-up, password reset).
	User *User
	// Tenant is the current tenant on /t/{tenant}/ pages.
	Tenant *Tenant
	// Tenants lists every tenant of the user, for the switcher.
	Tenants []Tenant
	// Perms holds the permissions (docs/roles.md) the caller has in Tenant.
	Perms map[string]bool
	// Section names the active navigation entry.
	Section string
	// Notices are warnings about the installation shown on every page of the tenant to
	// those who can act on them (provisioning bundles that point devices at localhost).
	Notices []string
}

func (b *Base) base() *Base { return b }

// Can reports whether the caller holds perm in the current tenant.
func (b *Base) Can(perm string) bool { return b != nil && b.Perms[perm] }

// PermList is the space-separated permissions, for the page's scripts.
func (b *Base) PermList() string {
	var out []string
	for p, ok := range b.Perms {
		if ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TenantPath is the URL of a page of the current tenant, e.g. TenantPath "devices".
func (b *Base) TenantPath(rest string) string {
	if b.Tenant == nil {
		return "/tenants"
	}
	return "/t/" + b.Tenant.Slug + "/" + rest
}

// SetupView is the first-run setup page (/setup?token=…).
type SetupView struct {
	Base
	Token string
}

// LoginView is the login page.
type LoginView struct {
	Base
	Next       string
	SignupOpen bool
}

// SignupView is the sign-up page, shown when sign-up is open.
type SignupView struct {
	Base
	Next string
}

// ForgotView asks for a password-reset link.
type ForgotView struct{ Base }

// ResetView sets a new password from a reset link.
type ResetView struct {
	Base
	Token string
}

// VerifyView confirms an email address from a verification link.
type VerifyView struct {
	Base
	Token string
}

// InvitationView accepts an invitation link.
type InvitationView struct {
	Base
	Token string
}

// TenantsView is the tenant switcher, where a new tenant is created too.
type TenantsView struct{ Base }

// AccountView is the signed-in user's own account (password change, sign out).
type AccountView struct{ Base }

// DashboardView is a tenant's overview.
type DashboardView struct{ Base }

// DevicesView lists a tenant's devices.
type DevicesView struct{ Base }

// DeviceView shows one device.
type DeviceView struct {
	Base
	DeviceID string
}

// ProjectsView lists a tenant's projects.
type ProjectsView struct{ Base }

// ProjectView shows one project: releases (with upload) and rollouts.
type ProjectView struct {
	Base
	ProjectID string
}

// MembersView lists members and invitations.
type MembersView struct{ Base }

// TokensView lists API tokens.
type TokensView struct{ Base }

// AlertsView shows the alert history, this browser's push subscription and, for
// administrators, alert rules, channels and the delivery log.
type AlertsView struct{ Base }

// AuditView shows the audit log.
type AuditView struct{ Base }

// ErrorsView lists the tenant's device error groups.
type ErrorsView struct{ Base }

// ErrorGroupView shows one error group: the devices it occurred on and its recent reports.
type ErrorGroupView struct {
	Base
	GroupID string
}

// SettingsView is the tenant's settings: its name and where device errors are forwarded.
type SettingsView struct{ Base }

// ErrorView is a page-level error (404 of a tenant or device the caller cannot see).
type ErrorView struct {
	Base
	Status  int
	Message string
}
