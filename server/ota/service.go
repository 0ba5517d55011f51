package ota

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/blob"
	"github.com/espadmin/espadmin/store/seal"
)

// Defaults of Options.
const (
	// DefaultMaxImageSize caps an uploaded image. The largest ESP32 OTA app partition in
	// common partition tables is well under it (ota_0/ota_1 of 16 MB flash are ~7.9 MB).
	DefaultMaxImageSize = 16 << 20
	// DefaultCommandTTL is how long an update command (and its signed URL) waits for an offline
	// device. Seven days is the longest an S3 presigned URL may live.
	DefaultCommandTTL = 7 * 24 * time.Hour
	// DefaultDownloadTTL is the lifetime of a download URL handed to a person.
	DefaultDownloadTTL = 15 * time.Minute
	// DefaultInterval is how often the engine looks at active rollouts.
	DefaultInterval = 10 * time.Second
	// DefaultFailureThreshold pauses a staged rollout when more than a fifth of its devices
	// failed.
	DefaultFailureThreshold = 0.2
)

// Store is the part of the store the OTA service uses.
type Store interface {
	store.ProjectStore
	store.ReleaseStore
	store.RolloutStore
	Device(ctx context.Context, tenantID, id string) (store.Device, error)
	ListDevices(ctx context.Context, tenantID string, f store.DeviceFilter, opts store.ListOptions) (store.Page[store.Device], error)
	Command(ctx context.Context, tenantID, id string) (store.Command, error)
	ListCommands(ctx context.Context, tenantID string, f store.CommandFilter, opts store.ListOptions) (store.Page[store.Command], error)
	TransitionCommand(ctx context.Context, tenantID, id string, t store.CommandTransition) (store.Command, error)
	ListTenants(ctx context.Context, opts store.ListOptions) (store.Page[store.Tenant], error)
}

var _ Store = store.Store(nil)

// Commander sends update commands through the fleet's command path (fleet.Commands).
type Commander interface {
	SendSystem(ctx context.Context, tenantID string, sc fleet.SystemCommand) (store.Command, error)
}

var _ Commander = (*fleet.Commands)(nil)

// Options are the collaborators and settings of Service.
type Options struct {
	Store    Store
	Blobs    blob.Store
	Keyring  *seal.Keyring
	Commands Commander
	Hub      *fleet.Hub
	Logger   *slog.Logger
	Now      func() time.Time

	MaxImageSize int64
	CommandTTL   time.Duration
	DownloadTTL  time.Duration
	Interval     time.Duration
}

// Service manages projects, releases and rollouts.
type Service struct {
	o   Options
	sym symbols
}

// New returns the OTA service; Run starts its rollout engine.
func New(o Options) *Service {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxImageSize <= 0 {
		o.MaxImageSize = DefaultMaxImageSize
	}
	if o.CommandTTL <= 0 {
		o.CommandTTL = DefaultCommandTTL
	}
	if o.DownloadTTL <= 0 {
		o.DownloadTTL = DefaultDownloadTTL
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	return &Service{o: o, sym: newSymbols()}
}

func (s *Service) eventHub() *fleet.Hub { return s.o.Hub }

func (s *Service) commander() (Commander, error) {
	if s.o.Commands == nil {
		return nil, errors.New("ota: the command service is not set")
	}
	return s.o.Commands, nil
}

// MaxImageSize is the upload cap in bytes.
func (s *Service) MaxImageSize() int64 { return s.o.MaxImageSize }

func (s *Service) blobStore() (blob.Store, error) {
	if s.o.Blobs == nil {
		return nil, errors.New("ota: firmware storage is not open")
	}
	return s.o.Blobs, nil
}

func (s *Service) now() time.Time { return store.Timestamp(s.o.Now()) }

// StateError is a request that conflicts with the current state (a release in use, a
// rollout that is not paused); the API answers 409.
type StateError struct{ Reason string }

func (e *StateError) Error() string { return "ota: " + e.Reason }

// --- Projects ---

// ProjectInput are the editable fields of a project. Nil pointers keep the current value.
type ProjectInput struct {
	Name            *string
	Description     *string
	RepositoryURL   *string
	SigningEnabled  *bool
	VersionMismatch *store.VersionMismatchPolicy
	PublicDownloads *bool
}

func keyAD(tenantID, projectID string) []byte {
	return []byte("ota-signing-key\x00" + tenantID + "\x00" + projectID)
}

// CreateProject creates a project with a fresh Ed25519 signing key pair; the private key is
// sealed with the master key, bound to the tenant and project.
func (s *Service) CreateProject(ctx context.Context, tenantID string, in ProjectInput) (store.Project, error) {
	p := store.Project{ID: store.NewID(), TenantID: tenantID, SigningEnabled: true, VersionMismatch: store.MismatchWarn}
	if err := applyProject(&p, in); err != nil {
		return store.Project{}, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return store.Project{}, err
	}
	sealed, err := s.o.Keyring.Seal(priv.Seed(), keyAD(tenantID, p.ID))
	if err != nil {
		return store.Project{}, err
	}
	p.SigningPublicKey, p.SigningKeySealed = pub, sealed
	now := s.now()
	p.CreatedAt, p.UpdatedAt = now, now
	if err := s.o.Store.CreateProject(ctx, &p); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Project{}, store.Invalid("name", "a project with this name exists")
		}
		return store.Project{}, err
	}
	return p, nil
}

// UpdateProject changes a project's editable fields.
func (s *Service) UpdateProject(ctx context.Context, p store.Project, in ProjectInput) (store.Project, error) {
	if err := applyProject(&p, in); err != nil {
		return store.Project{}, err
	}
	p.UpdatedAt = s.now()
	if err := s.o.Store.UpdateProject(ctx, &p); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Project{}, store.Invalid("name", "a project with this name exists")
		}
		return store.Project{}, err
	}
	return p, nil
}

// DeleteProject deletes a project with its releases' binaries, releases and rollouts.
func (s *Service) DeleteProject(ctx context.Context, tenantID, id string) error {
	rels, err := s.allReleases(ctx, tenantID, id)
	if err != nil {
		return err
	}
	if err := s.o.Store.DeleteProject(ctx, tenantID, id); err != nil {
		return err
	}
	if b, err := s.blobStore(); err == nil {
		for _, r := range rels {
			if err := b.Delete(ctx, r.BlobKey); err != nil {
				s.o.Logger.Warn("delete release binary", "tenant_id", tenantID, "release_id", r.ID, "error", err)
			}
		}
	}
	return nil
}

func applyProject(p *store.Project, in ProjectInput) error {
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if n == "" || len(n) > 128 || strings.ContainsAny(n, "\x00\n\r\t") {
			return store.Invalid("name", "must be 1 to 128 characters without control characters")
		}
		p.Name = n
	}
	if p.Name == "" {
		return store.Invalid("name", "is required")
	}
	if in.Description != nil {
		if len(*in.Description) > 2000 {
			return store.Invalid("description", "must be at most 2000 characters")
		}
		p.Description = *in.Description
	}
	if in.RepositoryURL != nil {
		u := strings.TrimSpace(*in.RepositoryURL)
		if u != "" && (len(u) > 512 || !(strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://")) || strings.ContainsAny(u, " \n\r\t")) {
			return store.Invalid("repository_url", "must be an http(s) URL of at most 512 characters")
		}
		p.RepositoryURL = u
	}
	if in.SigningEnabled != nil {
		p.SigningEnabled = *in.SigningEnabled
	}
	if in.VersionMismatch != nil {
		switch *in.VersionMismatch {
		case store.MismatchWarn, store.MismatchRefuse:
			p.VersionMismatch = *in.VersionMismatch
		default:
			return store.Invalid("version_mismatch", "must be warn or refuse")
		}
	}
	if in.PublicDownloads != nil {
		p.PublicDownloads = *in.PublicDownloads
	}
	return nil
}

// signingKey opens a project's private key.
func (s *Service) signingKey(p store.Project) (ed25519.PrivateKey, error) {
	seed, err := s.o.Keyring.Open(p.SigningKeySealed, keyAD(p.TenantID, p.ID))
	if err != nil {
		return nil, fmt.Errorf("ota: open signing key of project %q: %w", p.ID, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("ota: signing key of project %q has %d bytes", p.ID, len(seed))
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// --- Releases ---

// ReleaseInput is one upload.
type ReleaseInput struct {
	Version   string
	Notes     string
	CreatedBy string
	// Body is the image; it is read once, streamed into blob storage.
	Body io.Reader
}

// Uploaded is a stored release and the warnings about it (a version mismatch the project
// tolerates).
type Uploaded struct {
	Release  store.Release
	Image    Image
	Warnings []string
}

// MaxNotes bounds release notes.
const MaxNotes = 10000

// ReleaseBlobKey is where a release's binary lives in blob storage.
func ReleaseBlobKey(tenantID, releaseID string) string {
	return "tenants/" + tenantID + "/releases/" + releaseID + ".bin"
}

// Upload validates and stores a release. The image is validated while it streams into blob
// storage; an invalid, oversized, interrupted or conflicting upload leaves nothing behind.
func (s *Service) Upload(ctx context.Context, p store.Project, in ReleaseInput) (Uploaded, error) {
	if !protocol.ValidReleaseVersion(in.Version) {
		return Uploaded{}, store.Invalid("version", "must be of the form v-x.y.z, e.g. v-1.4.0")
	}
	if len(in.Notes) > MaxNotes {
		return Uploaded{}, store.Invalid("notes", fmt.Sprintf("must be at most %d characters", MaxNotes))
	}
	if _, err := s.o.Store.ReleaseByVersion(ctx, p.TenantID, p.ID, in.Version); err == nil {
		return Uploaded{}, &StateError{Reason: "release " + in.Version + " already exists in this project"}
	} else if !errors.Is(err, store.ErrNotFound) {
		return Uploaded{}, err
	}
	blobs, err := s.blobStore()
	if err != nil {
		return Uploaded{}, err
	}
	// A project's releases all target one chip: the first release fixes it.
	wantChip := ""
	if rels, err := s.o.Store.ListReleases(ctx, p.TenantID, p.ID, store.ListOptions{Limit: 1}); err != nil {
		return Uploaded{}, err
	} else if len(rels.Items) > 0 {
		wantChip = rels.Items[0].Image.Chip
	}
	var warnings []string
	parser := NewParser(s.o.MaxImageSize)
	parser.OnAppDesc = func(img *Image) error {
		if wantChip != "" && img.Chip != wantChip {
			return imageErr("the image is built for %s but this project's releases are for %s", img.Chip, wantChip)
		}
		if img.App.Version != in.Version {
			msg := fmt.Sprintf("the image's own version (esp_app_desc_t.version) is %q, not %q: devices will report %q after the update, so set PROJECT_VER to the release version", img.App.Version, in.Version, img.App.Version)
			if p.VersionMismatch == store.MismatchRefuse {
				return imageErr("%s", msg)
			}
			warnings = append(warnings, msg)
		}
		return nil
	}
	id := store.NewID()
	key := ReleaseBlobKey(p.TenantID, id)
	vr := NewValidatingReader(in.Body, parser)
	obj, err := blobs.Put(ctx, key, vr, s.o.MaxImageSize)
	if err != nil {
		return Uploaded{}, err
	}
	img, ok := vr.Image()
	if !ok {
		// Put stopped before the end without an error (it cannot, but never store a file
		// that was not validated to its end).
		_ = blobs.Delete(context.WithoutCancel(ctx), key)
		return Uploaded{}, imageErr("the upload ended before the image was validated")
	}
	r := store.Release{
		ID: id, TenantID: p.TenantID, ProjectID: p.ID, Version: in.Version, Notes: in.Notes,
		BlobKey: key, Size: obj.Size, SHA256: obj.SHA256, Warnings: warnings, CreatedBy: in.CreatedBy, CreatedAt: s.now(),
		Image: store.ImageInfo{
			Chip: img.Chip, ProjectName: img.App.ProjectName, AppVersion: img.App.Version,
			IDFVersion: img.App.IDFVersion, BuildDate: img.App.Date, BuildTime: img.App.Time,
			ELFSHA256: fmt.Sprintf("%x", img.App.ELFSHA256[:]),
		},
	}
	if err := s.o.Store.CreateRelease(ctx, &r); err != nil {
		_ = blobs.Delete(context.WithoutCancel(ctx), key)
		if errors.Is(err, store.ErrConflict) {
			return Uploaded{}, &StateError{Reason: "release " + in.Version + " already exists in this project"}
		}
		return Uploaded{}, err
	}
	return Uploaded{Release: r, Image: img, Warnings: warnings}, nil
}

// allReleases lists every release of a project.
func (s *Service) allReleases(ctx context.Context, tenantID, projectID string) ([]store.Release, error) {
	var out []store.Release
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := s.o.Store.ListReleases(ctx, tenantID, projectID, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			return out, nil
		}
		opts.Cursor = page.NextCursor
	}
}

// Releases lists a project's releases, newest version first.
func (s *Service) Releases(ctx context.Context, tenantID, projectID string) ([]store.Release, error) {
	rels, err := s.allReleases(ctx, tenantID, projectID)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rels, func(a, b store.Release) int {
		va, _ := protocol.ParseReleaseVersion(a.Version)
		vb, _ := protocol.ParseReleaseVersion(b.Version)
		return vb.Compare(va)
	})
	return rels, nil
}

// DeleteRelease deletes a release and its binary; a release used by an active or paused
// rollout is refused.
func (s *Service) DeleteRelease(ctx context.Context, r store.Release) error {
	for _, st := range []store.RolloutState{store.RolloutActive, store.RolloutPaused} {
		opts := store.ListOptions{Limit: store.MaxPageSize}
		for { // every page: a project may hold more unfinished rollouts than one page
			page, err := s.o.Store.ListRollouts(ctx, r.TenantID, store.RolloutFilter{ProjectID: r.ProjectID, State: st}, opts)
			if err != nil {
				return err
			}
			for _, ro := range page.Items {
				if ro.ReleaseID == r.ID {
					return &StateError{Reason: "rollout " + ro.ID + " (" + string(ro.State) + ") uses this release: abort it first"}
				}
			}
			if page.NextCursor == "" {
				break
			}
			opts.Cursor = page.NextCursor
		}
	}
	if err := s.o.Store.DeleteRelease(ctx, r.TenantID, r.ID); err != nil {
		return err
	}
	if b, err := s.blobStore(); err == nil {
		for _, key := range []string{r.BlobKey, ELFBlobKey(r.TenantID, r.ID)} {
			if err := b.Delete(ctx, key); err != nil {
				s.o.Logger.Warn("delete release binary", "tenant_id", r.TenantID, "release_id", r.ID, "key", key, "error", err)
			}
		}
		s.sym.cache.Remove(r.TenantID + "/" + r.ID)
	}
	return nil
}

// TenantBlobKeys returns where every release binary of tenantID lives in blob storage; the
// server lists them before deleting the tenant and hands them to DeleteBlobs afterwards.
func (s *Service) TenantBlobKeys(ctx context.Context, tenantID string) ([]string, error) {
	var keys []string
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := s.o.Store.ListProjects(ctx, tenantID, opts)
		if err != nil {
			return nil, err
		}
		for _, p := range page.Items {
			rels, err := s.allReleases(ctx, tenantID, p.ID)
			if err != nil {
				return nil, err
			}
			for _, r := range rels {
				keys = append(keys, r.BlobKey, ELFBlobKey(tenantID, r.ID))
			}
		}
		if page.NextCursor == "" {
			return keys, nil
		}
		opts.Cursor = page.NextCursor
	}
}

// DeleteBlobs removes the binaries at keys (of a deleted tenant). A signed download URL
// issued earlier stops serving with them. A failure is logged and the rest are still tried.
func (s *Service) DeleteBlobs(ctx context.Context, tenantID string, keys []string) {
	b, err := s.blobStore()
	if err != nil {
		if len(keys) > 0 {
			s.o.Logger.Warn("delete release binaries of a deleted tenant", "tenant_id", tenantID, "error", err)
		}
		return
	}
	for _, k := range keys {
		if err := b.Delete(ctx, k); err != nil {
			s.o.Logger.Warn("delete release binary of a deleted tenant", "tenant_id", tenantID, "key", k, "error", err)
		}
	}
}

// DownloadURL returns a signed URL for a release's binary, valid for ttl (DownloadTTL when 0),
// and when it expires.
func (s *Service) DownloadURL(ctx context.Context, r store.Release, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		ttl = s.o.DownloadTTL
	}
	b, err := s.blobStore()
	if err != nil {
		return "", time.Time{}, err
	}
	// Taken before signing, so the stated expiry is never later than the URL's own.
	expires := s.o.Now().Add(ttl)
	u, err := b.SignedURL(ctx, r.BlobKey, ttl)
	if err != nil {
		return "", time.Time{}, err
	}
	return u, expires, nil
}
