package sqlstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// projectRow is a row of projects.
type projectRow struct {
	bun.BaseModel `bun:"table:projects"`

	ID                  string    `bun:"id"`
	TenantID            string    `bun:"tenant_id"`
	Name                string    `bun:"name"`
	Description         string    `bun:"description"`
	RepositoryURL       string    `bun:"repository_url"`
	SigningEnabled      bool      `bun:"signing_enabled"`
	SigningPublicKey    []byte    `bun:"signing_public_key"`
	SigningKeySealed    []byte    `bun:"signing_key_sealed"`
	PublicDownloads     bool      `bun:"public_downloads"`
	VersionMismatch     string    `bun:"version_mismatch"`
	BugsnagAPIKeySealed []byte    `bun:"bugsnag_api_key_sealed"`
	BugsnagReleaseStage string    `bun:"bugsnag_release_stage"`
	CreatedAt           time.Time `bun:"created_at"`
	UpdatedAt           time.Time `bun:"updated_at"`
}

func newProjectRow(p *store.Project) projectRow {
	return projectRow{
		ID: p.ID, TenantID: p.TenantID, Name: p.Name, Description: p.Description,
		RepositoryURL: p.RepositoryURL, SigningEnabled: p.SigningEnabled,
		SigningPublicKey: p.SigningPublicKey, SigningKeySealed: p.SigningKeySealed,
		PublicDownloads: p.PublicDownloads, VersionMismatch: string(p.VersionMismatch),
		BugsnagAPIKeySealed: p.BugsnagAPIKeySealed, BugsnagReleaseStage: p.BugsnagReleaseStage,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

func (r projectRow) domain() store.Project {
	return store.Project{
		ID: r.ID, TenantID: r.TenantID, Name: r.Name, Description: r.Description,
		RepositoryURL: r.RepositoryURL, SigningEnabled: r.SigningEnabled,
		SigningPublicKey: r.SigningPublicKey, SigningKeySealed: r.SigningKeySealed,
		PublicDownloads: r.PublicDownloads, VersionMismatch: store.VersionMismatchPolicy(r.VersionMismatch),
		BugsnagAPIKeySealed: r.BugsnagAPIKeySealed, BugsnagReleaseStage: r.BugsnagReleaseStage,
		CreatedAt: utc(r.CreatedAt), UpdatedAt: utc(r.UpdatedAt),
	}
}

// CreateProject inserts p; a taken name in the tenant is store.ErrConflict.
func (s *Store) CreateProject(ctx context.Context, p *store.Project) error {
	c := *p
	store.PrepareCreate(&c.ID, &c.CreatedAt, &c.UpdatedAt)
	row := newProjectRow(&c)
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create project %q in tenant %q", c.Name, c.TenantID)
	}
	*p = c
	return nil
}

// Project returns one of a tenant's projects.
func (s *Store) Project(ctx context.Context, tenantID, id string) (store.Project, error) {
	var row projectRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Scan(ctx)
	if err != nil {
		return store.Project{}, wrap(err, "get project %q", id)
	}
	return row.domain(), nil
}

// ListProjects pages through a tenant's projects.
func (s *Store) ListProjects(ctx context.Context, tenantID string, opts store.ListOptions) (store.Page[store.Project], error) {
	var rows []projectRow
	q := s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID)
	if err := pageByID(q, opts).Scan(ctx); err != nil {
		return store.Page[store.Project]{}, wrap(err, "list projects of tenant %q", tenantID)
	}
	items := make([]store.Project, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(p store.Project) string { return p.ID }), nil
}

// UpdateProject saves every field but the IDs and CreatedAt and sets UpdatedAt.
func (s *Store) UpdateProject(ctx context.Context, p *store.Project) error {
	now := store.Now()
	res, err := s.w.NewUpdate().Table("projects").
		Set("name = ?", p.Name).
		Set("description = ?", p.Description).
		Set("repository_url = ?", p.RepositoryURL).
		Set("signing_enabled = ?", p.SigningEnabled).
		Set("signing_public_key = ?", p.SigningPublicKey).
		Set("signing_key_sealed = ?", p.SigningKeySealed).
		Set("public_downloads = ?", p.PublicDownloads).
		Set("version_mismatch = ?", string(p.VersionMismatch)).
		Set("bugsnag_api_key_sealed = ?", p.BugsnagAPIKeySealed).
		Set("bugsnag_release_stage = ?", p.BugsnagReleaseStage).
		Set("updated_at = ?", now).
		Where("tenant_id = ?", p.TenantID).
		Where("id = ?", p.ID).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "update project %q", p.ID)
	}
	p.UpdatedAt = now
	return nil
}

// DeleteProject removes the project with its releases, rollouts (and their device states) and
// project-scope config entries, and unlinks its devices, in one transaction.
func (s *Store) DeleteProject(ctx context.Context, tenantID, id string) error {
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Table("projects").
			Where("tenant_id = ?", tenantID).
			Where("id = ?", id).
			Exec(ctx)
		if err := affected(res, err); err != nil {
			return err
		}
		rollouts := tx.NewSelect().Table("rollouts").Column("id").
			Where("tenant_id = ?", tenantID).
			Where("project_id = ?", id)
		steps := []*bun.DeleteQuery{
			tx.NewDelete().Table("rollout_devices").Where("tenant_id = ?", tenantID).Where("rollout_id IN (?)", rollouts),
			tx.NewDelete().Table("rollouts").Where("tenant_id = ?", tenantID).Where("project_id = ?", id),
			tx.NewDelete().Table("releases").Where("tenant_id = ?", tenantID).Where("project_id = ?", id),
			tx.NewDelete().Table("config_entries").Where("tenant_id = ?", tenantID).
				Where("scope = ?", string(store.ScopeProject)).Where("scope_id = ?", id),
		}
		for _, q := range steps {
			if _, err := q.Exec(ctx); err != nil {
				return err
			}
		}
		_, err = tx.NewUpdate().Table("devices").
			Set("project_id = NULL").
			Where("tenant_id = ?", tenantID).
			Where("project_id = ?", id).
			Exec(ctx)
		return err
	})
	return wrap(err, "delete project %q", id)
}
