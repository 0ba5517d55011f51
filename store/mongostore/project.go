package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/espadmin/espadmin/store"
)

// Projects.

type projectDoc struct {
	ID                  string    `bson:"_id"`
	TenantID            string    `bson:"tenant_id"`
	Name                string    `bson:"name"`
	Description         string    `bson:"description"`
	RepositoryURL       string    `bson:"repository_url"`
	SigningEnabled      bool      `bson:"signing_enabled"`
	SigningPublicKey    []byte    `bson:"signing_public_key"`
	SigningKeySealed    []byte    `bson:"signing_key_sealed"`
	PublicDownloads     bool      `bson:"public_downloads"`
	VersionMismatch     string    `bson:"version_mismatch"`
	BugsnagAPIKeySealed []byte    `bson:"bugsnag_api_key_sealed"`
	BugsnagReleaseStage string    `bson:"bugsnag_release_stage"`
	CreatedAt           time.Time `bson:"created_at"`
	UpdatedAt           time.Time `bson:"updated_at"`
}

func projectToDoc(p *store.Project) projectDoc {
	return projectDoc{
		ID: p.ID, TenantID: p.TenantID, Name: p.Name, Description: p.Description, RepositoryURL: p.RepositoryURL,
		SigningEnabled: p.SigningEnabled, SigningPublicKey: p.SigningPublicKey, SigningKeySealed: p.SigningKeySealed,
		PublicDownloads: p.PublicDownloads, VersionMismatch: string(p.VersionMismatch),
		BugsnagAPIKeySealed: p.BugsnagAPIKeySealed, BugsnagReleaseStage: p.BugsnagReleaseStage,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

func projectFromDoc(d projectDoc) store.Project {
	return store.Project{
		ID: d.ID, TenantID: d.TenantID, Name: d.Name, Description: d.Description, RepositoryURL: d.RepositoryURL,
		SigningEnabled: d.SigningEnabled, SigningPublicKey: d.SigningPublicKey, SigningKeySealed: d.SigningKeySealed,
		PublicDownloads: d.PublicDownloads, VersionMismatch: store.VersionMismatchPolicy(d.VersionMismatch),
		BugsnagAPIKeySealed: d.BugsnagAPIKeySealed, BugsnagReleaseStage: d.BugsnagReleaseStage,
		CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt),
	}
}

func tenantKey(tenantID, id string) bson.D {
	return bson.D{{Key: "_id", Value: id}, {Key: "tenant_id", Value: tenantID}}
}

// CreateProject inserts p; a name taken in the tenant is store.ErrConflict.
func (s *Store) CreateProject(ctx context.Context, p *store.Project) error {
	store.PrepareCreate(&p.ID, &p.CreatedAt, &p.UpdatedAt)
	_, err := s.col(colProjects).InsertOne(ctx, projectToDoc(p))
	return wrap(err, "create project %q", p.Name)
}

// Project returns one of a tenant's projects.
func (s *Store) Project(ctx context.Context, tenantID, id string) (store.Project, error) {
	p, err := findOne(ctx, s.col(colProjects), tenantKey(tenantID, id), projectFromDoc)
	return p, wrap(err, "get project %q", id)
}

// ListProjects pages through a tenant's projects by ID.
func (s *Store) ListProjects(ctx context.Context, tenantID string, opts store.ListOptions) (store.Page[store.Project], error) {
	p, err := listPage(ctx, s.col(colProjects),
		pageQuery{filter: bson.D{{Key: "tenant_id", Value: tenantID}}, field: "_id", listOpts: opts},
		projectFromDoc, func(p store.Project) string { return p.ID })
	return p, wrap(err, "list projects of tenant %q", tenantID)
}

// UpdateProject saves every field but the IDs and CreatedAt and sets UpdatedAt.
func (s *Store) UpdateProject(ctx context.Context, p *store.Project) error {
	now := store.Now()
	res, err := s.col(colProjects).UpdateOne(ctx, tenantKey(p.TenantID, p.ID), bson.D{{Key: "$set", Value: bson.D{
		{Key: "name", Value: p.Name},
		{Key: "description", Value: p.Description},
		{Key: "repository_url", Value: p.RepositoryURL},
		{Key: "signing_enabled", Value: p.SigningEnabled},
		{Key: "signing_public_key", Value: p.SigningPublicKey},
		{Key: "signing_key_sealed", Value: p.SigningKeySealed},
		{Key: "public_downloads", Value: p.PublicDownloads},
		{Key: "version_mismatch", Value: string(p.VersionMismatch)},
		{Key: "bugsnag_api_key_sealed", Value: p.BugsnagAPIKeySealed},
		{Key: "bugsnag_release_stage", Value: p.BugsnagReleaseStage},
		{Key: "updated_at", Value: now},
	}}})
	if err != nil {
		return wrap(err, "update project %q", p.ID)
	}
	if res.MatchedCount == 0 {
		return notFound("update project %q", p.ID)
	}
	p.UpdatedAt = now
	return nil
}

// DeleteProject removes the project's releases, its rollouts with their device states and its
// project-scoped config entries, unlinks its devices, and then removes the project. The
// project document goes last, so an interrupted deletion leaves the project visible and a
// retry finishes it.
func (s *Store) DeleteProject(ctx context.Context, tenantID, id string) error {
	ok, err := exists(ctx, s.col(colProjects), tenantKey(tenantID, id))
	if err != nil {
		return wrap(err, "delete project %q", id)
	}
	if !ok {
		return notFound("delete project %q", id)
	}
	owned := bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "project_id", Value: id}}

	rolloutIDs, err := distinctIDs(ctx, s.col(colRollouts), owned)
	if err != nil {
		return wrap(err, "delete project %q: rollouts", id)
	}
	if len(rolloutIDs) > 0 {
		if _, err := s.col(colRolloutDevices).DeleteMany(ctx, bson.D{
			{Key: "tenant_id", Value: tenantID},
			{Key: "rollout_id", Value: bson.D{{Key: "$in", Value: rolloutIDs}}},
		}); err != nil {
			return wrap(err, "delete project %q: rollout devices", id)
		}
	}
	for _, name := range []string{colRollouts, colReleases} {
		if _, err := s.col(name).DeleteMany(ctx, owned); err != nil {
			return wrap(err, "delete project %q: %s", id, name)
		}
	}
	if _, err := s.col(colConfigSets).DeleteMany(ctx, bson.D{
		{Key: "tenant_id", Value: tenantID},
		{Key: "scope", Value: string(store.ScopeProject)},
		{Key: "scope_id", Value: id},
	}); err != nil {
		return wrap(err, "delete project %q: config entries", id)
	}
	if _, err := s.col(colDevices).UpdateMany(ctx, owned, bson.D{{Key: "$set", Value: bson.D{
		{Key: "project_id", Value: ""},
		{Key: "updated_at", Value: store.Now()},
	}}}); err != nil {
		return wrap(err, "delete project %q: unlink devices", id)
	}
	res, err := s.col(colProjects).DeleteOne(ctx, tenantKey(tenantID, id))
	if err != nil {
		return wrap(err, "delete project %q", id)
	}
	if res.DeletedCount == 0 {
		return notFound("delete project %q", id)
	}
	return nil
}

// Releases.

type imageInfoDoc struct {
	Chip        string `bson:"chip"`
	ProjectName string `bson:"project_name"`
	AppVersion  string `bson:"app_version"`
	IDFVersion  string `bson:"idf_version"`
	BuildDate   string `bson:"build_date"`
	BuildTime   string `bson:"build_time"`
	ELFSHA256   string `bson:"elf_sha256"`
}

type releaseDoc struct {
	ID        string       `bson:"_id"`
	TenantID  string       `bson:"tenant_id"`
	ProjectID string       `bson:"project_id"`
	Version   string       `bson:"version"`
	Notes     string       `bson:"notes"`
	BlobKey   string       `bson:"blob_key"`
	Size      int64        `bson:"size"`
	SHA256    string       `bson:"sha256"`
	Image     imageInfoDoc `bson:"image"`
	Warnings  []string     `bson:"warnings,omitempty"`
	CreatedBy string       `bson:"created_by"`
	CreatedAt time.Time    `bson:"created_at"`
}

func releaseToDoc(r *store.Release) releaseDoc {
	return releaseDoc{
		ID: r.ID, TenantID: r.TenantID, ProjectID: r.ProjectID, Version: r.Version, Notes: r.Notes, BlobKey: r.BlobKey,
		Size: r.Size, SHA256: r.SHA256, Image: imageInfoDoc(r.Image), Warnings: r.Warnings, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt,
	}
}

func releaseFromDoc(d releaseDoc) store.Release {
	return store.Release{
		ID: d.ID, TenantID: d.TenantID, ProjectID: d.ProjectID, Version: d.Version, Notes: d.Notes, BlobKey: d.BlobKey,
		Size: d.Size, SHA256: d.SHA256, Image: store.ImageInfo(d.Image), Warnings: d.Warnings, CreatedBy: d.CreatedBy, CreatedAt: utc(d.CreatedAt),
	}
}

// CreateRelease inserts r; a version already in the project is store.ErrConflict.
func (s *Store) CreateRelease(ctx context.Context, r *store.Release) error {
	store.PrepareCreate(&r.ID, &r.CreatedAt, nil)
	_, err := s.col(colReleases).InsertOne(ctx, releaseToDoc(r))
	return wrap(err, "create release %q of project %q", r.Version, r.ProjectID)
}

// Release returns one of a tenant's releases.
func (s *Store) Release(ctx context.Context, tenantID, id string) (store.Release, error) {
	r, err := findOne(ctx, s.col(colReleases), tenantKey(tenantID, id), releaseFromDoc)
	return r, wrap(err, "get release %q", id)
}

// ReleaseByVersion returns a project's release with version.
func (s *Store) ReleaseByVersion(ctx context.Context, tenantID, projectID, version string) (store.Release, error) {
	r, err := findOne(ctx, s.col(colReleases), bson.D{
		{Key: "tenant_id", Value: tenantID},
		{Key: "project_id", Value: projectID},
		{Key: "version", Value: version},
	}, releaseFromDoc)
	return r, wrap(err, "get release %q of project %q", version, projectID)
}

// ListReleases pages through a project's releases by ID.
func (s *Store) ListReleases(ctx context.Context, tenantID, projectID string, opts store.ListOptions) (store.Page[store.Release], error) {
	p, err := listPage(ctx, s.col(colReleases),
		pageQuery{filter: bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "project_id", Value: projectID}}, field: "_id", listOpts: opts},
		releaseFromDoc, func(r store.Release) string { return r.ID })
	return p, wrap(err, "list releases of project %q", projectID)
}

// UpdateReleaseNotes changes a release's notes.
func (s *Store) UpdateReleaseNotes(ctx context.Context, tenantID, id, notes string) error {
	res, err := s.col(colReleases).UpdateOne(ctx, tenantKey(tenantID, id),
		bson.D{{Key: "$set", Value: bson.D{{Key: "notes", Value: notes}}}})
	if err != nil {
		return wrap(err, "update notes of release %q", id)
	}
	if res.MatchedCount == 0 {
		return notFound("update notes of release %q", id)
	}
	return nil
}

// DeleteRelease removes one of a tenant's releases.
func (s *Store) DeleteRelease(ctx context.Context, tenantID, id string) error {
	return deleteOne(ctx, s.col(colReleases), tenantKey(tenantID, id), "release", id)
}
