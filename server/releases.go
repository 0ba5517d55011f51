package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/ota"
	"github.com/espadmin/espadmin/store"
)

// uploadDeadline bounds one firmware upload; the server's ReadTimeout is too short for a
// 16 MiB image over a slow link.
const uploadDeadline = 15 * time.Minute

// multipartOverhead is what a multipart upload may carry beyond the image (boundaries, part
// headers, the small form fields).
const multipartOverhead = 64 << 10

type imageInfoResponse struct {
	Chip        string `json:"chip" doc:"esp32, esp32s2, esp32s3, esp32c3, esp32c6, esp32h2, esp32c2, …"`
	ProjectName string `json:"project_name"`
	AppVersion  string `json:"app_version" doc:"esp_app_desc_t.version"`
	IDFVersion  string `json:"idf_version"`
	BuildDate   string `json:"build_date"`
	BuildTime   string `json:"build_time"`
	ELFSHA256   string `json:"elf_sha256"`
}

type releaseResponse struct {
	ID        string            `json:"id"`
	ProjectID string            `json:"project_id"`
	Version   string            `json:"version"`
	Notes     string            `json:"notes"`
	Size      int64             `json:"size"`
	SHA256    string            `json:"sha256"`
	Image     imageInfoResponse `json:"image"`
	Warnings  []string          `json:"warnings" doc:"what the upload found worth attention, e.g. the image's own version differs"`
	CreatedBy string            `json:"created_by,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	PublicURL string            `json:"public_url,omitempty" doc:"stable download URL, only when the project enables public downloads"`
}

func (s *Server) releaseOf(p store.Project) func(store.Release) releaseResponse {
	return func(r store.Release) releaseResponse {
		out := releaseResponse{
			ID: r.ID, ProjectID: r.ProjectID, Version: r.Version, Notes: r.Notes, Size: r.Size, SHA256: r.SHA256,
			CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, Warnings: r.Warnings,
			Image: imageInfoResponse{Chip: r.Image.Chip, ProjectName: r.Image.ProjectName, AppVersion: r.Image.AppVersion,
				IDFVersion: r.Image.IDFVersion, BuildDate: r.Image.BuildDate, BuildTime: r.Image.BuildTime, ELFSHA256: r.Image.ELFSHA256},
		}
		if out.Warnings == nil {
			out.Warnings = []string{}
		}
		if p.PublicDownloads {
			out.PublicURL = s.publicURL + "/api/v1/public/tenants/" + r.TenantID + "/releases/" + r.ID + "/firmware.bin"
		}
		return out
	}
}

type releaseCreatedResponse struct {
	releaseResponse
	Warnings []string         `json:"warnings" doc:"the release's warnings, and whether its rollout failed to start"`
	Rollout  *rolloutResponse `json:"rollout,omitempty" doc:"the rollout started with the release, when asked for"`
}

type releaseListResponse struct {
	Items []releaseResponse `json:"items" doc:"newest version first"`
}

type updateReleaseRequest struct {
	Notes *string `json:"notes,omitempty"`
}

type downloadResponse struct {
	URL       string    `json:"url" doc:"signed; needs no other credential"`
	ExpiresAt time.Time `json:"expires_at"`
}

// releaseUploadQuery documents the upload's parameters. With a multipart body they may also
// be form fields sent before the file part.
type releaseUploadQuery struct {
	Version          string `query:"version" doc:"v-x.y.z (required)"`
	Notes            string `query:"notes" doc:"release notes"`
	Rollout          string `query:"rollout" doc:"start a rollout: all, tag:TAG, percent:N, devices:ID,ID or a JSON rollout object"`
	Stages           string `query:"stages" doc:"e.g. 5,25,100"`
	FailureThreshold string `query:"failure_threshold" doc:"0..1 (default 0.2)"`
	StageSoakSeconds string `query:"stage_soak_seconds" doc:"0..604800: how long a finished stage waits before the next one starts"`
	RequireApproval  string `query:"require_approval" doc:"true: pause at the end of every stage but the last until resumed"`
}

// release loads the release named by the path, in the path's project.
func (s *Server) release(c echo.Context) (store.Project, store.Release, error) {
	p, err := s.project(c)
	if err != nil {
		return p, store.Release{}, err
	}
	r, err := s.deps.Store.Release(c.Request().Context(), p.TenantID, c.Param("release"))
	if errors.Is(err, store.ErrNotFound) || err == nil && r.ProjectID != p.ID {
		return p, store.Release{}, &Error{Status: http.StatusNotFound, Message: "release not found", Err: err}
	}
	return p, r, err
}

// listReleases serves GET /api/v1/tenants/:tenant/projects/:project/releases.
func (s *Server) listReleases(c echo.Context) error {
	if err := s.otaReady(); err != nil {
		return err
	}
	p, err := s.project(c)
	if err != nil {
		return err
	}
	rels, err := s.deps.OTA.Releases(c.Request().Context(), p.TenantID, p.ID)
	if err != nil {
		return err
	}
	conv := s.releaseOf(p)
	out := releaseListResponse{Items: make([]releaseResponse, len(rels))}
	for i, r := range rels {
		out.Items[i] = conv(r)
	}
	return c.JSON(http.StatusOK, out)
}

// releaseBodyLimit is the body limit of the upload route: the image cap plus room for a
// multipart envelope.
func (s *Server) releaseBodyLimit() int64 {
	if s.deps.OTA == nil {
		return DefaultBodyLimit
	}
	return s.deps.OTA.MaxImageSize() + multipartOverhead
}

// createRelease serves POST /api/v1/tenants/:tenant/projects/:project/releases: the image as
// a raw application/octet-stream body (parameters in the query) or as the "file" part of a
// multipart/form-data body (parameters as earlier form fields or in the query). Either way it
// streams into blob storage while it is validated.
func (s *Server) createRelease(c echo.Context) error {
	if err := s.otaReady(); err != nil {
		return err
	}
	p, err := s.project(c)
	if err != nil {
		return err
	}
	req := c.Request()
	params := map[string]string{}
	for _, k := range []string{"version", "notes", "rollout", "stages", "failure_threshold", "stage_soak_seconds", "require_approval"} {
		params[k] = c.QueryParam(k)
	}
	body, err := uploadBody(c, "the image", params)
	if err != nil {
		return err
	}
	for name, v := range params {
		if p := textProblem(v); p != "" {
			return store.Invalid(name, p)
		}
	}
	tc := tenantFrom(c)
	var rollout *ota.RolloutInput
	if params["rollout"] != "" {
		ri, err := parseRolloutSpec(params["rollout"], params["stages"], params["failure_threshold"])
		if err != nil {
			return err
		}
		if err := parseStageWaits(&ri, params["stage_soak_seconds"], params["require_approval"]); err != nil {
			return err
		}
		rollout = &ri
	}
	ctx := req.Context()
	up, err := s.deps.OTA.Upload(ctx, p, ota.ReleaseInput{
		Version: params["version"], Notes: params["notes"], CreatedBy: createdByOf(tc), Body: body,
	})
	if err != nil {
		return uploadReadError(otaError(err))
	}
	s.audit(c, auditReleaseCreate, "release", up.Release.ID, map[string]any{
		"project_id": p.ID, "version": up.Release.Version, "size": up.Release.Size, "sha256": up.Release.SHA256, "chip": up.Release.Image.Chip,
	})
	out := releaseCreatedResponse{releaseResponse: s.releaseOf(p)(up.Release), Warnings: up.Warnings}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	if rollout != nil {
		rollout.ReleaseID, rollout.CreatedBy = up.Release.ID, createdByOf(tc)
		r, err := s.deps.OTA.CreateRollout(ctx, tc.Tenant.ID, *rollout)
		if err != nil {
			// The release is stored; say so rather than fail the whole request.
			out.Warnings = append(out.Warnings, "the rollout was not started: "+otaError(err).Error())
		} else {
			s.audit(c, auditRolloutCreate, "rollout", r.ID, map[string]any{"release_id": r.ReleaseID, "target": string(r.Target.Kind), "stages": r.Stages})
			ro, err := s.rolloutOf(c, r)
			if err != nil {
				return err
			}
			out.Rollout = &ro
		}
	}
	return c.JSON(http.StatusCreated, out)
}

// uploadBody extends the request's deadlines for a long upload and returns the uploaded file:
// the raw body (application/octet-stream), or the "file" part of multipart/form-data, reading
// the form fields before it that params names into params (each up to ota.MaxNotes bytes).
// what names the file in the 415 message.
func uploadBody(c echo.Context, what string, params map[string]string) (io.Reader, error) {
	req := c.Request()
	_ = http.NewResponseController(c.Response().Writer).SetReadDeadline(time.Now().Add(uploadDeadline))
	_ = http.NewResponseController(c.Response().Writer).SetWriteDeadline(time.Now().Add(uploadDeadline))
	mt, mparams, _ := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	switch mt {
	case echo.MIMEOctetStream:
		return req.Body, nil
	case echo.MIMEMultipartForm:
		mr := multipart.NewReader(req.Body, mparams["boundary"])
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil, store.Invalid("file", "is required (a part named file)")
			}
			if err != nil {
				return nil, uploadReadError(err)
			}
			name := part.FormName()
			if name == "file" {
				return part, nil
			}
			if _, known := params[name]; known {
				v, err := io.ReadAll(io.LimitReader(part, ota.MaxNotes+1))
				if err != nil {
					return nil, uploadReadError(err)
				}
				params[name] = string(v)
			}
		}
	default:
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: "send " + what + " as application/octet-stream (parameters in the query) or as the file part of multipart/form-data"}
	}
}

// uploadReadError keeps the size-limit error of an oversized body as 413.
func uploadReadError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return mbe
	}
	return err
}

func createdByOf(tc tenantContext) string {
	if tc.Principal.UserID != "" {
		return tc.Principal.UserID
	}
	return "token:" + tc.Principal.TokenID
}

// parseRolloutSpec reads a rollout from the short form (all, tag:X, percent:N, devices:a,b)
// or a JSON rollout object, with stages and threshold from their own parameters.
func parseRolloutSpec(spec, stages, threshold string) (ota.RolloutInput, error) {
	bad := func(field, msg string) error { return store.Invalid(field, msg) }
	if strings.HasPrefix(strings.TrimSpace(spec), "{") {
		var req createRolloutRequest
		dec := json.NewDecoder(strings.NewReader(spec))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return ota.RolloutInput{}, bad("rollout", "must be all, tag:TAG, percent:N, devices:ID,… or a JSON rollout object: "+err.Error())
		}
		if _, ok := nulField([]byte(spec)); ok {
			return ota.RolloutInput{}, bad("rollout", msgNUL)
		}
		return req.input(), nil
	}
	var in ota.RolloutInput
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "all":
		in.Target.Kind = store.TargetAll
	case "tag":
		in.Target = store.RolloutTarget{Kind: store.TargetTag, Tag: arg}
	case "percent":
		n, err := strconv.Atoi(arg)
		if err != nil {
			return in, bad("rollout", "percent:N needs a number from 1 to 100")
		}
		in.Target = store.RolloutTarget{Kind: store.TargetPercent, Percent: n}
	case "devices":
		in.Target = store.RolloutTarget{Kind: store.TargetDevices, DeviceIDs: strings.Split(arg, ",")}
	default:
		return in, bad("rollout", "must be all, tag:TAG, percent:N, devices:ID,… or a JSON rollout object")
	}
	if stages != "" {
		for _, p := range strings.Split(stages, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil {
				return in, bad("stages", "must be comma-separated percentages, e.g. 5,25,100")
			}
			in.Stages = append(in.Stages, n)
		}
	}
	if threshold != "" {
		f, err := strconv.ParseFloat(threshold, 64)
		if err != nil {
			return in, bad("failure_threshold", "must be a number from 0 to 1")
		}
		in.FailureThreshold = &f
	}
	return in, nil
}

// parseStageWaits reads the soak time and approval of a rollout started with an upload.
func parseStageWaits(in *ota.RolloutInput, soak, approval string) error {
	if soak != "" {
		n, err := strconv.ParseInt(soak, 10, 64)
		if err != nil {
			return store.Invalid("stage_soak_seconds", "must be a whole number of seconds from 0 to 604800")
		}
		in.StageSoak = soakOf(n)
	}
	if approval != "" {
		b, err := strconv.ParseBool(approval)
		if err != nil {
			return store.Invalid("require_approval", "must be true or false")
		}
		in.RequireApproval = b
	}
	return nil
}

// getRelease serves GET /api/v1/tenants/:tenant/projects/:project/releases/:release.
func (s *Server) getRelease(c echo.Context) error {
	p, r, err := s.release(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.releaseOf(p)(r))
}

// updateRelease serves PATCH …/releases/:release: the notes are the only mutable field.
func (s *Server) updateRelease(c echo.Context) error {
	p, r, err := s.release(c)
	if err != nil {
		return err
	}
	var req updateReleaseRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Notes != nil {
		if len(*req.Notes) > ota.MaxNotes {
			return store.Invalid("notes", fmt.Sprintf("must be at most %d characters", ota.MaxNotes))
		}
		if err := s.deps.Store.UpdateReleaseNotes(c.Request().Context(), r.TenantID, r.ID, *req.Notes); err != nil {
			return err
		}
		r.Notes = *req.Notes
		s.audit(c, auditReleaseUpdate, "release", r.ID, map[string]any{"version": r.Version})
	}
	return c.JSON(http.StatusOK, s.releaseOf(p)(r))
}

// deleteRelease serves DELETE …/releases/:release; refused (409) while a rollout that is
// active or paused uses it.
func (s *Server) deleteRelease(c echo.Context) error {
	if err := s.otaReady(); err != nil {
		return err
	}
	_, r, err := s.release(c)
	if err != nil {
		return err
	}
	if err := s.deps.OTA.DeleteRelease(c.Request().Context(), r); err != nil {
		return otaError(err)
	}
	s.audit(c, auditReleaseDelete, "release", r.ID, map[string]any{"version": r.Version})
	return c.NoContent(http.StatusNoContent)
}

// releaseDownload serves GET …/releases/:release/download: a signed, expiring URL.
func (s *Server) releaseDownload(c echo.Context) error {
	if err := s.otaReady(); err != nil {
		return err
	}
	_, r, err := s.release(c)
	if err != nil {
		return err
	}
	u, exp, err := s.deps.OTA.DownloadURL(c.Request().Context(), r, 0)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, downloadResponse{URL: u, ExpiresAt: exp})
}

// publicRelease serves GET /api/v1/public/tenants/:tenant/releases/:release/firmware.bin: a
// stable URL that redirects to a fresh signed one, only for projects with public downloads.
// Anything else is 404, so the route reveals nothing about other releases.
func (s *Server) publicRelease(c echo.Context) error {
	notFound := &Error{Status: http.StatusNotFound, Message: "release not found"}
	if s.deps.OTA == nil {
		return notFound
	}
	ctx := c.Request().Context()
	tenantID, id := c.Param("tenant"), c.Param("release")
	if len(tenantID) > 64 || len(id) > 64 {
		return notFound
	}
	r, err := s.deps.Store.Release(ctx, tenantID, id)
	if err != nil {
		return notFound
	}
	p, err := s.deps.Store.Project(ctx, tenantID, r.ProjectID)
	if err != nil || !p.PublicDownloads {
		return notFound
	}
	u, _, err := s.deps.OTA.DownloadURL(ctx, r, 0)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, u)
}
