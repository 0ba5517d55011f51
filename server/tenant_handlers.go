package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/store"
)

// maxTenantName bounds a tenant's display name.
const maxTenantName = 100

// tenantResponse is a tenant as its members see it, with the caller's role in it.
type tenantResponse struct {
	ID        string     `json:"id"`
	Slug      string     `json:"slug" doc:"URL name used in /api/v1/tenants/{tenant}/..."`
	Name      string     `json:"name"`
	Role      store.Role `json:"role" enum:"owner,admin,developer,viewer" doc:"the caller's role in this tenant"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

func tenantOf(t store.Tenant, role store.Role) tenantResponse {
	return tenantResponse{ID: t.ID, Slug: t.Slug, Name: t.Name, Role: role, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

// createTenantRequest creates a tenant whose owner is the caller.
type createTenantRequest struct {
	Slug string `json:"slug" doc:"1-63 lower-case letters, digits and inner dashes; unique"`
	Name string `json:"name" doc:"display name, at most 100 characters"`
}

// updateTenantRequest changes a tenant; absent fields keep their value.
type updateTenantRequest struct {
	Slug *string `json:"slug,omitempty"`
	Name *string `json:"name,omitempty"`
}

// deleteTenantRequest confirms a deletion by repeating the slug, so a script with the wrong
// URL or a mistaken click cannot delete a tenant.
type deleteTenantRequest struct {
	Confirm string `json:"confirm" doc:"the tenant's slug"`
}

// transferOwnershipRequest names the member who becomes an owner in the caller's place.
type transferOwnershipRequest struct {
	UserID string `json:"user_id"`
}

// checkTenantName validates a display name: not blank, bounded, no control characters.
func checkTenantName(name string) string {
	switch {
	case strings.TrimSpace(name) == "":
		return "must not be empty"
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxTenantName:
		return fmt.Sprintf("must be at most %d characters", maxTenantName)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "must not contain control characters"
	}
	return ""
}

// requireSession refuses API tokens on user-level routes outside a tenant (creating a
// tenant, accepting an invitation): a token belongs to one tenant and must not reach beyond
// it.
func requireSessionPrincipal(c echo.Context) (Principal, error) {
	p, ok := principalFrom(c)
	if !ok || p.UserID == "" {
		return Principal{}, &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "authentication required"}
	}
	if p.TokenID != "" {
		return Principal{}, errForbidden("API tokens belong to one tenant; sign in to do this")
	}
	return p, nil
}

// listTenants serves GET /api/v1/tenants: the caller's tenants with their role in each. A
// token sees only its own tenant. The list is small (a user belongs to few tenants), so it
// is one page.
func (s *Server) listTenants(c echo.Context) error {
	p, ok := principalFrom(c)
	if !ok {
		return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "authentication required"}
	}
	ctx := c.Request().Context()
	items := []tenantResponse{}
	if p.UserID == "" || p.TokenID != "" {
		t, err := s.deps.Store.Tenant(ctx, p.TokenTenantID)
		if err != nil {
			return err
		}
		role := store.Role(tenantTokenRole)
		if p.UserID != "" {
			m, err := s.deps.Store.Membership(ctx, t.ID, p.UserID)
			if errors.Is(err, store.ErrNotFound) {
				return c.JSON(http.StatusOK, pageResponse[tenantResponse]{Items: items})
			}
			if err != nil {
				return err
			}
			role = m.Role
		}
		items = append(items, tenantOf(t, role))
		return c.JSON(http.StatusOK, pageResponse[tenantResponse]{Items: items})
	}
	ms, err := s.deps.Store.UserMemberships(ctx, p.UserID)
	if err != nil {
		return err
	}
	for _, m := range ms {
		t, err := s.deps.Store.Tenant(ctx, m.TenantID)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		items = append(items, tenantOf(t, m.Role))
	}
	return c.JSON(http.StatusOK, pageResponse[tenantResponse]{Items: items})
}

// createTenant serves POST /api/v1/tenants. The caller becomes its owner. Tenant and
// membership are two writes; when the second fails the first is undone, so a failed
// request leaves no tenant without an owner.
func (s *Server) createTenant(c echo.Context) error {
	p, err := requireSessionPrincipal(c)
	if err != nil {
		return err
	}
	var req createTenantRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	fields := map[string]string{}
	if err := account.CheckSlug(req.Slug); err != nil {
		fields["slug"] = err.Error()
	}
	if msg := checkTenantName(req.Name); msg != "" {
		fields["name"] = msg
	}
	if len(fields) > 0 {
		return &store.InvalidError{Fields: fields}
	}
	ctx := c.Request().Context()
	t := store.Tenant{Slug: req.Slug, Name: strings.TrimSpace(req.Name)}
	if err := s.deps.Store.CreateTenant(ctx, &t); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Invalid("slug", "is already taken")
		}
		return err
	}
	m := store.Membership{TenantID: t.ID, UserID: p.UserID, Role: store.RoleOwner}
	if err := s.deps.Store.CreateMembership(ctx, &m); err != nil {
		s.undo(ctx, "delete tenant", func(ctx context.Context) error { return s.deps.Store.DeleteTenant(ctx, t.ID) })
		return err
	}
	s.auditIn(c, t.ID, p, auditTenantCreate, "tenant", t.ID, map[string]any{"slug": t.Slug, "name": t.Name})
	return c.JSON(http.StatusCreated, tenantOf(t, store.RoleOwner))
}

// undo runs a compensating write after a failed multi-step change, on a context that
// outlives the request; failing it is logged because the data is now inconsistent.
func (s *Server) undo(ctx context.Context, what string, f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := f(ctx); err != nil {
		s.log.Error("compensating write failed", "action", what, "error", err)
	}
}

// getTenant serves GET /api/v1/tenants/:tenant.
func (s *Server) getTenant(c echo.Context) error {
	tc := tenantFrom(c)
	return c.JSON(http.StatusOK, tenantOf(tc.Tenant, tc.Role))
}

// updateTenant serves PATCH /api/v1/tenants/:tenant. Renaming the slug changes every URL of
// the tenant; old URLs answer 404.
func (s *Server) updateTenant(c echo.Context) error {
	tc := tenantFrom(c)
	var req updateTenantRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	fields := map[string]string{}
	t := tc.Tenant
	changes := map[string]any{}
	if req.Slug != nil {
		if err := account.CheckSlug(*req.Slug); err != nil {
			fields["slug"] = err.Error()
		} else if *req.Slug != t.Slug {
			changes["slug"] = map[string]any{"from": t.Slug, "to": *req.Slug}
			t.Slug = *req.Slug
		}
	}
	if req.Name != nil {
		if msg := checkTenantName(*req.Name); msg != "" {
			fields["name"] = msg
		} else if n := strings.TrimSpace(*req.Name); n != t.Name {
			changes["name"] = map[string]any{"from": t.Name, "to": n}
			t.Name = n
		}
	}
	if len(fields) > 0 {
		return &store.InvalidError{Fields: fields}
	}
	if len(changes) == 0 {
		return c.JSON(http.StatusOK, tenantOf(t, tc.Role))
	}
	if err := s.deps.Store.UpdateTenant(c.Request().Context(), &t); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Invalid("slug", "is already taken")
		}
		return err
	}
	s.audit(c, auditTenantUpdate, "tenant", t.ID, changes)
	return c.JSON(http.StatusOK, tenantOf(t, tc.Role))
}

// deleteTenant serves DELETE /api/v1/tenants/:tenant (owners only). The tenant's audit log
// goes with it, so the deletion itself is written to the server log.
func (s *Server) deleteTenant(c echo.Context) error {
	tc := tenantFrom(c)
	var req deleteTenantRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Confirm != tc.Tenant.Slug {
		return store.Invalid("confirm", "must equal the tenant's slug")
	}
	ctx := c.Request().Context()
	// What lives outside the store rows is listed first: the rows are gone afterwards.
	var (
		deviceIDs []string
		blobKeys  []string
		err       error
	)
	if s.deps.Devices != nil {
		if deviceIDs, err = s.deps.Devices.DeviceIDs(ctx, tc.Tenant.ID); err != nil {
			return err
		}
	}
	if s.deps.OTA != nil {
		if blobKeys, err = s.deps.OTA.TenantBlobKeys(ctx, tc.Tenant.ID); err != nil {
			return err
		}
		// Core dumps share the firmware storage.
		coreKeys, err := s.coreDumpKeys(ctx, tc.Tenant.ID)
		if err != nil {
			return err
		}
		blobKeys = append(blobKeys, coreKeys...)
	}
	if err := s.deps.Store.DeleteTenant(ctx, tc.Tenant.ID); err != nil {
		return err
	}
	// At once, as for one deleted device: no cached credentials, no open connection, and no
	// firmware left to download through a URL signed earlier.
	if s.deps.Devices != nil {
		s.deps.Devices.TenantDeleted(tc.Tenant.ID, deviceIDs)
	}
	if s.deps.OTA != nil {
		s.deps.OTA.DeleteBlobs(context.WithoutCancel(ctx), tc.Tenant.ID, blobKeys)
	}
	s.log.Info("tenant deleted", "tenant_id", tc.Tenant.ID, "slug", tc.Tenant.Slug,
		"actor_user_id", tc.Principal.UserID, "actor_token_id", tc.Principal.TokenID, "remote_addr", c.RealIP())
	return c.NoContent(http.StatusNoContent)
}

// transferOwnership serves POST /api/v1/tenants/:tenant/transfer-ownership: the named member
// becomes an owner and the caller an admin. The new owner is promoted first, so the tenant
// never has no owner, even if the second write fails.
func (s *Server) transferOwnership(c echo.Context) error {
	tc := tenantFrom(c)
	var req transferOwnershipRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.UserID == "" {
		return store.Invalid("user_id", "must not be empty")
	}
	if req.UserID == tc.Principal.UserID {
		return store.Invalid("user_id", "is you; name another member")
	}
	ctx := c.Request().Context()
	target, err := s.deps.Store.Membership(ctx, tc.Tenant.ID, req.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Message: "member not found"}
	}
	if err != nil {
		return err
	}
	if target.Role != store.RoleOwner {
		if err := s.deps.Store.UpdateMembershipRole(ctx, tc.Tenant.ID, target.UserID, store.RoleOwner); err != nil {
			return err
		}
	}
	if err := s.deps.Store.UpdateMembershipRole(ctx, tc.Tenant.ID, tc.Principal.UserID, store.RoleAdmin); err != nil {
		return err
	}
	s.audit(c, auditOwnershipTransfer, "member", target.UserID, map[string]any{
		"new_owner": target.UserID, "previous_owner": tc.Principal.UserID, "previous_owner_role": string(store.RoleAdmin)})
	return c.JSON(http.StatusOK, tenantOf(tc.Tenant, store.RoleAdmin))
}
