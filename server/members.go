package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/store"
)

// memberResponse is one member of a tenant.
type memberResponse struct {
	UserID   string     `json:"user_id"`
	Email    string     `json:"email"`
	Name     string     `json:"name"`
	Role     store.Role `json:"role" enum:"owner,admin,developer,viewer"`
	JoinedAt time.Time  `json:"joined_at"`
}

// updateMemberRequest changes a member's role.
type updateMemberRequest struct {
	Role store.Role `json:"role" enum:"owner,admin,developer,viewer"`
}

// errLastOwner protects the invariant that every tenant has an owner.
var errLastOwner = &Error{Status: http.StatusConflict, Code: "last_owner",
	Message: "the tenant's last owner cannot be removed or demoted; transfer ownership first"}

func (s *Server) memberOf(ctx context.Context, m store.Membership) (memberResponse, error) {
	u, err := s.deps.Store.User(ctx, m.UserID)
	if err != nil {
		return memberResponse{}, err
	}
	return memberResponse{UserID: m.UserID, Email: u.Email, Name: u.Name, Role: m.Role, JoinedAt: m.CreatedAt}, nil
}

// listMembers serves GET /api/v1/tenants/:tenant/members.
func (s *Server) listMembers(c echo.Context) error {
	tc := tenantFrom(c)
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	page, err := s.deps.Store.ListMemberships(ctx, tc.Tenant.ID, opts)
	if err != nil {
		return err
	}
	out := pageResponse[memberResponse]{Items: make([]memberResponse, 0, len(page.Items)), NextCursor: page.NextCursor}
	for _, m := range page.Items {
		mr, err := s.memberOf(ctx, m)
		if err != nil {
			return err
		}
		out.Items = append(out.Items, mr)
	}
	return c.JSON(http.StatusOK, out)
}

// countOwners counts the tenant's owners, up to 2 (all the last-owner check needs).
func (s *Server) countOwners(ctx context.Context, tenantID string) (int, error) {
	n := 0
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := s.deps.Store.ListMemberships(ctx, tenantID, opts)
		if err != nil {
			return 0, err
		}
		for _, m := range page.Items {
			if m.Role == store.RoleOwner {
				n++
				if n >= 2 {
					return n, nil
				}
			}
		}
		if page.NextCursor == "" {
			return n, nil
		}
		opts.Cursor = page.NextCursor
	}
}

// targetMember loads the member named by :user; a user who is not a member is 404.
func (s *Server) targetMember(c echo.Context) (store.Membership, error) {
	tc := tenantFrom(c)
	m, err := s.deps.Store.Membership(c.Request().Context(), tc.Tenant.ID, c.Param("user"))
	if errors.Is(err, store.ErrNotFound) {
		return m, &Error{Status: http.StatusNotFound, Message: "member not found"}
	}
	return m, err
}

// updateMember serves PATCH /api/v1/tenants/:tenant/members/:user. Admins manage admins,
// developers and viewers; only an owner may make someone an owner or change an owner's role,
// and the last owner cannot be demoted.
func (s *Server) updateMember(c echo.Context) error {
	tc := tenantFrom(c)
	var req updateMemberRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if !req.Role.Valid() {
		return store.Invalid("role", "must be one of owner, admin, developer, viewer")
	}
	target, err := s.targetMember(c)
	if err != nil {
		return err
	}
	if (req.Role == store.RoleOwner || target.Role == store.RoleOwner) && tc.Role != store.RoleOwner {
		return errForbidden("only an owner can grant or change the owner role")
	}
	if target.Role == req.Role {
		mr, err := s.memberOf(c.Request().Context(), target)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, mr)
	}
	ctx := c.Request().Context()
	if target.Role == store.RoleOwner {
		n, err := s.countOwners(ctx, tc.Tenant.ID)
		if err != nil {
			return err
		}
		if n < 2 {
			return errLastOwner
		}
	}
	if err := s.deps.Store.UpdateMembershipRole(ctx, tc.Tenant.ID, target.UserID, req.Role); err != nil {
		return err
	}
	if target.Role == store.RoleOwner {
		if err := s.keepAnOwner(ctx, tc.Tenant.ID, func(ctx context.Context) error {
			return s.deps.Store.UpdateMembershipRole(ctx, tc.Tenant.ID, target.UserID, store.RoleOwner)
		}); err != nil {
			return err
		}
	}
	s.audit(c, auditMemberRole, "member", target.UserID, map[string]any{"from": string(target.Role), "to": string(req.Role)})
	target.Role = req.Role
	mr, err := s.memberOf(ctx, target)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, mr)
}

// removeMember serves DELETE /api/v1/tenants/:tenant/members/:user: the member's personal
// tokens in the tenant go with them.
func (s *Server) removeMember(c echo.Context) error {
	tc := tenantFrom(c)
	target, err := s.targetMember(c)
	if err != nil {
		return err
	}
	if target.Role == store.RoleOwner && tc.Role != store.RoleOwner {
		return errForbidden("only an owner can remove an owner")
	}
	if err := s.dropMembership(c.Request().Context(), tc.Tenant.ID, target); err != nil {
		return err
	}
	s.audit(c, auditMemberRemove, "member", target.UserID, map[string]any{"role": string(target.Role)})
	return c.NoContent(http.StatusNoContent)
}

// leaveTenant serves POST /api/v1/tenants/:tenant/leave: the caller stops being a member.
func (s *Server) leaveTenant(c echo.Context) error {
	tc := tenantFrom(c)
	if tc.Principal.UserID == "" {
		return errForbidden("a tenant token is not a member and cannot leave")
	}
	m, err := s.deps.Store.Membership(c.Request().Context(), tc.Tenant.ID, tc.Principal.UserID)
	if err != nil {
		return err
	}
	if err := s.dropMembership(c.Request().Context(), tc.Tenant.ID, m); err != nil {
		return err
	}
	s.audit(c, auditMemberLeave, "member", m.UserID, map[string]any{"role": string(m.Role)})
	return c.NoContent(http.StatusNoContent)
}

// dropMembership removes a membership (refusing the last owner) and then the member's
// personal tokens in the tenant. Tokens of a former member already stop working, because
// tenantScope checks the membership on every request; deleting them keeps the token list
// honest.
func (s *Server) dropMembership(ctx context.Context, tenantID string, m store.Membership) error {
	if m.Role == store.RoleOwner {
		n, err := s.countOwners(ctx, tenantID)
		if err != nil {
			return err
		}
		if n < 2 {
			return errLastOwner
		}
	}
	if err := s.deps.Store.DeleteMembership(ctx, tenantID, m.UserID); err != nil {
		return err
	}
	if m.Role == store.RoleOwner {
		if err := s.keepAnOwner(ctx, tenantID, func(ctx context.Context) error {
			restored := m
			return s.deps.Store.CreateMembership(ctx, &restored)
		}); err != nil {
			return err
		}
	}
	return s.deleteUserTokens(ctx, tenantID, m.UserID)
}

// keepAnOwner runs after an owner was demoted or removed. The check before the change counted
// two owners, but two owners demoting each other at once both pass it (the store has no
// transaction across the count and the change); so the count is taken again, and when no
// owner is left the change is undone with undo and refused as errLastOwner. Undoing only
// adds owners back, so whatever the interleaving, the tenant keeps at least one.
func (s *Server) keepAnOwner(ctx context.Context, tenantID string, undo func(context.Context) error) error {
	n, err := s.countOwners(ctx, tenantID)
	if err != nil || n > 0 {
		return err
	}
	// Undo even when the request has been cancelled meanwhile: the tenant must keep an owner.
	if err := undo(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("restore the tenant's last owner: %w", err)
	}
	return errLastOwner
}

// deleteUserTokens removes a user's personal tokens in one tenant.
func (s *Server) deleteUserTokens(ctx context.Context, tenantID, userID string) error {
	opts := store.ListOptions{Limit: store.MaxPageSize}
	var ids []string
	for {
		page, err := s.deps.Store.ListAPITokens(ctx, tenantID, opts)
		if err != nil {
			return err
		}
		for _, t := range page.Items {
			if t.UserID == userID {
				ids = append(ids, t.ID)
			}
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	for _, id := range ids {
		if err := s.deps.Store.DeleteAPIToken(ctx, tenantID, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}
