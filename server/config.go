package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/devconfig"
	"github.com/espadmin/espadmin/store"
)

// Audit actions of the configuration routes. Details name keys, types and versions, and the
// values of entries that are not secret; a secret's value is never in them.
const (
	auditConfigPut      = "config.put"
	auditConfigDelete   = "config.delete"
	auditConfigRollback = "config.rollback"
	auditConfigPush     = "config.push"
)

// configEntryResponse is one entry of a scope. A secret's value reads back as
// {"secret":true,"set":true}: secrets are write-only.
type configEntryResponse struct {
	Key       string    `json:"key"`
	Type      string    `json:"type" doc:"string, int, float, bool or json"`
	Value     any       `json:"value" doc:"the value itself; for a secret the object {\"secret\":true,\"set\":true}"`
	Secret    bool      `json:"secret"`
	Version   int64     `json:"version" doc:"send it back with the next change (optimistic concurrency)"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// secretSet is what a secret's value reads back as.
var secretSet = map[string]bool{"secret": true, "set": true}

func configEntryOf(e store.ConfigEntry) configEntryResponse {
	r := configEntryResponse{Key: e.Key, Type: string(e.Type), Secret: e.Secret, Version: e.Version,
		UpdatedBy: e.UpdatedBy, UpdatedAt: e.UpdatedAt}
	if e.Secret {
		r.Value = secretSet
	} else {
		r.Value = json.RawMessage(e.Value)
	}
	return r
}

// configEntriesResponse lists a scope's entries, ordered by key.
type configEntriesResponse struct {
	Entries []configEntryResponse `json:"entries"`
}

func configEntriesOf(entries []store.ConfigEntry) configEntriesResponse {
	out := configEntriesResponse{Entries: make([]configEntryResponse, len(entries))}
	for i, e := range entries {
		out.Entries[i] = configEntryOf(e)
	}
	return out
}

// putConfigEntryRequest documents the body of PUT …/config/:key (decoded as putEntryBody).
type putConfigEntryRequest struct {
	Type    string `json:"type" doc:"string, int, float, bool or json"`
	Value   any    `json:"value" doc:"string ≤ 3999 bytes without NUL; int within ±(2^53−1); finite float; bool; json ≤ 3999 bytes compact"`
	Secret  bool   `json:"secret,omitempty" doc:"write-only: stored encrypted, sent encrypted for the device, read back as set"`
	Version int64  `json:"version" doc:"the entry's current version; 0 creates a key that must not exist yet"`
}

// putConfigBatchRequest documents the body of PUT …/config.
type putConfigBatchRequest struct {
	Entries []putConfigBatchEntry `json:"entries" doc:"1 to 64 entries, written all or nothing"`
}

type putConfigBatchEntry struct {
	Key string `json:"key" doc:"1–15 characters of [A-Za-z0-9_], not starting with _"`
	putConfigEntryRequest
}

// putEntryBody and putBatchBody are what the PUT bodies decode into: values stay raw JSON so
// integers keep every digit.
type putEntryBody struct {
	Key     string          `json:"key"`
	Type    string          `json:"type"`
	Value   json.RawMessage `json:"value"`
	Secret  bool            `json:"secret"`
	Version int64           `json:"version"`
}

type putBatchBody struct {
	Entries []putEntryBody `json:"entries"`
}

func (b putEntryBody) input() devconfig.Input {
	return devconfig.Input{Key: b.Key, Type: store.ConfigType(b.Type), Value: b.Value, Secret: b.Secret, Version: b.Version}
}

// deleteConfigQuery documents DELETE …/config/:key.
type deleteConfigQuery struct {
	Version int64 `query:"version" doc:"required: the entry's current version (409 when it changed)"`
}

// effectiveEntryResponse is one key of a device's effective config.
type effectiveEntryResponse struct {
	Key    string `json:"key"`
	Type   string `json:"type"`
	Value  any    `json:"value" doc:"for a secret {\"secret\":true,\"set\":true}"`
	Secret bool   `json:"secret"`
	Layer  string `json:"layer" doc:"project, device or platform: where the value comes from (later layers win)"`
	Source string `json:"source,omitempty" doc:"the project or device ID the entry belongs to"`
}

// configSyncResponse is a device's config delivery state.
type configSyncResponse struct {
	State          string    `json:"state" doc:"in_sync, pending or failed; empty before the first version"`
	DesiredVersion int64     `json:"desired_version"`
	AppliedVersion int64     `json:"applied_version" doc:"the version the device reported applying"`
	Error          string    `json:"error,omitempty" doc:"the device's reason when failed"`
	UpdatedAt      time.Time `json:"updated_at"`
}

func configSyncOf(s devconfig.Sync) configSyncResponse {
	return configSyncResponse{State: string(s.State), DesiredVersion: s.DesiredVersion, AppliedVersion: s.AppliedVersion,
		Error: s.Error, UpdatedAt: s.UpdatedAt}
}

// effectiveConfigResponse is a device's current config version.
type effectiveConfigResponse struct {
	DeviceID  string                   `json:"device_id"`
	Version   int64                    `json:"version" doc:"0 when the device has no config version yet"`
	Hash      string                   `json:"hash" doc:"SHA-256 of the canonical content, as sent to the device"`
	Reason    string                   `json:"reason,omitempty" doc:"edit, rollback, refresh or push"`
	CreatedBy string                   `json:"created_by,omitempty"`
	CreatedAt time.Time                `json:"created_at"`
	Entries   []effectiveEntryResponse `json:"entries"`
	Sync      configSyncResponse       `json:"sync"`
}

func maskedValue(secret bool, v json.RawMessage) any {
	if secret {
		return secretSet
	}
	if v == nil {
		return nil
	}
	return v
}

func effectiveOf(e devconfig.Effective) effectiveConfigResponse {
	out := effectiveConfigResponse{DeviceID: e.DeviceID, Version: e.Version, Hash: e.Hash, Reason: e.Reason,
		CreatedBy: e.CreatedBy, CreatedAt: e.CreatedAt, Sync: configSyncOf(e.Sync),
		Entries: make([]effectiveEntryResponse, len(e.Entries))}
	for i, it := range e.Entries {
		out.Entries[i] = effectiveEntryResponse{Key: it.Key, Type: string(it.Type), Value: maskedValue(it.Secret, it.Value),
			Secret: it.Secret, Layer: string(it.Layer), Source: it.Source}
	}
	return out
}

// configChangeResponse is one key's change in a version.
type configChangeResponse struct {
	Key    string `json:"key"`
	Op     string `json:"op" doc:"added, removed or changed"`
	Type   string `json:"type"`
	Secret bool   `json:"secret"`
	Layer  string `json:"layer"`
	Old    any    `json:"old,omitempty" doc:"the previous value; a secret shows {\"secret\":true,\"set\":true}"`
	New    any    `json:"new,omitempty"`
}

// configVersionResponse is one version of a device's config.
type configVersionResponse struct {
	Version   int64                  `json:"version"`
	Hash      string                 `json:"hash"`
	Reason    string                 `json:"reason"`
	CreatedBy string                 `json:"created_by,omitempty" doc:"user or token ID; empty when the platform made it"`
	CreatedAt time.Time              `json:"created_at"`
	Changes   []configChangeResponse `json:"changes" doc:"the diff against the previous version"`
}

func configVersionOf(v devconfig.VersionInfo) configVersionResponse {
	out := configVersionResponse{Version: v.Version, Hash: v.Hash, Reason: v.Reason, CreatedBy: v.CreatedBy,
		CreatedAt: v.CreatedAt, Changes: make([]configChangeResponse, len(v.Changes))}
	for i, c := range v.Changes {
		ch := configChangeResponse{Key: c.Key, Op: c.Op, Type: string(c.Type), Secret: c.Secret, Layer: string(c.Layer)}
		if c.Secret {
			if c.Op != devconfig.OpAdded {
				ch.Old = secretSet
			}
			if c.Op != devconfig.OpRemoved {
				ch.New = secretSet
			}
		} else {
			ch.Old, ch.New = maskedValue(false, c.Old), maskedValue(false, c.New)
		}
		out.Changes[i] = ch
	}
	return out
}

// rollbackConfigRequest is the body of POST …/config/rollback.
type rollbackConfigRequest struct {
	Version int64 `json:"version" doc:"the earlier version whose content becomes current again"`
}

// pushConfigRequest is the body of POST /config/push.
type pushConfigRequest struct {
	Target commandTarget `json:"target" doc:"exactly one of device_ids, tag, project_id, filter"`
}

// pushResultResponse is what a push did for one device.
type pushResultResponse struct {
	DeviceID string `json:"device_id"`
	Version  int64  `json:"version" doc:"the version sent; 0 when the device has no config"`
	Error    string `json:"error,omitempty"`
}

type pushConfigResponse struct {
	Devices []pushResultResponse `json:"devices"`
}

// configActor is who a change is recorded as made by: the user, or the tenant token.
func configActor(p Principal) string {
	if p.UserID != "" {
		return p.UserID
	}
	return "token:" + p.TokenID
}

func (s *Server) configReady() error {
	if s.deps.Config == nil {
		return &Error{Status: http.StatusServiceUnavailable, Message: "the configuration service is not available"}
	}
	return nil
}

// configScope names the scope of a route and the path parameter holding its ID.
func configScope(c echo.Context, scope store.ConfigScope) string {
	if scope == store.ScopeProject {
		return c.Param("project")
	}
	return c.Param("device")
}

// configError turns service errors into API errors. single renames the batch field names of
// a one-entry request ("entries[0].value" → "value", "entries" → "value").
func configError(err error, scope store.ConfigScope, single bool) error {
	var fe *store.InvalidError
	if single && errors.As(err, &fe) {
		fields := make(map[string]string, len(fe.Fields))
		for k, v := range fe.Fields {
			k = strings.TrimPrefix(k, "entries[0].")
			if k == "entries" {
				k = "value"
			}
			fields[k] = v
		}
		return &store.InvalidError{Fields: fields}
	}
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: string(scope) + " not found", Err: err}
	}
	if errors.Is(err, store.ErrConflict) {
		return &Error{Status: http.StatusConflict, Code: "conflict",
			Message: "the entry changed since you read it (version mismatch); nothing was written", Err: err}
	}
	return err
}

// auditEntries describes written entries for the audit log without secret values.
func auditEntries(entries []store.ConfigEntry) []map[string]any {
	out := make([]map[string]any, len(entries))
	for i, e := range entries {
		d := map[string]any{"name": e.Key, "type": string(e.Type), "version": e.Version, "sensitive": e.Secret}
		if !e.Secret {
			d["value"] = json.RawMessage(e.Value)
		}
		out[i] = d
	}
	return out
}

// listConfig serves GET …/{projects/:project|devices/:device}/config.
func (s *Server) listConfig(scope store.ConfigScope) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.configReady(); err != nil {
			return err
		}
		entries, err := s.deps.Config.Entries(c.Request().Context(), tenantFrom(c).Tenant.ID, scope, configScope(c, scope))
		if err != nil {
			return configError(err, scope, false)
		}
		return c.JSON(http.StatusOK, configEntriesOf(entries))
	}
}

// getConfigEntry serves GET …/config/:key.
func (s *Server) getConfigEntry(scope store.ConfigScope) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.configReady(); err != nil {
			return err
		}
		e, err := s.deps.Config.Entry(c.Request().Context(), tenantFrom(c).Tenant.ID, scope, configScope(c, scope), c.Param("key"))
		if errors.Is(err, store.ErrNotFound) {
			if serr := s.deps.Config.ScopeExists(c.Request().Context(), tenantFrom(c).Tenant.ID, scope, configScope(c, scope)); serr != nil {
				return configError(serr, scope, true)
			}
			return &Error{Status: http.StatusNotFound, Code: "not_found", Message: "config entry not found"}
		}
		if err != nil {
			return configError(err, scope, true)
		}
		return c.JSON(http.StatusOK, configEntryOf(e))
	}
}

// putConfigEntry serves PUT …/config/:key: create (version 0) or replace one entry.
func (s *Server) putConfigEntry(scope store.ConfigScope) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.configReady(); err != nil {
			return err
		}
		var body putEntryBody
		if err := decodeJSON(c, &body); err != nil {
			return err
		}
		if body.Key != "" && body.Key != c.Param("key") {
			return store.Invalid("key", "must match the key in the path, or be left out")
		}
		body.Key = c.Param("key")
		return s.putConfig(c, scope, []putEntryBody{body}, true)
	}
}

// putConfigBatch serves PUT …/config: several entries, all or nothing.
func (s *Server) putConfigBatch(scope store.ConfigScope) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.configReady(); err != nil {
			return err
		}
		var body putBatchBody
		if err := decodeJSON(c, &body); err != nil {
			return err
		}
		return s.putConfig(c, scope, body.Entries, false)
	}
}

func (s *Server) putConfig(c echo.Context, scope store.ConfigScope, bodies []putEntryBody, single bool) error {
	tc := tenantFrom(c)
	inputs := make([]devconfig.Input, len(bodies))
	for i, b := range bodies {
		inputs[i] = b.input()
	}
	id := configScope(c, scope)
	entries, err := s.deps.Config.Put(c.Request().Context(), tc.Tenant.ID, scope, id, inputs, configActor(tc.Principal))
	if err != nil {
		return configError(err, scope, single)
	}
	s.audit(c, auditConfigPut, string(scope), id, map[string]any{"scope": string(scope), "entries": auditEntries(entries)})
	if single {
		return c.JSON(http.StatusOK, configEntryOf(entries[0]))
	}
	return c.JSON(http.StatusOK, configEntriesOf(entries))
}

// deleteConfigEntry serves DELETE …/config/:key?version=n.
func (s *Server) deleteConfigEntry(scope store.ConfigScope) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.configReady(); err != nil {
			return err
		}
		tc := tenantFrom(c)
		id, key := configScope(c, scope), c.Param("key")
		// The project or device is looked up first, so another tenant's ID is 404 whatever
		// the query says.
		if err := s.deps.Config.ScopeExists(c.Request().Context(), tc.Tenant.ID, scope, id); err != nil {
			return configError(err, scope, true)
		}
		version, err := strconv.ParseInt(c.QueryParam("version"), 10, 64)
		if err != nil || version < 1 {
			return store.Invalid("version", "required: the entry's current version")
		}
		err = s.deps.Config.Delete(c.Request().Context(), tc.Tenant.ID, scope, id, key, version, configActor(tc.Principal))
		if errors.Is(err, store.ErrNotFound) {
			return &Error{Status: http.StatusNotFound, Code: "not_found", Message: "config entry not found"}
		}
		if err != nil {
			return configError(err, scope, true)
		}
		s.audit(c, auditConfigDelete, string(scope), id, map[string]any{"scope": string(scope), "name": key, "version": version})
		return c.NoContent(http.StatusNoContent)
	}
}

// effectiveConfig serves GET …/devices/:device/config/effective.
func (s *Server) effectiveConfig(c echo.Context) error {
	if err := s.configReady(); err != nil {
		return err
	}
	e, err := s.deps.Config.Effective(c.Request().Context(), tenantFrom(c).Tenant.ID, c.Param("device"))
	if err != nil {
		return configError(err, store.ScopeDevice, false)
	}
	return c.JSON(http.StatusOK, effectiveOf(e))
}

// configVersions serves GET …/devices/:device/config/versions, newest first.
func (s *Server) configVersions(c echo.Context) error {
	if err := s.configReady(); err != nil {
		return err
	}
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	page, err := s.deps.Config.Versions(c.Request().Context(), tenantFrom(c).Tenant.ID, c.Param("device"), opts)
	if err != nil {
		return configError(err, store.ScopeDevice, false)
	}
	return c.JSON(http.StatusOK, pageOf(page, configVersionOf))
}

// rollbackConfig serves POST …/devices/:device/config/rollback.
func (s *Server) rollbackConfig(c echo.Context) error {
	if err := s.configReady(); err != nil {
		return err
	}
	tc := tenantFrom(c)
	var req rollbackConfigRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	id := c.Param("device")
	e, err := s.deps.Config.Rollback(c.Request().Context(), tc.Tenant.ID, id, req.Version, configActor(tc.Principal))
	if err != nil {
		return configError(err, store.ScopeDevice, false)
	}
	s.audit(c, auditConfigRollback, "device", id, map[string]any{"to_version": req.Version, "new_version": e.Version})
	return c.JSON(http.StatusOK, effectiveOf(e))
}

// pushConfig serves POST /config/push: send the targeted devices their current config again.
func (s *Server) pushConfig(c echo.Context) error {
	if err := s.configReady(); err != nil {
		return err
	}
	tc := tenantFrom(c)
	var req pushConfigRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	t, err := req.Target.target()
	if err != nil {
		return err
	}
	results, err := s.deps.Config.Push(c.Request().Context(), tc.Tenant.ID, t, configActor(tc.Principal))
	if err != nil {
		return configError(err, store.ScopeDevice, false)
	}
	out := pushConfigResponse{Devices: make([]pushResultResponse, len(results))}
	ids := make([]string, len(results))
	for i, r := range results {
		out.Devices[i] = pushResultResponse{DeviceID: r.DeviceID, Version: r.Version, Error: r.Error}
		ids[i] = r.DeviceID
	}
	s.audit(c, auditConfigPush, "device", "", map[string]any{"devices": ids, "tag": t.Tag, "project_id": t.ProjectID})
	return c.JSON(http.StatusAccepted, out)
}
