package sqlstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// tenantRow is a row of tenants.
type tenantRow struct {
	bun.BaseModel `bun:"table:tenants"`

	ID        string    `bun:"id"`
	Slug      string    `bun:"slug"`
	Name      string    `bun:"name"`
	CreatedAt time.Time `bun:"created_at"`
	UpdatedAt time.Time `bun:"updated_at"`
}

func (r tenantRow) domain() store.Tenant {
	return store.Tenant{ID: r.ID, Slug: r.Slug, Name: r.Name, CreatedAt: utc(r.CreatedAt), UpdatedAt: utc(r.UpdatedAt)}
}

// CreateTenant inserts t; a taken slug is store.ErrConflict.
func (s *Store) CreateTenant(ctx context.Context, t *store.Tenant) error {
	c := *t
	store.PrepareCreate(&c.ID, &c.CreatedAt, &c.UpdatedAt)
	row := tenantRow{ID: c.ID, Slug: c.Slug, Name: c.Name, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create tenant %q", c.Slug)
	}
	*t = c
	return nil
}

// Tenant returns a tenant by ID.
func (s *Store) Tenant(ctx context.Context, id string) (store.Tenant, error) {
	var row tenantRow
	if err := s.r.NewSelect().Model(&row).Where("id = ?", id).Scan(ctx); err != nil {
		return store.Tenant{}, wrap(err, "get tenant %q", id)
	}
	return row.domain(), nil
}

// TenantBySlug returns a tenant by slug.
func (s *Store) TenantBySlug(ctx context.Context, slug string) (store.Tenant, error) {
	var row tenantRow
	if err := s.r.NewSelect().Model(&row).Where("slug = ?", slug).Scan(ctx); err != nil {
		return store.Tenant{}, wrap(err, "get tenant by slug %q", slug)
	}
	return row.domain(), nil
}

// ListTenants pages through all tenants.
func (s *Store) ListTenants(ctx context.Context, opts store.ListOptions) (store.Page[store.Tenant], error) {
	var rows []tenantRow
	if err := pageByID(s.r.NewSelect().Model(&rows), opts).Scan(ctx); err != nil {
		return store.Page[store.Tenant]{}, wrap(err, "list tenants")
	}
	items := make([]store.Tenant, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(t store.Tenant) string { return t.ID }), nil
}

// UpdateTenant saves Slug and Name and sets UpdatedAt.
func (s *Store) UpdateTenant(ctx context.Context, t *store.Tenant) error {
	now := store.Now()
	res, err := s.w.NewUpdate().Table("tenants").
		Set("slug = ?", t.Slug).
		Set("name = ?", t.Name).
		Set("updated_at = ?", now).
		Where("id = ?", t.ID).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "update tenant %q", t.ID)
	}
	t.UpdatedAt = now
	return nil
}

// DeleteTenant removes the tenant; the foreign keys cascade to everything it owns.
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	res, err := s.w.NewDelete().Table("tenants").Where("id = ?", id).Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "delete tenant %q", id)
	}
	return nil
}
