package store

import (
	"context"
	"time"
)

// VersionMismatchPolicy says what happens when a release's version differs from the version
// recorded inside the uploaded image.
type VersionMismatchPolicy string

// Version mismatch policies.
const (
	MismatchWarn   VersionMismatchPolicy = "warn"
	MismatchRefuse VersionMismatchPolicy = "refuse"
)

// Project is one firmware with many releases; devices may be linked to it. Name is unique in
// its tenant. The Ed25519 private key is sealed with the master key; the public key goes into
// provisioning bundles so devices can verify update commands.
type Project struct {
	ID                  string
	TenantID            string
	Name                string
	Description         string
	RepositoryURL       string
	SigningEnabled      bool
	SigningPublicKey    []byte
	SigningKeySealed    []byte
	PublicDownloads     bool // a stable public URL per release, only when enabled
	VersionMismatch     VersionMismatchPolicy
	BugsnagAPIKeySealed []byte // overrides the tenant's key when set
	BugsnagReleaseStage string
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// ProjectStore manages projects.
type ProjectStore interface {
	// CreateProject inserts p; a taken name in the tenant is ErrConflict.
	CreateProject(ctx context.Context, p *Project) error
	Project(ctx context.Context, tenantID, id string) (Project, error)
	ListProjects(ctx context.Context, tenantID string, opts ListOptions) (Page[Project], error)
	// UpdateProject saves every field but the IDs and CreatedAt and sets UpdatedAt.
	UpdateProject(ctx context.Context, p *Project) error
	// DeleteProject removes the project with its releases and rollouts; its devices stay,
	// unlinked.
	DeleteProject(ctx context.Context, tenantID, id string) error
}

// ImageInfo is what the ESP32 application image says about itself: the chip from the extended
// header and the esp_app_desc_t block.
type ImageInfo struct {
	Chip        string // "esp32", "esp32s3", "esp32c3", …
	ProjectName string
	AppVersion  string
	IDFVersion  string
	BuildDate   string
	BuildTime   string
	ELFSHA256   string // hex
}

// Release is one version of a project's firmware. Version has the form v-x.y.z and is unique
// in its project; the binary lives in blob storage under BlobKey.
type Release struct {
	ID        string
	TenantID  string
	ProjectID string
	Version   string
	Notes     string
	BlobKey   string
	Size      int64
	SHA256    string // hex
	Image     ImageInfo
	// Warnings are what the upload found worth a person's attention (a version mismatch
	// the project allows), kept to be shown with the release.
	Warnings  []string
	CreatedBy string
	CreatedAt time.Time
}

// ReleaseStore manages releases.
type ReleaseStore interface {
	// CreateRelease inserts r; a version already in the project is ErrConflict.
	CreateRelease(ctx context.Context, r *Release) error
	Release(ctx context.Context, tenantID, id string) (Release, error)
	ReleaseByVersion(ctx context.Context, tenantID, projectID, version string) (Release, error)
	ListReleases(ctx context.Context, tenantID, projectID string, opts ListOptions) (Page[Release], error)
	// UpdateReleaseNotes changes the only mutable field of a release.
	UpdateReleaseNotes(ctx context.Context, tenantID, id, notes string) error
	DeleteRelease(ctx context.Context, tenantID, id string) error
}
