package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/server/mail"
	"github.com/espadmin/espadmin/store"
)

// invitationTTL is how long an invitation link stays valid.
const invitationTTL = 7 * 24 * time.Hour

// invitationAcceptPath is the web page an invitation link opens; the page posts the token to
// POST /api/v1/invitations/accept once the invitee is signed in.
const invitationAcceptPath = "/invitations/accept"

// Invitation states on the wire.
const (
	invitationPending  = "pending"
	invitationAccepted = "accepted"
	invitationExpired  = "expired"
)

// createInvitationRequest invites an email address with a role.
type createInvitationRequest struct {
	Email string     `json:"email"`
	Role  store.Role `json:"role" enum:"owner,admin,developer,viewer"`
}

// invitationResponse is an invitation without its secret.
type invitationResponse struct {
	ID         string     `json:"id"`
	Email      string     `json:"email"`
	Role       store.Role `json:"role" enum:"owner,admin,developer,viewer"`
	Status     string     `json:"status" enum:"pending,accepted,expired"`
	InvitedBy  string     `json:"invited_by,omitempty" doc:"user ID of the inviter"`
	ExpiresAt  time.Time  `json:"expires_at"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	AcceptedBy string     `json:"accepted_by,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
}

// invitationCreatedResponse is the answer to creating an invitation: the link is shown to the
// inviter too, so an install without SMTP can pass it on by other means. It cannot be shown
// again.
type invitationCreatedResponse struct {
	invitationResponse
	Link      string `json:"link" doc:"the single-use acceptance link; shown only now"`
	EmailSent bool   `json:"email_sent" doc:"whether the link was mailed to the invitee"`
}

// acceptInvitationRequest carries the secret from the invitation link.
type acceptInvitationRequest struct {
	Token string `json:"token" doc:"the token parameter of the invitation link"`
}

func (s *Server) invitationOf(inv store.Invitation) invitationResponse {
	st := invitationPending
	switch {
	case inv.AcceptedAt != nil:
		st = invitationAccepted
	case !s.now().Before(inv.ExpiresAt):
		st = invitationExpired
	}
	return invitationResponse{
		ID: inv.ID, Email: inv.Email, Role: inv.Role, Status: st, InvitedBy: inv.InvitedBy,
		ExpiresAt: inv.ExpiresAt, AcceptedAt: inv.AcceptedAt, AcceptedBy: inv.AcceptedBy, CreatedAt: inv.CreatedAt,
	}
}

// newInvitationSecret returns 32 random bytes, base64url-encoded: the token in the link.
func newInvitationSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("server: crypto/rand failed: " + err.Error()) // cannot happen on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// invitationLink builds the link sent to the invitee.
func (s *Server) invitationLink(secret string) string {
	return s.publicURL + invitationAcceptPath + "?token=" + url.QueryEscape(secret)
}

// createInvitation serves POST /api/v1/tenants/:tenant/invitations. Only owners may invite
// owners. The mail is best effort: without SMTP, or when sending fails, the invitation still
// exists and the response carries the link.
func (s *Server) createInvitation(c echo.Context) error {
	tc := tenantFrom(c)
	var req createInvitationRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	fields := map[string]string{}
	email, err := account.NormalizeEmail(req.Email)
	if err != nil {
		fields["email"] = err.Error()
	}
	if !req.Role.Valid() {
		fields["role"] = "must be one of owner, admin, developer, viewer"
	}
	if len(fields) > 0 {
		return &store.InvalidError{Fields: fields}
	}
	if req.Role == store.RoleOwner && tc.Role != store.RoleOwner {
		return errForbidden("only an owner can invite an owner")
	}
	ctx := c.Request().Context()
	if u, err := s.deps.Store.UserByEmail(ctx, email); err == nil {
		if _, err := s.deps.Store.Membership(ctx, tc.Tenant.ID, u.ID); err == nil {
			return &Error{Status: http.StatusConflict, Code: "already_member", Message: "this person is already a member"}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}

	secret := newInvitationSecret()
	now := s.now()
	inv := store.Invitation{
		TenantID:  tc.Tenant.ID,
		Email:     email,
		Role:      req.Role,
		TokenHash: account.HashSecret(secret),
		InvitedBy: tc.Principal.UserID,
		ExpiresAt: store.Timestamp(now.Add(invitationTTL)),
		CreatedAt: store.Timestamp(now),
	}
	if err := s.deps.Store.CreateInvitation(ctx, &inv); err != nil {
		return err
	}
	link := s.invitationLink(secret)
	sent := false
	if s.deps.Mailer != nil {
		inviter := "A member"
		if tc.Principal.UserID != "" {
			if u, err := s.deps.Store.User(ctx, tc.Principal.UserID); err == nil {
				inviter = u.Email
			}
		}
		msg := mail.Invitation(email, tc.Tenant.Name, inviter, string(req.Role), link)
		if err := s.deps.Mailer.Send(ctx, msg); err != nil {
			s.log.Warn("invitation mail not sent", "request_id", requestID(c), "invitation_id", inv.ID, "error", err)
		} else {
			sent = true
		}
	}
	s.audit(c, auditInvitationCreate, "invitation", inv.ID, map[string]any{
		"email": email, "role": string(req.Role), "expires_at": inv.ExpiresAt, "email_sent": sent})
	return c.JSON(http.StatusCreated, invitationCreatedResponse{
		invitationResponse: s.invitationOf(inv), Link: link, EmailSent: sent})
}

// listInvitations serves GET /api/v1/tenants/:tenant/invitations, newest first.
func (s *Server) listInvitations(c echo.Context) error {
	tc := tenantFrom(c)
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	opts.Desc = true
	page, err := s.deps.Store.ListInvitations(c.Request().Context(), tc.Tenant.ID, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(page, s.invitationOf))
}

// revokeInvitation serves DELETE /api/v1/tenants/:tenant/invitations/:invitation: the link
// stops working. An accepted invitation is history and stays.
func (s *Server) revokeInvitation(c echo.Context) error {
	tc := tenantFrom(c)
	ctx := c.Request().Context()
	inv, err := s.deps.Store.Invitation(ctx, tc.Tenant.ID, c.Param("invitation"))
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Message: "invitation not found"}
	}
	if err != nil {
		return err
	}
	if inv.AcceptedAt != nil {
		return &Error{Status: http.StatusConflict, Code: "invitation_used", Message: "the invitation was already accepted; remove the member instead"}
	}
	if inv.Role == store.RoleOwner && tc.Role != store.RoleOwner {
		return errForbidden("only an owner can revoke an owner invitation")
	}
	if err := s.deps.Store.DeleteInvitation(ctx, tc.Tenant.ID, inv.ID); err != nil {
		return err
	}
	s.audit(c, auditInvitationRevoke, "invitation", inv.ID, map[string]any{"email": inv.Email, "role": string(inv.Role)})
	return c.NoContent(http.StatusNoContent)
}

// acceptInvitation serves POST /api/v1/invitations/accept for a signed-in user.
//
// The invitation is bound to its email address: the signed-in user's email must be the one
// invited (compared normalised). Holding the link alone is not enough, so a forwarded or
// leaked link cannot be used by another account; someone invited at an address they have
// no account for signs up with that address first.
//
// The membership is written first and the invitation then marked used atomically; if another
// request used it in between, the membership is removed again, so the link works once.
func (s *Server) acceptInvitation(c echo.Context) error {
	p, err := requireSessionPrincipal(c)
	if err != nil {
		return err
	}
	var req acceptInvitationRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Token == "" || len(req.Token) > 128 {
		return store.Invalid("token", "must be the token of an invitation link")
	}
	ctx := c.Request().Context()
	inv, err := s.deps.Store.InvitationByTokenHash(ctx, account.HashSecret(req.Token))
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Code: "invitation_not_found", Message: "invitation not found; it may have been revoked"}
	}
	if err != nil {
		return err
	}
	if inv.AcceptedAt != nil {
		return &Error{Status: http.StatusConflict, Code: "invitation_used", Message: "this invitation was already used"}
	}
	now := s.now()
	if !now.Before(inv.ExpiresAt) {
		return &Error{Status: http.StatusGone, Code: "invitation_expired", Message: "this invitation has expired; ask for a new one"}
	}
	u, err := s.deps.Store.User(ctx, p.UserID)
	if err != nil {
		return err
	}
	if !strings.EqualFold(strings.TrimSpace(u.Email), inv.Email) {
		return errForbidden("this invitation was sent to another email address; sign in with that address")
	}
	t, err := s.deps.Store.Tenant(ctx, inv.TenantID)
	if err != nil {
		return err
	}
	m := store.Membership{TenantID: inv.TenantID, UserID: u.ID, Role: inv.Role}
	if err := s.deps.Store.CreateMembership(ctx, &m); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return &Error{Status: http.StatusConflict, Code: "already_member", Message: "you are already a member of this tenant"}
		}
		return err
	}
	if err := s.deps.Store.AcceptInvitation(ctx, inv.TenantID, inv.ID, u.ID, store.Timestamp(now)); err != nil {
		s.undo(ctx, "delete membership", func(ctx context.Context) error {
			return s.deps.Store.DeleteMembership(ctx, inv.TenantID, u.ID)
		})
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return &Error{Status: http.StatusConflict, Code: "invitation_used", Message: "this invitation was already used"}
		}
		return err
	}
	s.auditIn(c, inv.TenantID, p, auditMemberJoin, "member", u.ID, map[string]any{
		"invitation_id": inv.ID, "role": string(inv.Role)})
	return c.JSON(http.StatusOK, tenantOf(t, inv.Role))
}
