package server

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/store"
)

// tenantContext is what tenantScope establishes for a tenant route: the tenant named by the
// path, the caller's role in it and who the caller is. Handlers take the tenant ID from here,
// never from the request body or another path segment.
type tenantContext struct {
	Tenant    store.Tenant
	Role      store.Role
	Principal Principal
}

const tenantContextKey = "espadmin.tenant"

// tenantFrom returns the tenant context of a route registered with tenantScope. It panics on
// a route without it: that is a wiring bug, and the recover middleware turns it into a 500
// rather than letting a handler run unscoped.
func tenantFrom(c echo.Context) tenantContext {
	tc, ok := c.Get(tenantContextKey).(tenantContext)
	if !ok {
		panic("server: tenantFrom on a route without tenantScope: " + c.Path())
	}
	return tc
}

// errTenantNotFound is the answer for a tenant that does not exist AND for one the caller does
// not belong to, so the existence of tenants (and of their resources) cannot be probed.
var errTenantNotFound = &Error{Status: http.StatusNotFound, Code: "not_found", Message: "tenant not found"}

// errForbidden is returned when the caller belongs to the tenant but their role or token
// scopes do not allow the route.
func errForbidden(msg string) error {
	return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: msg}
}

// tenantScope guards a route under /api/v1/tenants/:tenant/. In order: an anonymous caller
// gets 401; the slug is resolved; a caller who is not a member (or a token of another tenant)
// gets 404, exactly like a tenant that does not exist; a role without perm gets 403; a token
// without the scope perm needs gets 403. A personal token is limited by both its scopes and
// its user's current role, so demoting a member also narrows their tokens at once.
func (s *Server) tenantScope(perm Permission) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p, ok := principalFrom(c)
			if !ok {
				return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "authentication required"}
			}
			ctx := c.Request().Context()
			tenant, err := s.deps.Store.TenantBySlug(ctx, c.Param("tenant"))
			if errors.Is(err, store.ErrNotFound) {
				return errTenantNotFound
			}
			if err != nil {
				return err
			}
			var role store.Role
			if p.TokenID != "" && p.TokenTenantID != tenant.ID {
				return errTenantNotFound
			}
			if p.UserID != "" {
				m, err := s.deps.Store.Membership(ctx, tenant.ID, p.UserID)
				if errors.Is(err, store.ErrNotFound) {
					return errTenantNotFound
				}
				if err != nil {
					return err
				}
				role = m.Role
			} else if p.TokenID != "" {
				role = tenantTokenRole
			} else {
				return errTenantNotFound
			}
			if !roleAllows(role, perm) {
				return errForbidden("your role in this tenant does not allow this (" + string(perm) + ")")
			}
			if p.TokenID != "" && !scopesAllow(p.Scopes, perm) {
				return errForbidden("this API token lacks the scope " + requiredScope(perm))
			}
			c.Set(tenantContextKey, tenantContext{Tenant: tenant, Role: role, Principal: p})
			return next(c)
		}
	}
}
