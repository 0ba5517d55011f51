package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/espadmin/espadmin/store"
)

type auditEventDoc struct {
	ID           string    `bson:"_id"`
	TenantID     string    `bson:"tenant_id"`
	ActorUserID  string    `bson:"actor_user_id"`
	ActorTokenID string    `bson:"actor_token_id"`
	Action       string    `bson:"action"`
	ResourceType string    `bson:"resource_type"`
	ResourceID   string    `bson:"resource_id"`
	RemoteAddr   string    `bson:"remote_addr"`
	Details      string    `bson:"details"`
	CreatedAt    time.Time `bson:"created_at"`
}

func auditEventFromDoc(d auditEventDoc) store.AuditEvent {
	e := store.AuditEvent(d)
	e.CreatedAt = utc(e.CreatedAt)
	return e
}

// CreateAuditEvent appends e.
func (s *Store) CreateAuditEvent(ctx context.Context, e *store.AuditEvent) error {
	store.PrepareCreate(&e.ID, &e.CreatedAt, nil)
	_, err := s.col(colAuditEvents).InsertOne(ctx, auditEventDoc(*e))
	return wrap(err, "create audit event %q", e.Action)
}

// ListAuditEvents pages through a tenant's events matching f, by ID.
func (s *Store) ListAuditEvents(ctx context.Context, tenantID string, f store.AuditFilter, opts store.ListOptions) (store.Page[store.AuditEvent], error) {
	filter := bson.D{{Key: "tenant_id", Value: tenantID}}
	for _, c := range []struct{ field, value string }{
		{"actor_user_id", f.ActorUserID},
		{"action", f.Action},
		{"resource_type", f.ResourceType},
		{"resource_id", f.ResourceID},
	} {
		if c.value != "" {
			filter = append(filter, bson.E{Key: c.field, Value: c.value})
		}
	}
	p, err := listPage(ctx, s.col(colAuditEvents), pageQuery{filter: filter, field: "_id", listOpts: opts},
		auditEventFromDoc, func(e store.AuditEvent) string { return e.ID })
	return p, wrap(err, "list audit events of tenant %q", tenantID)
}
