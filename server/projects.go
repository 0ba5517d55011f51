package server

import (
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/ota"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/blob"
)

// Audit actions of the project, release and rollout routes.
const (
	auditProjectCreate = "project.create"
	auditProjectUpdate = "project.update"
	auditProjectDelete = "project.delete"
	auditReleaseCreate = "release.create"
	auditReleaseUpdate = "release.update"
	auditReleaseDelete = "release.delete"
	auditRolloutCreate = "rollout.create"
	auditRolloutPause  = "rollout.pause"
	auditRolloutResume = "rollout.resume"
	auditRolloutAbort  = "rollout.abort"
)

// signingResponse shows a project's update signing. Turning signing off is allowed and shown
// as unsafe: devices then install any image the broker hands them.
type signingResponse struct {
	Enabled   bool   `json:"enabled"`
	Unsafe    bool   `json:"unsafe,omitempty" doc:"true when signing is off"`
	Algorithm string `json:"algorithm,omitempty" doc:"ed25519"`
	PublicKey string `json:"public_key,omitempty" doc:"base64 Ed25519 public key, as in provisioning bundles"`
}

type projectResponse struct {
	ID              string          `json:"id"`
	Name            string          `json:"name"`
	Description     string          `json:"description"`
	RepositoryURL   string          `json:"repository_url,omitempty"`
	Signing         signingResponse `json:"signing"`
	VersionMismatch string          `json:"version_mismatch" doc:"warn or refuse: what an upload whose image version differs from the release version gets"`
	PublicDownloads bool            `json:"public_downloads" doc:"releases have a stable public download URL"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
}

func projectOf(p store.Project) projectResponse {
	r := projectResponse{
		ID: p.ID, Name: p.Name, Description: p.Description, RepositoryURL: p.RepositoryURL,
		VersionMismatch: string(p.VersionMismatch), PublicDownloads: p.PublicDownloads,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	if p.SigningEnabled {
		r.Signing = signingResponse{Enabled: true, Algorithm: "ed25519", PublicKey: base64.StdEncoding.EncodeToString(p.SigningPublicKey)}
	} else {
		r.Signing = signingResponse{Enabled: false, Unsafe: true}
	}
	return r
}

type signingRequest struct {
	Enabled *bool `json:"enabled,omitempty" doc:"false turns signing off (unsafe)"`
}

type projectRequest struct {
	Name            *string         `json:"name,omitempty" doc:"1 to 128 characters, unique in the tenant (required on create)"`
	Description     *string         `json:"description,omitempty"`
	RepositoryURL   *string         `json:"repository_url,omitempty"`
	Signing         *signingRequest `json:"signing,omitempty"`
	VersionMismatch *string         `json:"version_mismatch,omitempty" doc:"warn (default) or refuse"`
	PublicDownloads *bool           `json:"public_downloads,omitempty"`
}

func (r projectRequest) input() ota.ProjectInput {
	in := ota.ProjectInput{Name: r.Name, Description: r.Description, RepositoryURL: r.RepositoryURL, PublicDownloads: r.PublicDownloads}
	if r.Signing != nil {
		in.SigningEnabled = r.Signing.Enabled
	}
	if r.VersionMismatch != nil {
		p := store.VersionMismatchPolicy(*r.VersionMismatch)
		in.VersionMismatch = &p
	}
	return in
}

// otaReady fails with 503 when the OTA service is not configured.
func (s *Server) otaReady() error {
	if s.deps.OTA == nil {
		return &Error{Status: http.StatusServiceUnavailable, Message: "update services are not available"}
	}
	return nil
}

// otaError maps OTA service errors to API errors.
func otaError(err error) error {
	var (
		st  *ota.StateError
		img *ota.ImageError
	)
	switch {
	case errors.As(err, &img):
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_image", Message: img.Error()}
	case errors.As(err, &st):
		return &Error{Status: http.StatusConflict, Code: "conflict", Message: st.Reason}
	case errors.Is(err, blob.ErrTooLarge):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large", Message: "the image is larger than the upload limit", Err: err}
	}
	return err
}

// project loads the project named by the path in the route's tenant.
func (s *Server) project(c echo.Context) (store.Project, error) {
	id := c.Param("project")
	p, err := s.deps.Store.Project(c.Request().Context(), tenantFrom(c).Tenant.ID, id)
	if errors.Is(err, store.ErrNotFound) || len(id) > 64 {
		return store.Project{}, &Error{Status: http.StatusNotFound, Message: "project not found", Err: err}
	}
	return p, err
}

// listProjects serves GET /api/v1/tenants/:tenant/projects.
func (s *Server) listProjects(c echo.Context) error {
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	page, err := s.deps.Store.ListProjects(c.Request().Context(), tenantFrom(c).Tenant.ID, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(page, projectOf))
}

// createProject serves POST /api/v1/tenants/:tenant/projects.
func (s *Server) createProject(c echo.Context) error {
	if err := s.otaReady(); err != nil {
		return err
	}
	var req projectRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	p, err := s.deps.OTA.CreateProject(c.Request().Context(), tenantFrom(c).Tenant.ID, req.input())
	if err != nil {
		return otaError(err)
	}
	s.audit(c, auditProjectCreate, "project", p.ID, map[string]any{"name": p.Name, "signing": p.SigningEnabled})
	return c.JSON(http.StatusCreated, projectOf(p))
}

// getProject serves GET /api/v1/tenants/:tenant/projects/:project.
func (s *Server) getProject(c echo.Context) error {
	p, err := s.project(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, projectOf(p))
}

// updateProject serves PATCH /api/v1/tenants/:tenant/projects/:project.
func (s *Server) updateProject(c echo.Context) error {
	if err := s.otaReady(); err != nil {
		return err
	}
	p, err := s.project(c)
	if err != nil {
		return err
	}
	var req projectRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	p, err = s.deps.OTA.UpdateProject(c.Request().Context(), p, req.input())
	if err != nil {
		return otaError(err)
	}
	s.audit(c, auditProjectUpdate, "project", p.ID, map[string]any{
		"name": p.Name, "signing": p.SigningEnabled, "version_mismatch": string(p.VersionMismatch), "public_downloads": p.PublicDownloads,
	})
	return c.JSON(http.StatusOK, projectOf(p))
}

// deleteProject serves DELETE /api/v1/tenants/:tenant/projects/:project.
func (s *Server) deleteProject(c echo.Context) error {
	if err := s.otaReady(); err != nil {
		return err
	}
	p, err := s.project(c)
	if err != nil {
		return err
	}
	if err := s.deps.OTA.DeleteProject(c.Request().Context(), p.TenantID, p.ID); err != nil {
		return otaError(err)
	}
	s.audit(c, auditProjectDelete, "project", p.ID, map[string]any{"name": p.Name})
	return c.NoContent(http.StatusNoContent)
}
