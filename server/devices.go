package server

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/devconfig"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
)

// Audit actions of the device routes.
const (
	auditDeviceCreate  = "device.create"
	auditDeviceUpdate  = "device.update"
	auditDeviceDelete  = "device.delete"
	auditDeviceRotate  = "device.rotate_credentials"
	auditDeviceDisable = "device.disable"
	auditDeviceEnable  = "device.enable"
)

// Device input limits.
const (
	maxDeviceName = 128
	maxTags       = 32
	maxTagLength  = 64
)

// deviceMetadataResponse is what the device reported at its last boot.
type deviceMetadataResponse struct {
	FirmwareVersion string                 `json:"firmware_version"`
	Project         string                 `json:"project,omitempty" doc:"the firmware's project name (esp_app_desc_t)"`
	ChipModel       string                 `json:"chip_model"`
	ChipRevision    int                    `json:"chip_revision"`
	IDFVersion      string                 `json:"idf_version"`
	MAC             string                 `json:"mac"`
	IP              string                 `json:"ip,omitempty"`
	RSSI            int                    `json:"rssi,omitempty"`
	FreeHeap        int64                  `json:"free_heap"`
	UptimeSeconds   int64                  `json:"uptime_seconds" doc:"uptime when the metadata was reported (at boot); GET of one device gives the uptime now while the device is online"`
	BootedAt        time.Time              `json:"booted_at" doc:"when the device booted: updated_at minus uptime_seconds; its uptime now is the time since, while it stays online"`
	ResetReason     string                 `json:"reset_reason"`
	ConfigVersion   int64                  `json:"config_version" doc:"the config version the device runs: reported at boot, or applied since"`
	ProtocolVersion int                    `json:"protocol_version"`
	Limits          *protocol.DeviceLimits `json:"limits,omitempty" doc:"the largest command and config the device accepts, when it declared them (a small-memory device such as an ESP8266)"`
	UpdatedAt       time.Time              `json:"updated_at"`
}

// deviceResponse is a device on the wire. Credentials never appear in it.
type deviceResponse struct {
	ID                   string                  `json:"id" doc:"the device ID: its MQTT username and client ID"`
	Name                 string                  `json:"name"`
	ProjectID            string                  `json:"project_id,omitempty"`
	Tags                 []string                `json:"tags"`
	Disabled             bool                    `json:"disabled"`
	Online               bool                    `json:"online"`
	PresenceChangedAt    *time.Time              `json:"presence_changed_at,omitempty"`
	LastSeenAt           *time.Time              `json:"last_seen_at,omitempty"`
	Metadata             *deviceMetadataResponse `json:"metadata,omitempty" doc:"absent until the device reported at boot"`
	CredentialsRotatedAt *time.Time              `json:"credentials_rotated_at,omitempty"`
	CredentialsRotation  *credentialsRotation    `json:"credentials_rotation,omitempty" doc:"a staged rotation the device has not applied yet (shown by the single-device routes)"`
	CreatedAt            time.Time               `json:"created_at"`
	UpdatedAt            time.Time               `json:"updated_at"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func deviceOf(d store.Device) deviceResponse {
	r := deviceResponse{
		ID: d.ID, Name: d.Name, ProjectID: d.ProjectID, Tags: d.Tags, Disabled: d.Disabled,
		Online:               d.Presence.Online,
		PresenceChangedAt:    optTime(d.Presence.ChangedAt),
		LastSeenAt:           optTime(d.Presence.LastSeenAt),
		CredentialsRotatedAt: optTime(d.CredentialsRotatedAt),
		CreatedAt:            d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
	if r.Tags == nil {
		r.Tags = []string{}
	}
	if m := d.Metadata; !m.UpdatedAt.IsZero() {
		r.Metadata = &deviceMetadataResponse{
			FirmwareVersion: m.FirmwareVersion, Project: m.ProjectName, ChipModel: m.ChipModel,
			ChipRevision: m.ChipRevision, IDFVersion: m.IDFVersion, MAC: m.MAC, IP: m.IP, RSSI: m.RSSI,
			FreeHeap: m.FreeHeap, UptimeSeconds: m.UptimeSeconds, ResetReason: m.ResetReason,
			BootedAt: m.UpdatedAt.Add(-time.Duration(m.UptimeSeconds) * time.Second),
			// Metadata comes at boot, before the device fetches its config: a config applied
			// since is the version it runs.
			ConfigVersion:   max(m.ConfigVersion, d.ConfigSync.AppliedVersion),
			ProtocolVersion: m.ProtocolVersion, UpdatedAt: m.UpdatedAt,
			Limits: fleet.DeviceLimits(d),
		}
	}
	return r
}

// Credential rotation modes (rotateDeviceRequest.Mode).
const (
	rotateImmediate = "immediate"
	rotateStaged    = "staged"
)

type rotateDeviceRequest struct {
	Mode string `json:"mode,omitempty" doc:"immediate (default): new secret and key at once, the device must be reflashed; staged: the new secret reaches the device in its config and replaces the old one once the device applied it"`
}

// credentialsRotation is a staged rotation waiting for the device. The new secret never
// appears on the API: only the device receives it, sealed with its key.
type credentialsRotation struct {
	State         string    `json:"state" doc:"pending: the old secret works until the device acknowledges the config version carrying the new one"`
	Mode          string    `json:"mode" doc:"staged"`
	StagedAt      time.Time `json:"staged_at"`
	ConfigVersion int64     `json:"config_version" doc:"the config version carrying the new secret (or any later one)"`
}

func rotationOf(r *devconfig.Rotation) *credentialsRotation {
	if r == nil {
		return nil
	}
	return &credentialsRotation{State: "pending", Mode: rotateStaged, StagedAt: r.StagedAt, ConfigVersion: r.ConfigVersion}
}

// deviceCredentialsResponse answers creation and rotation: the device with its secret and
// provisioning bundle, both shown this once (the server keeps only the secret's hash).
type deviceCredentialsResponse struct {
	deviceResponse
	Secret       string       `json:"secret" doc:"the MQTT password; shown only in this response"`
	Provisioning fleet.Bundle `json:"provisioning" doc:"the provisioning bundle, secret included (docs/provisioning.md)"`
	// The same bundle as an ESP-IDF NVS partition CSV, so a browser can save both forms
	// while the secret is still shown.
	ProvisioningNVSCSV   string   `json:"provisioning_nvs_csv" doc:"the bundle as an NVS partition CSV for nvs_partition_gen.py, secret included"`
	ProvisioningWarnings []string `json:"provisioning_warnings" doc:"problems with the bundle, e.g. a broker host of localhost that devices cannot reach"`
}

// credentialsResponse is the answer carrying a device's new secret and bundle.
func credentialsResponse(d store.Device, secret string, b fleet.Bundle) (deviceCredentialsResponse, error) {
	csv, err := b.NVSCSV()
	if err != nil {
		return deviceCredentialsResponse{}, err
	}
	warnings := b.LoopbackWarnings()
	if warnings == nil {
		warnings = []string{}
	}
	return deviceCredentialsResponse{deviceResponse: deviceOf(d), Secret: secret, Provisioning: b,
		ProvisioningNVSCSV: string(csv), ProvisioningWarnings: warnings}, nil
}

type createDeviceRequest struct {
	Name      string   `json:"name" doc:"1 to 128 characters"`
	ProjectID string   `json:"project_id,omitempty" doc:"link to a project of the tenant"`
	Tags      []string `json:"tags,omitempty" doc:"up to 32 tags of 1 to 64 characters [A-Za-z0-9_.:-]"`
}

type updateDeviceRequest struct {
	Name      *string   `json:"name,omitempty"`
	ProjectID *string   `json:"project_id,omitempty" doc:"\"\" unlinks the project"`
	Tags      *[]string `json:"tags,omitempty" doc:"replaces every tag"`
}

// deviceQuery documents the filters and the order of the device list.
type deviceQuery struct {
	deviceFilterInput
	pageQuery
}

// devicePage is one page of the device list with the number of devices matching the filter.
type devicePage struct {
	Items      []deviceResponse `json:"items"`
	NextCursor string           `json:"next_cursor"`
	Total      int64            `json:"total" doc:"devices matching the filter, on every page"`
}

// provisioningQuery documents the provisioning bundle's options.
type provisioningQuery struct {
	Format string `query:"format" doc:"json (default) or nvs-csv"`
	Target string `query:"target" doc:"esp32 (default) or esp8266: with esp8266 every value must fit the ESP8266_RTOS_SDK v3.4 NVS format (at most 1,984 bytes, e.g. a CA certificate), else 422"`
	Rotate string `query:"rotate" doc:"true rotates the credentials so the bundle can carry the new secret (the old one stops working at once)"`
}

// fleetReady fails with 503 when the fleet services are not configured (a server built
// without them, as some tests do).
func (s *Server) fleetReady() error {
	if s.deps.Devices == nil || s.deps.Commands == nil || s.deps.Events == nil {
		return &Error{Status: http.StatusServiceUnavailable, Message: "device services are not available"}
	}
	return nil
}

func validDeviceName(name string) string {
	switch {
	case strings.TrimSpace(name) == "":
		return "is required"
	case utf8.RuneCountInString(name) > maxDeviceName:
		return fmt.Sprintf("must be at most %d characters", maxDeviceName)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "must not contain control characters"
	}
	return ""
}

func validTag(t string) bool {
	if t == "" || len(t) > maxTagLength {
		return false
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_.:-", c)) {
			return false
		}
	}
	return true
}

// cleanTags validates tags and removes duplicates, keeping the first occurrence's order.
func cleanTags(tags []string, fields map[string]string) []string {
	if len(tags) > maxTags {
		fields["tags"] = fmt.Sprintf("at most %d tags", maxTags)
		return nil
	}
	out := make([]string, 0, len(tags))
	for i, t := range tags {
		if !validTag(t) {
			fields[fmt.Sprintf("tags[%d]", i)] = fmt.Sprintf("must be 1 to %d characters of [A-Za-z0-9_.:-]", maxTagLength)
			continue
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// deviceError maps fleet errors to API errors.
func deviceError(err error) error {
	if errors.Is(err, fleet.ErrProjectNotFound) {
		return store.Invalid("project_id", "no such project in this tenant")
	}
	return err
}

// createDevice serves POST /api/v1/tenants/:tenant/devices.
func (s *Server) createDevice(c echo.Context) error {
	if err := s.fleetReady(); err != nil {
		return err
	}
	tc := tenantFrom(c)
	var req createDeviceRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	fields := map[string]string{}
	if msg := validDeviceName(req.Name); msg != "" {
		fields["name"] = msg
	}
	tags := cleanTags(req.Tags, fields)
	if len(fields) > 0 {
		return &store.InvalidError{Fields: fields}
	}
	p, err := s.deps.Devices.Create(c.Request().Context(), tc.Tenant.ID, fleet.DeviceInput{
		Name: strings.TrimSpace(req.Name), ProjectID: req.ProjectID, Tags: tags,
	})
	if err != nil {
		return deviceError(err)
	}
	s.audit(c, auditDeviceCreate, "device", p.Device.ID, map[string]any{"name": p.Device.Name, "project_id": p.Device.ProjectID, "tags": p.Device.Tags})
	out, err := credentialsResponse(p.Device, p.Secret, p.Bundle)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, out)
}

// listDevices serves GET /api/v1/tenants/:tenant/devices.
func (s *Server) listDevices(c echo.Context) error {
	tc := tenantFrom(c)
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	f, err := parseDeviceQuery(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	page, err := s.deps.Store.ListDevices(ctx, tc.Tenant.ID, f, opts)
	if err != nil {
		return err
	}
	total, err := s.deps.Store.CountDevices(ctx, tc.Tenant.ID, f)
	if err != nil {
		return err
	}
	p := pageOf(page, deviceOf)
	return c.JSON(http.StatusOK, devicePage{Items: p.Items, NextCursor: p.NextCursor, Total: total})
}

// parseDeviceQuery reads the filters and the order of the device list (deviceQuery).
func parseDeviceQuery(c echo.Context) (store.DeviceFilter, error) {
	var q deviceFilterInput
	for name, v := range map[string]*string{"q": &q.Q, "tag": &q.Tag, "project": &q.Project, "firmware": &q.Firmware,
		"online": &q.Online, "status": &q.Status, "sort": &q.Sort} {
		*v = c.QueryParam(name)
	}
	return q.filter()
}

// deviceFilterInput is a device filter as a client writes it: in the device list's query and
// in a command's target.filter.
type deviceFilterInput struct {
	Q        string `json:"q,omitempty" query:"q" doc:"substring of the name (case-insensitive) or prefix of the ID"`
	Project  string `json:"project,omitempty" query:"project" doc:"project ID"`
	Tag      string `json:"tag,omitempty" query:"tag" doc:"exact tag"`
	Status   string `json:"status,omitempty" query:"status" doc:"online, offline, disabled or enabled"`
	Online   string `json:"online,omitempty" query:"online" doc:"true or false (the older form of status=online/offline)"`
	Firmware string `json:"firmware,omitempty" query:"firmware" doc:"exact firmware version, e.g. v-1.4.0"`
	Sort     string `json:"-" query:"sort" doc:"id (default), name, status, project, firmware, tags, last_seen or created; a leading - sorts descending"`
}

// filter validates the input; each bad field is a 422 naming it.
func (q deviceFilterInput) filter() (store.DeviceFilter, error) {
	f := store.DeviceFilter{ProjectID: q.Project, Tag: q.Tag, FirmwareVersion: q.Firmware, Search: q.Q}
	fields := map[string]string{}
	for name, v := range map[string]string{"q": f.Search, "tag": f.Tag, "project": f.ProjectID, "firmware": f.FirmwareVersion} {
		if len(v) > 128 {
			fields[name] = "at most 128 characters"
		}
	}
	yes, no := true, false
	switch q.Online {
	case "":
	case "true":
		f.Online = &yes
	case "false":
		f.Online = &no
	default:
		fields["online"] = "must be true or false"
	}
	switch q.Status {
	case "":
	case "online":
		f.Online = &yes
	case "offline":
		f.Online = &no
	case "disabled":
		f.Disabled = &yes
	case "enabled":
		f.Disabled = &no
	default:
		fields["status"] = "must be online, offline, disabled or enabled"
	}
	if q.Status != "" && q.Online != "" {
		fields["online"] = "give status or online, not both"
	}
	if q.Sort != "" {
		col, desc := strings.CutPrefix(q.Sort, "-")
		if !slices.Contains(store.DeviceSortColumns, col) {
			fields["sort"] = "must be one of " + strings.Join(store.DeviceSortColumns, ", ") + ", with an optional leading -"
		}
		f.Sort = store.DeviceSort{Column: col, Desc: desc}
	}
	if len(fields) > 0 {
		return f, &store.InvalidError{Fields: fields}
	}
	return f, nil
}

// device loads the device named by the path in the route's tenant. A device of another
// tenant is not found, exactly like a missing one.
func (s *Server) device(c echo.Context) (store.Device, error) {
	id := c.Param("device")
	if !protocol.ValidDeviceID(id) {
		return store.Device{}, &Error{Status: http.StatusNotFound, Message: "device not found"}
	}
	d, err := s.deps.Store.Device(c.Request().Context(), tenantFrom(c).Tenant.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Device{}, &Error{Status: http.StatusNotFound, Message: "device not found", Err: err}
	}
	return d, err
}

// getDevice serves GET /api/v1/tenants/:tenant/devices/:device.
func (s *Server) getDevice(c echo.Context) error {
	d, err := s.device(c)
	if err != nil {
		return err
	}
	out := deviceOf(d)
	if m := out.Metadata; m != nil && out.Online {
		// Metadata is reported at boot, so its uptime is about 0; while the device stays
		// online its uptime is that plus the time since.
		m.UptimeSeconds = max(m.UptimeSeconds, int64(s.deps.Now().Sub(m.BootedAt)/time.Second))
	}
	if s.deps.Config != nil {
		r, err := s.deps.Config.PendingRotation(c.Request().Context(), d)
		if err != nil {
			return err
		}
		out.CredentialsRotation = rotationOf(r)
	}
	return c.JSON(http.StatusOK, out)
}

// updateDevice serves PATCH /api/v1/tenants/:tenant/devices/:device.
func (s *Server) updateDevice(c echo.Context) error {
	if err := s.fleetReady(); err != nil {
		return err
	}
	d, err := s.device(c)
	if err != nil {
		return err
	}
	var req updateDeviceRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	fields := map[string]string{}
	changed := map[string]any{}
	if req.Name != nil {
		if msg := validDeviceName(*req.Name); msg != "" {
			fields["name"] = msg
		}
		d.Name = strings.TrimSpace(*req.Name)
		changed["name"] = d.Name
	}
	if req.Tags != nil {
		d.Tags = cleanTags(*req.Tags, fields)
		changed["tags"] = d.Tags
	}
	if req.ProjectID != nil {
		d.ProjectID = *req.ProjectID
		changed["project_id"] = d.ProjectID
	}
	if len(fields) > 0 {
		return &store.InvalidError{Fields: fields}
	}
	if err := s.deps.Devices.Update(c.Request().Context(), &d); err != nil {
		return deviceError(err)
	}
	s.audit(c, auditDeviceUpdate, "device", d.ID, changed)
	return c.JSON(http.StatusOK, deviceOf(d))
}

// deleteDevice serves DELETE /api/v1/tenants/:tenant/devices/:device.
func (s *Server) deleteDevice(c echo.Context) error {
	if err := s.fleetReady(); err != nil {
		return err
	}
	d, err := s.device(c)
	if err != nil {
		return err
	}
	if err := s.deps.Devices.Delete(c.Request().Context(), d.TenantID, d.ID); err != nil {
		return err
	}
	s.audit(c, auditDeviceDelete, "device", d.ID, map[string]any{"name": d.Name})
	return c.NoContent(http.StatusNoContent)
}

// rotateDevice serves POST /api/v1/tenants/:tenant/devices/:device/rotate-credentials. The
// body is optional; {"mode":"staged"} stages the new secret in the device's config instead
// of replacing the credentials at once (docs/provisioning.md).
func (s *Server) rotateDevice(c echo.Context) error {
	if err := s.fleetReady(); err != nil {
		return err
	}
	var req rotateDeviceRequest
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	switch req.Mode {
	case "", rotateImmediate, rotateStaged:
	default:
		return store.Invalid("mode", "must be immediate or staged")
	}
	d, err := s.device(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if req.Mode == rotateStaged {
		if s.deps.Config == nil {
			return &Error{Status: http.StatusServiceUnavailable, Message: "staged rotation needs the config service"}
		}
		r, err := s.deps.Config.StageSecret(ctx, d.TenantID, d.ID, configActor(tenantFrom(c).Principal))
		if errors.Is(err, devconfig.ErrNoRotation) {
			return &Error{Status: http.StatusServiceUnavailable, Message: "staged rotation is not available", Err: err}
		}
		if err != nil {
			return configError(err, store.ScopeDevice, false)
		}
		s.audit(c, auditDeviceRotate, "device", d.ID, map[string]any{"mode": rotateStaged})
		if d, err = s.deps.Store.Device(ctx, d.TenantID, d.ID); err != nil {
			return err
		}
		out := deviceOf(d)
		out.CredentialsRotation = rotationOf(&r)
		return c.JSON(http.StatusAccepted, out)
	}
	p, err := s.deps.Devices.Rotate(ctx, d.TenantID, d.ID)
	if err != nil {
		return err
	}
	s.dropStagedSecret(c, d)
	s.audit(c, auditDeviceRotate, "device", d.ID, nil)
	out, err := credentialsResponse(p.Device, p.Secret, p.Bundle)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// dropStagedSecret removes a staged secret after an immediate rotation, so a device
// reflashed with the new bundle is not given the stale staged one. The rotation is done
// either way; a failure is logged.
func (s *Server) dropStagedSecret(c echo.Context, d store.Device) {
	if s.deps.Config == nil {
		return
	}
	if err := s.deps.Config.DropStagedSecret(c.Request().Context(), d.TenantID, d.ID, configActor(tenantFrom(c).Principal)); err != nil {
		s.log.Warn("staged secret not dropped after rotation", "device_id", d.ID, "error", err)
	}
}

// setDeviceDisabled serves POST …/devices/:device/disable and …/enable.
func (s *Server) setDeviceDisabled(disabled bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.fleetReady(); err != nil {
			return err
		}
		d, err := s.device(c)
		if err != nil {
			return err
		}
		d, err = s.deps.Devices.SetDisabled(c.Request().Context(), d.TenantID, d.ID, disabled)
		if err != nil {
			return err
		}
		action := auditDeviceEnable
		if disabled {
			action = auditDeviceDisable
		}
		s.audit(c, action, "device", d.ID, nil)
		return c.JSON(http.StatusOK, deviceOf(d))
	}
}

// deviceProvisioning serves GET /api/v1/tenants/:tenant/devices/:device/provisioning. The
// bundle carries the per-device key, so the route needs devices:write. Without rotate=true
// its secret is empty (only its hash is stored); rotate=true rotates first, kicking the
// device, and returns the bundle with the new secret.
func (s *Server) deviceProvisioning(c echo.Context) error {
	if err := s.fleetReady(); err != nil {
		return err
	}
	format := c.QueryParam("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "nvs-csv" {
		return store.Invalid("format", "must be json or nvs-csv")
	}
	target := c.QueryParam("target")
	if target != "" && target != "esp32" && target != "esp8266" {
		return store.Invalid("target", "must be esp32 or esp8266")
	}
	rotate := false
	switch c.QueryParam("rotate") {
	case "", "false":
	case "true":
		rotate = true
	default:
		return store.Invalid("rotate", "must be true or false")
	}
	d, err := s.device(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var b fleet.Bundle
	if target == "esp8266" {
		// checked before a rotation, so a refused bundle changes nothing (sizes do not
		// depend on the secret)
		if b, err = s.deps.Devices.Bundle(ctx, d); err != nil {
			return err
		}
		if err := b.CheckNVSValueSizes(fleet.ESP8266NVSMaxValue, "target"); err != nil {
			return err
		}
	}
	if rotate {
		// A GET that changes state: from a browser session it needs the CSRF header like
		// any unsafe method, so a link on another site cannot rotate a device away.
		if want, ok := c.Get(sessionCSRFKey).(string); ok {
			if got := c.Request().Header.Get(csrfHeader); got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
				return &Error{Status: http.StatusForbidden, Code: "csrf", Message: "rotate=true needs the " + csrfHeader + " header"}
			}
		}
		p, err := s.deps.Devices.Rotate(ctx, d.TenantID, d.ID)
		if err != nil {
			return err
		}
		s.dropStagedSecret(c, d)
		s.audit(c, auditDeviceRotate, "device", d.ID, map[string]any{"via": "provisioning"})
		b = p.Bundle
	} else if b, err = s.deps.Devices.Bundle(ctx, d); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	if format == "nvs-csv" {
		data, err := b.NVSCSV()
		if err != nil {
			return err
		}
		c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="espadmin-`+d.ID+`.csv"`)
		return c.Blob(http.StatusOK, "text/csv; charset=utf-8", data)
	}
	return c.JSON(http.StatusOK, b)
}
