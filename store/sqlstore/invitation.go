package sqlstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// invitationRow is a row of invitations.
type invitationRow struct {
	bun.BaseModel `bun:"table:invitations"`

	ID         string     `bun:"id"`
	TenantID   string     `bun:"tenant_id"`
	Email      string     `bun:"email"`
	Role       string     `bun:"role"`
	TokenHash  []byte     `bun:"token_hash"`
	InvitedBy  string     `bun:"invited_by"`
	ExpiresAt  time.Time  `bun:"expires_at,nullzero"`
	AcceptedAt *time.Time `bun:"accepted_at"`
	AcceptedBy string     `bun:"accepted_by"`
	CreatedAt  time.Time  `bun:"created_at"`
}

func (r invitationRow) domain() store.Invitation {
	return store.Invitation{
		ID: r.ID, TenantID: r.TenantID, Email: r.Email, Role: store.Role(r.Role), TokenHash: r.TokenHash,
		InvitedBy: r.InvitedBy, ExpiresAt: utc(r.ExpiresAt), AcceptedAt: utcPtr(r.AcceptedAt),
		AcceptedBy: r.AcceptedBy, CreatedAt: utc(r.CreatedAt),
	}
}

// CreateInvitation inserts inv; a duplicate token hash is store.ErrConflict.
func (s *Store) CreateInvitation(ctx context.Context, inv *store.Invitation) error {
	c := *inv
	store.PrepareCreate(&c.ID, &c.CreatedAt, nil)
	c.ExpiresAt, c.AcceptedAt = ts(c.ExpiresAt), tsPtr(c.AcceptedAt)
	row := invitationRow{
		ID: c.ID, TenantID: c.TenantID, Email: c.Email, Role: string(c.Role), TokenHash: c.TokenHash,
		InvitedBy: c.InvitedBy, ExpiresAt: c.ExpiresAt, AcceptedAt: c.AcceptedAt, AcceptedBy: c.AcceptedBy,
		CreatedAt: c.CreatedAt,
	}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create invitation for %q in tenant %q", c.Email, c.TenantID)
	}
	*inv = c
	return nil
}

// InvitationByTokenHash is the entry point for an invitation link.
func (s *Store) InvitationByTokenHash(ctx context.Context, hash []byte) (store.Invitation, error) {
	var row invitationRow
	if err := s.r.NewSelect().Model(&row).Where("token_hash = ?", hash).Scan(ctx); err != nil {
		return store.Invitation{}, wrap(err, "get invitation by token hash")
	}
	return row.domain(), nil
}

// Invitation returns one of a tenant's invitations.
func (s *Store) Invitation(ctx context.Context, tenantID, id string) (store.Invitation, error) {
	var row invitationRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Scan(ctx)
	if err != nil {
		return store.Invitation{}, wrap(err, "get invitation %q", id)
	}
	return row.domain(), nil
}

// ListInvitations pages through a tenant's invitations.
func (s *Store) ListInvitations(ctx context.Context, tenantID string, opts store.ListOptions) (store.Page[store.Invitation], error) {
	var rows []invitationRow
	q := s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID)
	if err := pageByID(q, opts).Scan(ctx); err != nil {
		return store.Page[store.Invitation]{}, wrap(err, "list invitations of tenant %q", tenantID)
	}
	items := make([]store.Invitation, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(inv store.Invitation) string { return inv.ID }), nil
}

// AcceptInvitation marks the invitation accepted by userID in one conditional UPDATE, so of
// two racing accepts exactly one succeeds and the other is store.ErrConflict. Expiry is the
// caller's check.
func (s *Store) AcceptInvitation(ctx context.Context, tenantID, id, userID string, at time.Time) error {
	res, err := s.w.NewUpdate().Table("invitations").
		Set("accepted_at = ?", nowOr(at)).
		Set("accepted_by = ?", userID).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Where("accepted_at IS NULL").
		Exec(ctx)
	if err := affected(res, err); err != nil {
		if err == store.ErrNotFound {
			err = notFoundOr(ctx, s.w, "invitations", tenantID, id, store.ErrConflict)
		}
		return wrap(err, "accept invitation %q", id)
	}
	return nil
}

// DeleteInvitation withdraws an invitation.
func (s *Store) DeleteInvitation(ctx context.Context, tenantID, id string) error {
	res, err := s.w.NewDelete().Table("invitations").
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "delete invitation %q", id)
	}
	return nil
}
