package sqlstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// auditEventRow is a row of audit_events.
type auditEventRow struct {
	bun.BaseModel `bun:"table:audit_events"`

	ID           string    `bun:"id"`
	TenantID     string    `bun:"tenant_id"`
	ActorUserID  string    `bun:"actor_user_id"`
	ActorTokenID string    `bun:"actor_token_id"`
	Action       string    `bun:"action"`
	ResourceType string    `bun:"resource_type"`
	ResourceID   string    `bun:"resource_id"`
	RemoteAddr   string    `bun:"remote_addr"`
	Details      string    `bun:"details"`
	CreatedAt    time.Time `bun:"created_at"`
}

func (r auditEventRow) domain() store.AuditEvent {
	return store.AuditEvent{
		ID: r.ID, TenantID: r.TenantID, ActorUserID: r.ActorUserID, ActorTokenID: r.ActorTokenID,
		Action: r.Action, ResourceType: r.ResourceType, ResourceID: r.ResourceID,
		RemoteAddr: r.RemoteAddr, Details: r.Details, CreatedAt: utc(r.CreatedAt),
	}
}

// CreateAuditEvent appends an event.
func (s *Store) CreateAuditEvent(ctx context.Context, e *store.AuditEvent) error {
	c := *e
	store.PrepareCreate(&c.ID, &c.CreatedAt, nil)
	row := auditEventRow{
		ID: c.ID, TenantID: c.TenantID, ActorUserID: c.ActorUserID, ActorTokenID: c.ActorTokenID,
		Action: c.Action, ResourceType: c.ResourceType, ResourceID: c.ResourceID,
		RemoteAddr: c.RemoteAddr, Details: c.Details, CreatedAt: c.CreatedAt,
	}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create audit event %q in tenant %q", c.Action, c.TenantID)
	}
	*e = c
	return nil
}

// ListAuditEvents pages through a tenant's events matching f.
func (s *Store) ListAuditEvents(ctx context.Context, tenantID string, f store.AuditFilter, opts store.ListOptions) (store.Page[store.AuditEvent], error) {
	var rows []auditEventRow
	q := s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID)
	if f.ActorUserID != "" {
		q = q.Where("actor_user_id = ?", f.ActorUserID)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if f.ResourceType != "" {
		q = q.Where("resource_type = ?", f.ResourceType)
	}
	if f.ResourceID != "" {
		q = q.Where("resource_id = ?", f.ResourceID)
	}
	if err := pageByID(q, opts).Scan(ctx); err != nil {
		return store.Page[store.AuditEvent]{}, wrap(err, "list audit events of tenant %q", tenantID)
	}
	items := make([]store.AuditEvent, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(e store.AuditEvent) string { return e.ID }), nil
}
