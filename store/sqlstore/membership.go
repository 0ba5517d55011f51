package sqlstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// membershipRow is a row of memberships.
type membershipRow struct {
	bun.BaseModel `bun:"table:memberships"`

	ID        string    `bun:"id"`
	TenantID  string    `bun:"tenant_id"`
	UserID    string    `bun:"user_id"`
	Role      string    `bun:"role"`
	CreatedAt time.Time `bun:"created_at"`
	UpdatedAt time.Time `bun:"updated_at"`
}

func (r membershipRow) domain() store.Membership {
	return store.Membership{
		ID: r.ID, TenantID: r.TenantID, UserID: r.UserID, Role: store.Role(r.Role),
		CreatedAt: utc(r.CreatedAt), UpdatedAt: utc(r.UpdatedAt),
	}
}

// CreateMembership inserts m; a user already in the tenant is store.ErrConflict.
func (s *Store) CreateMembership(ctx context.Context, m *store.Membership) error {
	c := *m
	store.PrepareCreate(&c.ID, &c.CreatedAt, &c.UpdatedAt)
	row := membershipRow{ID: c.ID, TenantID: c.TenantID, UserID: c.UserID, Role: string(c.Role), CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create membership of user %q in tenant %q", c.UserID, c.TenantID)
	}
	*m = c
	return nil
}

// Membership returns a user's membership in a tenant.
func (s *Store) Membership(ctx context.Context, tenantID, userID string) (store.Membership, error) {
	var row membershipRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("user_id = ?", userID).
		Scan(ctx)
	if err != nil {
		return store.Membership{}, wrap(err, "get membership of user %q in tenant %q", userID, tenantID)
	}
	return row.domain(), nil
}

// ListMemberships pages through a tenant's members.
func (s *Store) ListMemberships(ctx context.Context, tenantID string, opts store.ListOptions) (store.Page[store.Membership], error) {
	var rows []membershipRow
	q := s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID)
	if err := pageByID(q, opts).Scan(ctx); err != nil {
		return store.Page[store.Membership]{}, wrap(err, "list memberships of tenant %q", tenantID)
	}
	items := make([]store.Membership, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(m store.Membership) string { return m.ID }), nil
}

// UserMemberships lists every membership of a user, oldest first.
func (s *Store) UserMemberships(ctx context.Context, userID string) ([]store.Membership, error) {
	var rows []membershipRow
	if err := s.r.NewSelect().Model(&rows).Where("user_id = ?", userID).OrderExpr("id ASC").Scan(ctx); err != nil {
		return nil, wrap(err, "list memberships of user %q", userID)
	}
	items := make([]store.Membership, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return items, nil
}

// UpdateMembershipRole changes a member's role.
func (s *Store) UpdateMembershipRole(ctx context.Context, tenantID, userID string, role store.Role) error {
	res, err := s.w.NewUpdate().Table("memberships").
		Set("role = ?", string(role)).
		Set("updated_at = ?", store.Now()).
		Where("tenant_id = ?", tenantID).
		Where("user_id = ?", userID).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "update role of user %q in tenant %q", userID, tenantID)
	}
	return nil
}

// DeleteMembership removes a user from a tenant.
func (s *Store) DeleteMembership(ctx context.Context, tenantID, userID string) error {
	res, err := s.w.NewDelete().Table("memberships").
		Where("tenant_id = ?", tenantID).
		Where("user_id = ?", userID).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "delete membership of user %q in tenant %q", userID, tenantID)
	}
	return nil
}
