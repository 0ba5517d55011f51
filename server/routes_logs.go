package server

import "net/http"

// logRoutes describes the live log and device error routes; the services live in packages
// logrelay and devicerrors. The log stream is a WebSocket (logs.go); the error routes read
// the store directly, so any replica answers them.
func (s *Server) logRoutes() []apiRoute {
	const (
		get, post, put = http.MethodGet, http.MethodPost, http.MethodPut
		tenant         = "/api/v1/tenants/:tenant"
		device         = tenant + "/devices/:device"
		group          = tenant + "/errors/:group"
	)
	return []apiRoute{
		{Method: get, Path: device + "/logs/stream", Handler: s.streamLogs, Tag: "logs", Summary: "Stream a device's live logs (WebSocket)",
			Description: "A WebSocket (426 upgrade_required for a plain request). Browsers must open it from the public URL's origin or an allowed one (403 origin_refused). The first viewer of a device turns debug on at `level` and the last one leaving turns it off; while viewers remain the server renews debug before the device's own time limit. Each text message is one JSON frame: `lines` (in device order), `dropped` (this viewer read too slowly and lost `count` lines), `gap` (lines lost in transit or by the device), `debug` (debug switched on or off, by anyone). Lines are never stored. See docs/logs-and-errors.md.",
			Auth:        authTenant, Perm: PermDevicesRead, Query: logStreamQuery{}, Status: http.StatusSwitchingProtocols,
			Response: logFrameDoc{}, Errors: []int{http.StatusUpgradeRequired, http.StatusUnprocessableEntity, http.StatusServiceUnavailable}},

		{Method: get, Path: tenant + "/errors", Handler: s.listErrorGroups, Tag: "errors", Summary: "List device error groups, newest first",
			Description: "Reports are grouped by type, message and firmware version.",
			Auth:        authTenant, Perm: PermDevicesRead, Query: errorGroupQuery{}, Response: errorGroupPage{}},
		{Method: get, Path: tenant + "/errors/trend", Handler: s.getErrorTrend, Tag: "errors", Summary: "Count the tenant's error reports per day",
			Description: "The last 14 days (UTC), oldest first, counted from the reports kept (`errors.retention`); the dashboard charts it.",
			Auth:        authTenant, Perm: PermDevicesRead, Response: errorTrendResponse{}},
		{Method: get, Path: group, Handler: s.getErrorGroup, Tag: "errors", Summary: "Show an error group with its devices and latest reports",
			Description: "The count, first and last seen and the per-device counts cover every report the group had; the latest reports, the backtrace and the trend come from the reports kept (`errors.retention`, 90 days by default).",
			Auth:        authTenant, Perm: PermDevicesRead, Response: errorGroupDetailResponse{}},
		{Method: post, Path: group + "/resolve", Handler: s.setErrorGroupResolved(true), Tag: "errors", Summary: "Mark an error group resolved",
			Description: "It stays resolved while devices on the same firmware report it; when the same error appears on a newer firmware the group is reopened.",
			Auth:        authTenant, Perm: PermDevicesWrite, Response: errorGroupResponse{}},
		{Method: post, Path: group + "/reopen", Handler: s.setErrorGroupResolved(false), Tag: "errors", Summary: "Reopen an error group",
			Auth: authTenant, Perm: PermDevicesWrite, Response: errorGroupResponse{}},
		{Method: get, Path: device + "/errors", Handler: s.listDeviceErrorGroups, Tag: "errors", Summary: "List the error groups seen on a device, newest first",
			Auth: authTenant, Perm: PermDevicesRead, Query: pageQuery{}, Response: errorGroupPage{}},

		{Method: get, Path: tenant + "/settings/bugsnag", Handler: s.getBugsnagSettings, Tag: "errors", Summary: "Show where device errors are forwarded",
			Description: "The API key is write-only: only whether one is set is shown.",
			Auth:        authTenant, Perm: PermSettingsManage, Response: bugsnagSettingsResponse{}},
		{Method: put, Path: tenant + "/settings/bugsnag", Handler: s.putBugsnagSettings, Tag: "errors", Summary: "Set the Bugsnag API key, endpoint and release stage",
			Description: "With project_id, sets that project's key and release stage, which override the tenant's. The key is sealed with the server's master key and never shown again; the audit log records the change without it.",
			Auth:        authTenant, Perm: PermSettingsManage, Request: bugsnagSettingsRequest{}, Response: bugsnagSettingsResponse{},
			Errors: []int{http.StatusConflict}},
	}
}
