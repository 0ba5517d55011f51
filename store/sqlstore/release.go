package sqlstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// releaseRow is a row of releases; the image description is flattened into image_* columns.
type releaseRow struct {
	bun.BaseModel `bun:"table:releases"`

	ID               string    `bun:"id"`
	TenantID         string    `bun:"tenant_id"`
	ProjectID        string    `bun:"project_id"`
	Version          string    `bun:"version"`
	Notes            string    `bun:"notes"`
	BlobKey          string    `bun:"blob_key"`
	Size             int64     `bun:"size"`
	SHA256           string    `bun:"sha256"`
	ImageChip        string    `bun:"image_chip"`
	ImageProjectName string    `bun:"image_project_name"`
	ImageAppVersion  string    `bun:"image_app_version"`
	ImageIDFVersion  string    `bun:"image_idf_version"`
	ImageBuildDate   string    `bun:"image_build_date"`
	ImageBuildTime   string    `bun:"image_build_time"`
	ImageELFSHA256   string    `bun:"image_elf_sha256"`
	Warnings         string    `bun:"warnings"`
	CreatedBy        string    `bun:"created_by"`
	CreatedAt        time.Time `bun:"created_at"`
}

func (r releaseRow) domain() store.Release {
	// A warnings column that does not decode loses the warnings, never the release.
	warnings, _ := fromJSON[string](r.Warnings)
	return store.Release{
		Warnings: warnings,
		ID:       r.ID, TenantID: r.TenantID, ProjectID: r.ProjectID, Version: r.Version, Notes: r.Notes,
		BlobKey: r.BlobKey, Size: r.Size, SHA256: r.SHA256,
		Image: store.ImageInfo{
			Chip: r.ImageChip, ProjectName: r.ImageProjectName, AppVersion: r.ImageAppVersion,
			IDFVersion: r.ImageIDFVersion, BuildDate: r.ImageBuildDate, BuildTime: r.ImageBuildTime,
			ELFSHA256: r.ImageELFSHA256,
		},
		CreatedBy: r.CreatedBy, CreatedAt: utc(r.CreatedAt),
	}
}

// CreateRelease inserts r; a version already in the project is store.ErrConflict.
func (s *Store) CreateRelease(ctx context.Context, r *store.Release) error {
	c := *r
	store.PrepareCreate(&c.ID, &c.CreatedAt, nil)
	row := releaseRow{
		ID: c.ID, TenantID: c.TenantID, ProjectID: c.ProjectID, Version: c.Version, Notes: c.Notes,
		BlobKey: c.BlobKey, Size: c.Size, SHA256: c.SHA256,
		ImageChip: c.Image.Chip, ImageProjectName: c.Image.ProjectName, ImageAppVersion: c.Image.AppVersion,
		ImageIDFVersion: c.Image.IDFVersion, ImageBuildDate: c.Image.BuildDate, ImageBuildTime: c.Image.BuildTime,
		ImageELFSHA256: c.Image.ELFSHA256, Warnings: toJSON(c.Warnings), CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt,
	}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create release %q of project %q", c.Version, c.ProjectID)
	}
	*r = c
	return nil
}

// Release returns one of a tenant's releases.
func (s *Store) Release(ctx context.Context, tenantID, id string) (store.Release, error) {
	var row releaseRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Scan(ctx)
	if err != nil {
		return store.Release{}, wrap(err, "get release %q", id)
	}
	return row.domain(), nil
}

// ReleaseByVersion returns a project's release by version string.
func (s *Store) ReleaseByVersion(ctx context.Context, tenantID, projectID, version string) (store.Release, error) {
	var row releaseRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("project_id = ?", projectID).
		Where("version = ?", version).
		Scan(ctx)
	if err != nil {
		return store.Release{}, wrap(err, "get release %q of project %q", version, projectID)
	}
	return row.domain(), nil
}

// ListReleases pages through a project's releases.
func (s *Store) ListReleases(ctx context.Context, tenantID, projectID string, opts store.ListOptions) (store.Page[store.Release], error) {
	var rows []releaseRow
	q := s.r.NewSelect().Model(&rows).
		Where("tenant_id = ?", tenantID).
		Where("project_id = ?", projectID)
	if err := pageByID(q, opts).Scan(ctx); err != nil {
		return store.Page[store.Release]{}, wrap(err, "list releases of project %q", projectID)
	}
	items := make([]store.Release, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(r store.Release) string { return r.ID }), nil
}

// UpdateReleaseNotes changes a release's notes.
func (s *Store) UpdateReleaseNotes(ctx context.Context, tenantID, id, notes string) error {
	res, err := s.w.NewUpdate().Table("releases").
		Set("notes = ?", notes).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "update notes of release %q", id)
	}
	return nil
}

// DeleteRelease removes a release record (its blob is the caller's to delete).
func (s *Store) DeleteRelease(ctx context.Context, tenantID, id string) error {
	res, err := s.w.NewDelete().Table("releases").
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "delete release %q", id)
	}
	return nil
}
