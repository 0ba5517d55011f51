package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/store"
)

// Audit actions recorded by the tenancy routes. Actions are "resource.verb"; later features
// add their own next to their handlers.
const (
	auditTenantCreate      = "tenant.create"
	auditTenantUpdate      = "tenant.update"
	auditTenantDelete      = "tenant.delete"
	auditOwnershipTransfer = "tenant.transfer_ownership"
	auditMemberRole        = "member.update_role"
	auditMemberRemove      = "member.remove"
	auditMemberLeave       = "member.leave"
	auditMemberJoin        = "member.join"
	auditInvitationCreate  = "invitation.create"
	auditInvitationRevoke  = "invitation.revoke"
	auditTokenCreate       = "token.create"
	auditTokenDelete       = "token.delete"
)

// secretKeyParts are substrings of detail keys that may carry a secret. A key containing one
// is dropped from the details (with a warning in the log), so a careless call cannot write a
// token, password or secret value into the audit log, which admins can read and which is kept
// for long.
var secretKeyParts = []string{"password", "secret", "token", "key", "hash", "credential", "cookie", "authorization", "csrf"}

// sensitiveKey reports whether a details key may name a secret.
func sensitiveKey(k string) bool {
	k = strings.ToLower(k)
	for _, part := range secretKeyParts {
		if strings.Contains(k, part) {
			return true
		}
	}
	return false
}

// scrubDetails returns a copy of details without sensitive keys, at any depth, and the keys
// it dropped.
func scrubDetails(details map[string]any) (map[string]any, []string) {
	var dropped []string
	var walk func(prefix string, in map[string]any) map[string]any
	walk = func(prefix string, in map[string]any) map[string]any {
		out := make(map[string]any, len(in))
		for k, v := range in {
			if sensitiveKey(k) {
				dropped = append(dropped, prefix+k)
				continue
			}
			if m, ok := v.(map[string]any); ok {
				v = walk(prefix+k+".", m)
			}
			out[k] = v
		}
		return out
	}
	return walk("", details), dropped
}

// audit records a state-changing action in the tenant of the current route (see
// tenantScope): the actor (user and/or token), the remote address and the time. Details
// describe the change; keys that may carry secrets are stripped.
//
// Every handler that changes state calls it after the change succeeded. A failure to write
// the event is logged at error level and does not fail the request: the change is already
// made, and answering 500 would make the client believe it was not.
func (s *Server) audit(c echo.Context, action, resourceType, resourceID string, details map[string]any) {
	tc := tenantFrom(c)
	s.auditIn(c, tc.Tenant.ID, tc.Principal, action, resourceType, resourceID, details)
}

// auditIn records an event for routes outside a tenant scope (creating a tenant, accepting
// an invitation), which name the tenant and actor themselves.
func (s *Server) auditIn(c echo.Context, tenantID string, p Principal, action, resourceType, resourceID string, details map[string]any) {
	clean, dropped := scrubDetails(details)
	if len(dropped) > 0 {
		s.log.Warn("audit details with secret-like keys dropped", "action", action, "keys", dropped)
	}
	encoded := "{}"
	if len(clean) > 0 {
		b, err := json.Marshal(clean)
		if err != nil {
			s.log.Error("audit details not encodable", "action", action, "error", err)
		} else {
			encoded = string(b)
		}
	}
	ev := store.AuditEvent{
		TenantID:     tenantID,
		ActorUserID:  p.UserID,
		ActorTokenID: p.TokenID,
		Action:       action,
		ResourceType: resourceType,
		ResourceID:   resourceID,
		RemoteAddr:   c.RealIP(),
		Details:      encoded,
		CreatedAt:    s.now(),
	}
	// The request may be cancelled once the change is made; the event must still be written.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 5*time.Second)
	defer cancel()
	if err := s.deps.Store.CreateAuditEvent(ctx, &ev); err != nil {
		s.log.Error("audit event not recorded", "request_id", requestID(c), "action", action,
			"tenant_id", tenantID, "resource_id", resourceID, "error", err)
	}
}

// auditEventResponse is one audit log entry on the wire.
type auditEventResponse struct {
	ID           string         `json:"id"`
	ActorUserID  string         `json:"actor_user_id,omitempty" doc:"the user who acted (absent for a tenant token)"`
	ActorTokenID string         `json:"actor_token_id,omitempty" doc:"the API token used (absent for a browser session)"`
	Action       string         `json:"action" doc:"resource.verb, e.g. member.update_role"`
	ResourceType string         `json:"resource_type"`
	ResourceID   string         `json:"resource_id,omitempty"`
	RemoteAddr   string         `json:"remote_addr"`
	Details      map[string]any `json:"details"`
	CreatedAt    time.Time      `json:"created_at"`
}

func auditEventOf(e store.AuditEvent) auditEventResponse {
	details := map[string]any{}
	if e.Details != "" {
		_ = json.Unmarshal([]byte(e.Details), &details) // written by auditIn; an old shape shows as {}
	}
	return auditEventResponse{
		ID: e.ID, ActorUserID: e.ActorUserID, ActorTokenID: e.ActorTokenID, Action: e.Action,
		ResourceType: e.ResourceType, ResourceID: e.ResourceID, RemoteAddr: e.RemoteAddr,
		Details: details, CreatedAt: e.CreatedAt,
	}
}

// auditQuery documents the filters of the audit listing.
type auditQuery struct {
	Actor        string `query:"actor" doc:"user ID of the actor"`
	Action       string `query:"action" doc:"exact action, e.g. token.create"`
	ResourceType string `query:"resource_type" doc:"e.g. member, token, invitation, tenant"`
	ResourceID   string `query:"resource_id"`
	pageQuery
}

// listAudit serves GET /api/v1/tenants/:tenant/audit: newest first, filtered.
func (s *Server) listAudit(c echo.Context) error {
	tc := tenantFrom(c)
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	opts.Desc = true
	f := store.AuditFilter{
		ActorUserID:  c.QueryParam("actor"),
		Action:       c.QueryParam("action"),
		ResourceType: c.QueryParam("resource_type"),
		ResourceID:   c.QueryParam("resource_id"),
	}
	page, err := s.deps.Store.ListAuditEvents(c.Request().Context(), tc.Tenant.ID, f, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(page, auditEventOf))
}
