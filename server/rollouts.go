package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/ota"
	"github.com/espadmin/espadmin/store"
)

type rolloutTargetWire struct {
	Kind      string   `json:"kind" doc:"all, tag, devices or percent"`
	Tag       string   `json:"tag,omitempty"`
	DeviceIDs []string `json:"device_ids,omitempty"`
	Percent   int      `json:"percent,omitempty" doc:"1..100: a deterministic cohort from a hash of device and rollout IDs"`
}

type rolloutResponse struct {
	ID               string            `json:"id"`
	ProjectID        string            `json:"project_id"`
	ReleaseID        string            `json:"release_id"`
	Version          string            `json:"version"`
	Target           rolloutTargetWire `json:"target"`
	Stages           []int             `json:"stages" doc:"percentages of the target, e.g. [5,25,100]"`
	CurrentStage     int               `json:"current_stage" doc:"index into stages"`
	FailureThreshold float64           `json:"failure_threshold" doc:"fraction of failed devices above which the rollout pauses itself"`
	StageSoakSeconds int64             `json:"stage_soak_seconds" doc:"how long a finished stage waits before the next one starts"`
	RequireApproval  bool              `json:"require_approval" doc:"the rollout pauses with reason \"awaiting approval\" at the end of every stage but the last; resume approves"`
	StageDoneAt      *time.Time        `json:"stage_done_at,omitempty" doc:"when every device of the current stage had finished (the soak counts from it)"`
	NextStageAt      *time.Time        `json:"next_stage_at,omitempty" doc:"when a soaking stage's successor starts (or asks for approval)"`
	State            string            `json:"state" doc:"active, paused, aborted or completed"`
	PauseReason      string            `json:"pause_reason,omitempty"`
	Totals           map[string]int64  `json:"totals" doc:"devices per state: pending, downloading, downloaded, installing, rebooting, succeeded, failed, skipped"`
	CreatedBy        string            `json:"created_by,omitempty"`
	CreatedAt        time.Time         `json:"created_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
}

type rolloutDeviceResponse struct {
	RolloutID string    `json:"rollout_id"`
	DeviceID  string    `json:"device_id"`
	State     string    `json:"state"`
	Progress  int       `json:"progress" doc:"percent downloaded"`
	Reason    string    `json:"reason,omitempty" doc:"why it failed: hash_mismatch, bad_signature, download_error, no_space, boot_failed_rolled_back, …"`
	CommandID string    `json:"command_id,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

func rolloutDeviceOf(d store.RolloutDevice) rolloutDeviceResponse {
	return rolloutDeviceResponse{RolloutID: d.RolloutID, DeviceID: d.DeviceID, State: string(d.State), Progress: d.Progress,
		Reason: d.Reason, CommandID: d.CommandID, UpdatedAt: d.UpdatedAt}
}

type rolloutList struct {
	Items      []rolloutResponse `json:"items"`
	NextCursor string            `json:"next_cursor"`
}

type deviceUpdatesResponse struct {
	Items []rolloutDeviceResponse `json:"items"`
}

type createRolloutRequest struct {
	ReleaseID        string            `json:"release_id,omitempty" doc:"required with POST /rollouts; implied in a release upload"`
	Target           rolloutTargetWire `json:"target"`
	Stages           []int             `json:"stages,omitempty"`
	FailureThreshold *float64          `json:"failure_threshold,omitempty"`
	StageSoakSeconds int64             `json:"stage_soak_seconds,omitempty" doc:"0 to 604800: how long a finished stage waits before the next one starts"`
	RequireApproval  bool              `json:"require_approval,omitempty" doc:"pause at the end of every stage but the last until resumed"`
}

func (r createRolloutRequest) input() ota.RolloutInput {
	return ota.RolloutInput{
		ReleaseID: r.ReleaseID, Stages: r.Stages, FailureThreshold: r.FailureThreshold,
		StageSoak: soakOf(r.StageSoakSeconds), RequireApproval: r.RequireApproval,
		Target: store.RolloutTarget{Kind: store.TargetKind(r.Target.Kind), Tag: r.Target.Tag, DeviceIDs: r.Target.DeviceIDs, Percent: r.Target.Percent},
	}
}

type rolloutPreviewResponse struct {
	Version        string `json:"version"`
	Devices        int    `json:"devices" doc:"devices the rollout would target"`
	FirstStage     int    `json:"first_stage" doc:"devices of its first stage"`
	AlreadyRunning int    `json:"already_running" doc:"target devices already on the version (they are skipped)"`
}

// rolloutInput reads the body of POST /rollouts and /rollouts/preview.
func (s *Server) rolloutInput(c echo.Context) (ota.RolloutInput, error) {
	if err := s.otaReady(); err != nil {
		return ota.RolloutInput{}, err
	}
	var req createRolloutRequest
	if err := decodeJSON(c, &req); err != nil {
		return ota.RolloutInput{}, err
	}
	if req.ReleaseID == "" {
		return ota.RolloutInput{}, store.Invalid("release_id", "is required")
	}
	return req.input(), nil
}

// previewRollout serves POST /api/v1/tenants/:tenant/rollouts/preview: what a rollout would
// reach, for the confirmation a person sees before starting it.
func (s *Server) previewRollout(c echo.Context) error {
	in, err := s.rolloutInput(c)
	if err != nil {
		return err
	}
	p, err := s.deps.OTA.PreviewRollout(c.Request().Context(), tenantFrom(c).Tenant.ID, in)
	if err != nil {
		return otaError(err)
	}
	return c.JSON(http.StatusOK, rolloutPreviewResponse{Version: p.Version, Devices: p.Devices, FirstStage: p.FirstStage, AlreadyRunning: p.AlreadyRunning})
}

type resumeRolloutRequest struct {
	FailureThreshold *float64 `json:"failure_threshold,omitempty" doc:"replaces the threshold; raise it to continue past the failures that paused the rollout"`
}

// rolloutQuery documents the rollout list's filters.
type rolloutQuery struct {
	Project   string `query:"project" doc:"project ID"`
	State     string `query:"state" doc:"active, paused, aborted or completed"`
	pageQuery        // newest first
}

// soakOf converts seconds to a soak time; values out of range stay out of range (the OTA
// service refuses them with the field's name).
func soakOf(seconds int64) time.Duration {
	if seconds < 0 {
		return -1
	}
	if seconds > int64(ota.MaxStageSoak/time.Second) {
		return ota.MaxStageSoak + time.Second
	}
	return time.Duration(seconds) * time.Second
}

func (s *Server) rolloutOf(c echo.Context, r store.Rollout) (rolloutResponse, error) {
	ctx := c.Request().Context()
	totals, err := s.deps.OTA.Totals(ctx, r.TenantID, r.ID)
	if err != nil {
		return rolloutResponse{}, err
	}
	version := ""
	if rel, err := s.deps.Store.Release(ctx, r.TenantID, r.ReleaseID); err == nil {
		version = rel.Version
	}
	out := rolloutResponse{
		ID: r.ID, ProjectID: r.ProjectID, ReleaseID: r.ReleaseID, Version: version,
		Target: rolloutTargetWire{Kind: string(r.Target.Kind), Tag: r.Target.Tag, DeviceIDs: r.Target.DeviceIDs, Percent: r.Target.Percent},
		Stages: r.Stages, CurrentStage: r.CurrentStage, FailureThreshold: r.FailureThreshold,
		State: string(r.State), PauseReason: r.PauseReason, Totals: map[string]int64{},
		StageSoakSeconds: int64(r.StageSoak / time.Second), RequireApproval: r.RequireApproval,
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if !r.StageDoneAt.IsZero() {
		done, next := r.StageDoneAt, r.StageDoneAt.Add(r.StageSoak)
		out.StageDoneAt = &done
		if r.State == store.RolloutActive && r.StageSoak > 0 {
			out.NextStageAt = &next
		}
	}
	for st, n := range totals {
		out.Totals[string(st)] = n
	}
	return out, nil
}

// rollout loads the rollout named by the path in the route's tenant.
func (s *Server) rollout(c echo.Context) (store.Rollout, error) {
	if err := s.otaReady(); err != nil {
		return store.Rollout{}, err
	}
	id := c.Param("rollout")
	r, err := s.deps.Store.Rollout(c.Request().Context(), tenantFrom(c).Tenant.ID, id)
	if errors.Is(err, store.ErrNotFound) || len(id) > 64 {
		return store.Rollout{}, &Error{Status: http.StatusNotFound, Message: "rollout not found", Err: err}
	}
	return r, err
}

// listRollouts serves GET /api/v1/tenants/:tenant/rollouts.
func (s *Server) listRollouts(c echo.Context) error {
	if err := s.otaReady(); err != nil {
		return err
	}
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	opts.Desc = true // newest first: the rollout that matters is the latest
	f := store.RolloutFilter{ProjectID: c.QueryParam("project"), State: store.RolloutState(c.QueryParam("state"))}
	switch f.State {
	case "", store.RolloutActive, store.RolloutPaused, store.RolloutAborted, store.RolloutCompleted:
	default:
		return store.Invalid("state", "must be active, paused, aborted or completed")
	}
	page, err := s.deps.Store.ListRollouts(c.Request().Context(), tenantFrom(c).Tenant.ID, f, opts)
	if err != nil {
		return err
	}
	out := rolloutList{Items: make([]rolloutResponse, 0, len(page.Items)), NextCursor: page.NextCursor}
	for _, r := range page.Items {
		ro, err := s.rolloutOf(c, r)
		if err != nil {
			return err
		}
		out.Items = append(out.Items, ro)
	}
	return c.JSON(http.StatusOK, out)
}

// createRollout serves POST /api/v1/tenants/:tenant/rollouts.
func (s *Server) createRollout(c echo.Context) error {
	in, err := s.rolloutInput(c)
	if err != nil {
		return err
	}
	tc := tenantFrom(c)
	in.CreatedBy = createdByOf(tc)
	r, err := s.deps.OTA.CreateRollout(c.Request().Context(), tc.Tenant.ID, in)
	if err != nil {
		return otaError(err)
	}
	s.audit(c, auditRolloutCreate, "rollout", r.ID, map[string]any{"release_id": r.ReleaseID, "target": string(r.Target.Kind), "stages": r.Stages})
	out, err := s.rolloutOf(c, r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, out)
}

// getRollout serves GET /api/v1/tenants/:tenant/rollouts/:rollout.
func (s *Server) getRollout(c echo.Context) error {
	r, err := s.rollout(c)
	if err != nil {
		return err
	}
	out, err := s.rolloutOf(c, r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// listRolloutDevices serves GET /api/v1/tenants/:tenant/rollouts/:rollout/devices.
func (s *Server) listRolloutDevices(c echo.Context) error {
	r, err := s.rollout(c)
	if err != nil {
		return err
	}
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	page, err := s.deps.Store.ListRolloutDevices(c.Request().Context(), r.TenantID, r.ID, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(page, rolloutDeviceOf))
}

// rolloutAction serves POST …/rollouts/:rollout/{pause,resume,abort}.
func (s *Server) rolloutAction(action string) echo.HandlerFunc {
	return func(c echo.Context) error {
		r, err := s.rollout(c)
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		var auditAction string
		switch action {
		case "pause":
			r, err = s.deps.OTA.Pause(ctx, r.TenantID, r.ID)
			auditAction = auditRolloutPause
		case "abort":
			r, err = s.deps.OTA.Abort(ctx, r.TenantID, r.ID)
			auditAction = auditRolloutAbort
		default:
			var req resumeRolloutRequest
			if c.Request().ContentLength != 0 {
				if err := decodeJSON(c, &req); err != nil {
					return err
				}
			}
			r, err = s.deps.OTA.Resume(ctx, r.TenantID, r.ID, req.FailureThreshold)
			auditAction = auditRolloutResume
		}
		if err != nil {
			return otaError(err)
		}
		s.audit(c, auditAction, "rollout", r.ID, map[string]any{"state": string(r.State)})
		out, err := s.rolloutOf(c, r)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	}
}

// deviceUpdates serves GET /api/v1/tenants/:tenant/devices/:device/updates: the device's
// update history, one entry per rollout that included it.
func (s *Server) deviceUpdates(c echo.Context) error {
	d, err := s.device(c)
	if err != nil {
		return err
	}
	ups, err := s.deps.Store.DeviceUpdates(c.Request().Context(), d.TenantID, d.ID)
	if err != nil {
		return err
	}
	out := deviceUpdatesResponse{Items: make([]rolloutDeviceResponse, len(ups))}
	for i, u := range ups {
		out.Items[i] = rolloutDeviceOf(u)
	}
	return c.JSON(http.StatusOK, out)
}
