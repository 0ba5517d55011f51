package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/store"
)

// Audit actions of the device error routes.
const (
	auditErrorResolve   = "error_group.resolve"
	auditErrorReopen    = "error_group.reopen"
	auditBugsnagUpdate  = "settings.bugsnag"
	recentReports       = 20
	maxReleaseStage     = 64
	settingsPutAttempts = 3
)

// errorGroupResponse is one group of device errors.
type errorGroupResponse struct {
	ID              string     `json:"id"`
	ProjectID       string     `json:"project_id,omitempty"`
	Fingerprint     string     `json:"fingerprint" doc:"SHA-256 prefix over type, firmware version and the top application frames (or the message, without a backtrace)"`
	Type            string     `json:"type"`
	Message         string     `json:"message"`
	FirmwareVersion string     `json:"firmware_version"`
	Count           int64      `json:"count" doc:"every report received, also those past errors.retention"`
	FirstSeen       time.Time  `json:"first_seen"`
	LastSeen        time.Time  `json:"last_seen"`
	Resolved        bool       `json:"resolved"`
	ResolvedAt      *time.Time `json:"resolved_at,omitempty"`
	ResolvedBy      string     `json:"resolved_by,omitempty"`
}

func errorGroupOf(g store.ErrorGroup) errorGroupResponse {
	return errorGroupResponse{
		ID: g.ID, ProjectID: g.ProjectID, Fingerprint: g.Fingerprint, Type: g.Type, Message: g.Message,
		FirmwareVersion: g.FirmwareVersion, Count: g.Count, FirstSeen: g.FirstSeen, LastSeen: g.LastSeen,
		Resolved: g.Resolved, ResolvedAt: g.ResolvedAt, ResolvedBy: g.ResolvedBy,
	}
}

// errorGroupDeviceResponse counts a group on one device.
type errorGroupDeviceResponse struct {
	DeviceID   string    `json:"device_id"`
	DeviceName string    `json:"device_name,omitempty" doc:"absent when the device was deleted"`
	Count      int64     `json:"count"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
}

// errorReportResponse is one stored report.
type errorReportResponse struct {
	ID              string          `json:"id"`
	DeviceID        string          `json:"device_id"`
	Message         string          `json:"message"`
	Type            string          `json:"type"`
	Code            string          `json:"code,omitempty"`
	Severity        string          `json:"severity"`
	Backtrace       json.RawMessage `json:"backtrace,omitempty" doc:"frames {pc, sp, func, file, line} as the device sent them"`
	ResetReason     string          `json:"reset_reason,omitempty"`
	FirmwareVersion string          `json:"firmware_version"`
	UptimeSeconds   int64           `json:"uptime_s,omitempty"`
	FreeHeap        int64           `json:"free_heap,omitempty"`
	CoreDump        json.RawMessage `json:"core_dump,omitempty" doc:"{task, cause, summary, size}"`
	// CoreDumpUploaded says the whole core dump is stored (…/reports/{id}/coredump).
	CoreDumpUploaded bool      `json:"core_dump_uploaded,omitempty"`
	ReceivedAt       time.Time `json:"received_at"`
}

func errorReportOf(r store.ErrorReport) errorReportResponse {
	out := errorReportResponse{
		ID: r.ID, DeviceID: r.DeviceID, Message: r.Message, Type: r.Type, Code: r.Code, Severity: r.Severity,
		ResetReason: r.ResetReason, FirmwareVersion: r.FirmwareVersion, UptimeSeconds: r.UptimeSeconds,
		FreeHeap: r.FreeHeap, ReceivedAt: r.ReceivedAt,
	}
	if r.Stack != "" && json.Valid([]byte(r.Stack)) {
		out.Backtrace = json.RawMessage(r.Stack)
	}
	if r.CoreDump != "" && json.Valid([]byte(r.CoreDump)) {
		out.CoreDump = json.RawMessage(r.CoreDump)
	}
	return out
}

// errorGroupDetailResponse is a group with its devices and latest reports.
type errorGroupDetailResponse struct {
	errorGroupResponse
	Devices []errorGroupDeviceResponse `json:"devices"`
	Recent  []errorReportResponse      `json:"recent_reports" doc:"the latest reports kept (errors.retention, 90 days by default), newest first"`
	// Stack is the newest backtrace, symbolicated when the release has its ELF file.
	Stack             []stackFrameResponse `json:"stack,omitempty" doc:"the newest report's backtrace, innermost first"`
	StackSymbolicated bool                 `json:"stack_symbolicated" doc:"false: raw addresses (no ELF file for the release yet)"`
	Trend             []errorTrendDay      `json:"trend" doc:"reports received per day (UTC) over the last 14 days, oldest first, from the reports kept (errors.retention)"`
}

// errorTrendDay counts a group's reports of one day.
type errorTrendDay struct {
	Day     string `json:"day" doc:"YYYY-MM-DD (UTC)"`
	Reports int64  `json:"reports"`
}

// errorTrendDays is the error trend's window.
const errorTrendDays = 14

// errorTrendResponse is the tenant's error reports per day.
type errorTrendResponse struct {
	Days []errorTrendDay `json:"days" doc:"reports received per day (UTC) over the last 14 days, oldest first, from the reports kept (errors.retention)"`
}

// getErrorTrend serves GET /api/v1/tenants/:tenant/errors/trend (the dashboard's chart).
func (s *Server) getErrorTrend(c echo.Context) error {
	days, err := s.errorTrend(c.Request().Context(), tenantFrom(c).Tenant.ID, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, errorTrendResponse{Days: days})
}

// errorTrend counts the kept reports of a group (every group with groupID "") per UTC day over
// the last errorTrendDays days, today included. The store counts them, so a busy day is
// counted in full without reading its reports.
func (s *Server) errorTrend(ctx context.Context, tenantID, groupID string) ([]errorTrendDay, error) {
	today := store.Now().UTC().Truncate(24 * time.Hour)
	start := today.AddDate(0, 0, -(errorTrendDays - 1))
	counts, err := s.deps.Store.CountErrorReportsByDay(ctx, tenantID, groupID, start, errorTrendDays)
	if err != nil {
		return nil, err
	}
	days := make([]errorTrendDay, errorTrendDays)
	for i := range days {
		days[i] = errorTrendDay{Day: start.AddDate(0, 0, i).Format(time.DateOnly), Reports: counts[i]}
	}
	return days, nil
}

// errorGroupQuery documents the list filters.
type errorGroupQuery struct {
	pageQuery
	Project  string `query:"project" doc:"only groups of this project"`
	Device   string `query:"device" doc:"only groups that occurred on this device"`
	Resolved string `query:"resolved" doc:"true or false"`
}

type errorGroupPage = pageResponse[errorGroupResponse]

// errorFilter reads the list filters.
func errorFilter(c echo.Context) (store.ErrorGroupFilter, error) {
	f := store.ErrorGroupFilter{ProjectID: c.QueryParam("project"), DeviceID: c.QueryParam("device")}
	fields := map[string]string{}
	switch c.QueryParam("resolved") {
	case "":
	case "true":
		t := true
		f.Resolved = &t
	case "false":
		b := false
		f.Resolved = &b
	default:
		fields["resolved"] = "must be true or false"
	}
	for name, v := range map[string]string{"project": f.ProjectID, "device": f.DeviceID} {
		if len(v) > 64 || strings.ContainsFunc(v, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r == '_' || r == '-') }) {
			fields[name] = "is not an ID"
		}
	}
	if len(fields) > 0 {
		return f, &store.InvalidError{Fields: fields}
	}
	return f, nil
}

// listErrorGroups serves GET /api/v1/tenants/:tenant/errors, newest first.
func (s *Server) listErrorGroups(c echo.Context) error {
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	f, err := errorFilter(c)
	if err != nil {
		return err
	}
	opts.Desc = true
	page, err := s.deps.Store.ListErrorGroups(c.Request().Context(), tenantFrom(c).Tenant.ID, f, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(page, errorGroupOf))
}

// listDeviceErrorGroups serves GET /api/v1/tenants/:tenant/devices/:device/errors: the groups
// that occurred on the device, newest first.
func (s *Server) listDeviceErrorGroups(c echo.Context) error {
	d, err := s.device(c)
	if err != nil {
		return err
	}
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	opts.Desc = true
	page, err := s.deps.Store.ListErrorGroups(c.Request().Context(), d.TenantID, store.ErrorGroupFilter{DeviceID: d.ID}, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(page, errorGroupOf))
}

// errorGroup loads the group named by the path in the route's tenant.
func (s *Server) errorGroup(c echo.Context) (store.ErrorGroup, error) {
	id := c.Param("group")
	g, err := s.deps.Store.ErrorGroup(c.Request().Context(), tenantFrom(c).Tenant.ID, id)
	if errors.Is(err, store.ErrNotFound) || len(id) > 64 {
		return g, &Error{Status: http.StatusNotFound, Message: "error group not found", Err: err}
	}
	return g, err
}

// getErrorGroup serves GET /api/v1/tenants/:tenant/errors/:group.
func (s *Server) getErrorGroup(c echo.Context) error {
	g, err := s.errorGroup(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	devs, err := s.deps.Store.ErrorGroupDevices(ctx, g.TenantID, g.ID)
	if err != nil {
		return err
	}
	reports, err := s.deps.Store.ListErrorReports(ctx, g.TenantID, g.ID, "", store.ListOptions{Limit: recentReports, Desc: true})
	if err != nil {
		return err
	}
	out := errorGroupDetailResponse{errorGroupResponse: errorGroupOf(g),
		Devices: make([]errorGroupDeviceResponse, len(devs)), Recent: make([]errorReportResponse, len(reports.Items))}
	for i, d := range devs {
		out.Devices[i] = errorGroupDeviceResponse{DeviceID: d.DeviceID, Count: d.Count, FirstSeen: d.FirstSeen, LastSeen: d.LastSeen}
		if dev, err := s.deps.Store.Device(ctx, g.TenantID, d.DeviceID); err == nil {
			out.Devices[i].DeviceName = dev.Name
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	if out.Trend, err = s.errorTrend(ctx, g.TenantID, g.ID); err != nil {
		return err
	}
	for i, r := range reports.Items {
		out.Recent[i] = errorReportOf(r)
	}
	out.Stack, out.StackSymbolicated = s.groupStack(ctx, reports.Items)
	s.markCoreDumps(ctx, reports.Items, out.Recent)
	return c.JSON(http.StatusOK, out)
}

// setErrorGroupResolved serves POST …/errors/:group/resolve and …/reopen. A resolved group
// reopens by itself when the error appears on a newer firmware (package devicerrors).
func (s *Server) setErrorGroupResolved(resolved bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		g, err := s.errorGroup(c)
		if err != nil {
			return err
		}
		tc := tenantFrom(c)
		if err := s.deps.Store.SetErrorGroupResolved(c.Request().Context(), g.TenantID, g.ID, resolved, tc.Principal.UserID, s.now()); err != nil {
			return err
		}
		action := auditErrorReopen
		if resolved {
			action = auditErrorResolve
		}
		s.audit(c, action, "error_group", g.ID, map[string]any{"type": g.Type, "firmware_version": g.FirmwareVersion})
		g, err = s.deps.Store.ErrorGroup(c.Request().Context(), g.TenantID, g.ID)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, errorGroupOf(g))
	}
}

// bugsnagSettingsRequest sets where a tenant's (or one project's) device errors go.
type bugsnagSettingsRequest struct {
	APIKey       *string `json:"api_key" doc:"the Bugsnag project's notifier API key (32 hex digits); \"\" removes it and stops forwarding. Write-only."`
	NotifyURL    *string `json:"notify_url,omitempty" doc:"on-premise Bugsnag notify endpoint; empty uses the server's default (tenant only)"`
	ReleaseStage *string `json:"release_stage,omitempty" doc:"release stage sent with reports (default production)"`
	ProjectID    string  `json:"project_id,omitempty" doc:"set the key and release stage of this project instead, overriding the tenant's"`
}

// bugsnagSettingsResponse reads the settings back; the key never leaves the server.
type bugsnagSettingsResponse struct {
	APIKeySet    bool   `json:"api_key_set"`
	NotifyURL    string `json:"notify_url,omitempty"`
	ReleaseStage string `json:"release_stage,omitempty"`
	ProjectID    string `json:"project_id,omitempty"`
}

// checkBugsnagRequest validates the request's fields.
func checkBugsnagRequest(req bugsnagSettingsRequest) map[string]string {
	fields := map[string]string{}
	if req.APIKey == nil && req.NotifyURL == nil && req.ReleaseStage == nil {
		fields["api_key"] = "is required (or set notify_url or release_stage)"
	}
	if req.APIKey != nil && *req.APIKey != "" && !devicerrors.ValidAPIKey(*req.APIKey) {
		fields["api_key"] = "must be 32 hexadecimal digits"
	}
	if req.NotifyURL != nil && *req.NotifyURL != "" {
		if req.ProjectID != "" {
			fields["notify_url"] = "is a tenant setting; leave it out with project_id"
		} else if u, err := url.Parse(*req.NotifyURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(*req.NotifyURL) > 2048 {
			fields["notify_url"] = "must be an absolute http or https URL"
		}
	}
	if req.ReleaseStage != nil {
		if len(*req.ReleaseStage) > maxReleaseStage || strings.IndexFunc(*req.ReleaseStage, unicode.IsControl) >= 0 {
			fields["release_stage"] = "must be at most 64 characters without control characters"
		}
	}
	return fields
}

// putBugsnagSettings serves PUT /api/v1/tenants/:tenant/settings/bugsnag.
func (s *Server) putBugsnagSettings(c echo.Context) error {
	var req bugsnagSettingsRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if fields := checkBugsnagRequest(req); len(fields) > 0 {
		return &store.InvalidError{Fields: fields}
	}
	if s.deps.Keyring == nil {
		return &Error{Status: http.StatusServiceUnavailable, Message: "secrets cannot be sealed on this server"}
	}
	tc := tenantFrom(c)
	var out bugsnagSettingsResponse
	var err error
	if req.ProjectID != "" {
		out, err = s.putProjectBugsnag(c, tc.Tenant.ID, req)
	} else {
		out, err = s.putTenantBugsnag(c, tc, req)
	}
	if err != nil {
		return err
	}
	// "forwarding" says whether a key is set without revealing it.
	details := map[string]any{"forwarding": out.APIKeySet, "notify_url": out.NotifyURL, "release_stage": out.ReleaseStage,
		"api_changed": req.APIKey != nil && *req.APIKey != ""}
	resource, id := "tenant", tc.Tenant.ID
	if req.ProjectID != "" {
		resource, id = "project", req.ProjectID
	}
	s.audit(c, auditBugsnagUpdate, resource, id, details)
	return c.JSON(http.StatusOK, out)
}

func (s *Server) putTenantBugsnag(c echo.Context, tc tenantContext, req bugsnagSettingsRequest) (bugsnagSettingsResponse, error) {
	ctx := c.Request().Context()
	for attempt := 1; ; attempt++ {
		st, err := s.deps.Store.TenantSettings(ctx, tc.Tenant.ID)
		if errors.Is(err, store.ErrNotFound) {
			st, err = store.TenantSettings{TenantID: tc.Tenant.ID}, nil
		}
		if err != nil {
			return bugsnagSettingsResponse{}, err
		}
		if req.APIKey != nil {
			st.Bugsnag.APIKeySealed = nil
			if *req.APIKey != "" {
				sealed, err := s.deps.Keyring.Seal([]byte(*req.APIKey), devicerrors.TenantKeyAD(tc.Tenant.ID))
				if err != nil {
					return bugsnagSettingsResponse{}, err
				}
				st.Bugsnag.APIKeySealed = sealed
			}
		}
		if req.NotifyURL != nil {
			st.Bugsnag.NotifyURL = *req.NotifyURL
		}
		if req.ReleaseStage != nil {
			st.Bugsnag.ReleaseStage = *req.ReleaseStage
		}
		st.UpdatedBy = tc.Principal.UserID
		err = s.deps.Store.PutTenantSettings(ctx, &st)
		if errors.Is(err, store.ErrConflict) && attempt < settingsPutAttempts {
			continue // another setting changed meanwhile: apply ours on top of it
		}
		if errors.Is(err, store.ErrConflict) {
			return bugsnagSettingsResponse{}, &Error{Status: http.StatusConflict, Message: "the settings changed meanwhile; try again"}
		}
		if err != nil {
			return bugsnagSettingsResponse{}, err
		}
		return bugsnagSettingsResponse{APIKeySet: len(st.Bugsnag.APIKeySealed) > 0, NotifyURL: st.Bugsnag.NotifyURL, ReleaseStage: st.Bugsnag.ReleaseStage}, nil
	}
}

func (s *Server) putProjectBugsnag(c echo.Context, tenantID string, req bugsnagSettingsRequest) (bugsnagSettingsResponse, error) {
	ctx := c.Request().Context()
	p, err := s.deps.Store.Project(ctx, tenantID, req.ProjectID)
	if errors.Is(err, store.ErrNotFound) {
		return bugsnagSettingsResponse{}, store.Invalid("project_id", "no such project in this tenant")
	}
	if err != nil {
		return bugsnagSettingsResponse{}, err
	}
	if req.APIKey != nil {
		p.BugsnagAPIKeySealed = nil
		if *req.APIKey != "" {
			sealed, err := s.deps.Keyring.Seal([]byte(*req.APIKey), devicerrors.ProjectKeyAD(tenantID, p.ID))
			if err != nil {
				return bugsnagSettingsResponse{}, err
			}
			p.BugsnagAPIKeySealed = sealed
		}
	}
	if req.ReleaseStage != nil {
		p.BugsnagReleaseStage = *req.ReleaseStage
	}
	if err := s.deps.Store.UpdateProject(ctx, &p); err != nil {
		return bugsnagSettingsResponse{}, err
	}
	return bugsnagSettingsResponse{APIKeySet: len(p.BugsnagAPIKeySealed) > 0, ReleaseStage: p.BugsnagReleaseStage, ProjectID: p.ID}, nil
}

// getBugsnagSettings serves GET /api/v1/tenants/:tenant/settings/bugsnag: whether a key is
// set, never the key.
func (s *Server) getBugsnagSettings(c echo.Context) error {
	tc := tenantFrom(c)
	st, err := s.deps.Store.TenantSettings(c.Request().Context(), tc.Tenant.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return c.JSON(http.StatusOK, bugsnagSettingsResponse{APIKeySet: len(st.Bugsnag.APIKeySealed) > 0,
		NotifyURL: st.Bugsnag.NotifyURL, ReleaseStage: st.Bugsnag.ReleaseStage})
}
