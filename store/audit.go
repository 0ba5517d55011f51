package store

import (
	"context"
	"time"
)

// AuditEvent records one state-changing action: who (user or token), what, on which
// resource, when and from where. Details is a JSON object that never holds secrets.
type AuditEvent struct {
	ID           string
	TenantID     string
	ActorUserID  string
	ActorTokenID string
	Action       string // e.g. "device.create", "config.put", "member.invite"
	ResourceType string
	ResourceID   string
	RemoteAddr   string
	Details      string
	CreatedAt    time.Time
}

// AuditFilter narrows an audit listing. Empty fields do not filter.
type AuditFilter struct {
	ActorUserID  string
	Action       string
	ResourceType string
	ResourceID   string
}

// AuditStore keeps the audit log. Events are append-only.
type AuditStore interface {
	CreateAuditEvent(ctx context.Context, e *AuditEvent) error
	ListAuditEvents(ctx context.Context, tenantID string, f AuditFilter, opts ListOptions) (Page[AuditEvent], error)
}
