package sqlstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// apiTokenRow is a row of api_tokens. user_id is NULL for a tenant token (so that the foreign
// key to users applies to personal tokens only).
type apiTokenRow struct {
	bun.BaseModel `bun:"table:api_tokens"`

	ID         string     `bun:"id"`
	TenantID   string     `bun:"tenant_id"`
	UserID     string     `bun:"user_id,nullzero"`
	Name       string     `bun:"name"`
	Prefix     string     `bun:"prefix"`
	Hash       []byte     `bun:"hash"`
	Scopes     string     `bun:"scopes"`
	ExpiresAt  *time.Time `bun:"expires_at"`
	LastUsedAt *time.Time `bun:"last_used_at"`
	CreatedBy  string     `bun:"created_by"`
	CreatedAt  time.Time  `bun:"created_at"`
}

func (r apiTokenRow) domain() (store.APIToken, error) {
	scopes, err := fromJSON[string](r.Scopes)
	if err != nil {
		return store.APIToken{}, err
	}
	return store.APIToken{
		ID: r.ID, TenantID: r.TenantID, UserID: r.UserID, Name: r.Name, Prefix: r.Prefix,
		Hash: r.Hash, Scopes: scopes, ExpiresAt: utcPtr(r.ExpiresAt), LastUsedAt: utcPtr(r.LastUsedAt),
		CreatedBy: r.CreatedBy, CreatedAt: utc(r.CreatedAt),
	}, nil
}

// CreateAPIToken inserts t; a duplicate hash is store.ErrConflict.
func (s *Store) CreateAPIToken(ctx context.Context, t *store.APIToken) error {
	c := *t
	store.PrepareCreate(&c.ID, &c.CreatedAt, nil)
	c.ExpiresAt, c.LastUsedAt = tsPtr(c.ExpiresAt), tsPtr(c.LastUsedAt)
	row := apiTokenRow{
		ID: c.ID, TenantID: c.TenantID, UserID: c.UserID, Name: c.Name, Prefix: c.Prefix,
		Hash: c.Hash, Scopes: toJSON(c.Scopes), ExpiresAt: c.ExpiresAt, LastUsedAt: c.LastUsedAt,
		CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt,
	}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create API token %q in tenant %q", c.Name, c.TenantID)
	}
	*t = c
	return nil
}

// APITokenByHash is the entry point for token authentication.
func (s *Store) APITokenByHash(ctx context.Context, hash []byte) (store.APIToken, error) {
	var row apiTokenRow
	if err := s.r.NewSelect().Model(&row).Where("hash = ?", hash).Scan(ctx); err != nil {
		return store.APIToken{}, wrap(err, "get API token by hash")
	}
	t, err := row.domain()
	return t, wrap(err, "get API token by hash")
}

// APIToken returns one of a tenant's tokens.
func (s *Store) APIToken(ctx context.Context, tenantID, id string) (store.APIToken, error) {
	var row apiTokenRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Scan(ctx)
	if err != nil {
		return store.APIToken{}, wrap(err, "get API token %q", id)
	}
	t, err := row.domain()
	return t, wrap(err, "get API token %q", id)
}

// ListAPITokens pages through a tenant's tokens.
func (s *Store) ListAPITokens(ctx context.Context, tenantID string, opts store.ListOptions) (store.Page[store.APIToken], error) {
	var rows []apiTokenRow
	q := s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID)
	if err := pageByID(q, opts).Scan(ctx); err != nil {
		return store.Page[store.APIToken]{}, wrap(err, "list API tokens of tenant %q", tenantID)
	}
	items := make([]store.APIToken, len(rows))
	for i, r := range rows {
		t, err := r.domain()
		if err != nil {
			return store.Page[store.APIToken]{}, wrap(err, "list API tokens of tenant %q", tenantID)
		}
		items[i] = t
	}
	return store.MakePage(items, opts.PageSize(), func(t store.APIToken) string { return t.ID }), nil
}

// TouchAPIToken records the token's last use.
func (s *Store) TouchAPIToken(ctx context.Context, tenantID, id string, at time.Time) error {
	res, err := s.w.NewUpdate().Table("api_tokens").
		Set("last_used_at = ?", ts(at)).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "touch API token %q", id)
	}
	return nil
}

// DeleteAPIToken revokes a token.
func (s *Store) DeleteAPIToken(ctx context.Context, tenantID, id string) error {
	res, err := s.w.NewDelete().Table("api_tokens").
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "delete API token %q", id)
	}
	return nil
}
