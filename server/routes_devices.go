package server

import (
	"net/http"
	"strings"

	"github.com/espadmin/espadmin/server/fleet"
)

type (
	commandPage = pageResponse[commandResponse]
)

// deviceRoutes describes the device, command and event routes; the services live in package
// fleet.
func (s *Server) deviceRoutes() []apiRoute {
	const (
		get, post, patch, del = http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete
		devices               = "/api/v1/tenants/:tenant/devices"
		device                = devices + "/:device"
	)
	return []apiRoute{
		{Method: post, Path: devices, Handler: s.createDevice, Tag: "devices", Summary: "Create a device",
			Description: "Answers with the device ID (`id`) and its MQTT secret (`secret`), shown only this once, and the provisioning bundle. The device connects with username = client ID = id and password = secret.",
			Auth:        authTenant, Perm: PermDevicesWrite, Request: createDeviceRequest{}, Status: http.StatusCreated,
			Response: deviceCredentialsResponse{}},
		{Method: get, Path: devices, Handler: s.listDevices, Tag: "devices", Summary: "List devices",
			Auth: authTenant, Perm: PermDevicesRead, Query: deviceQuery{}, Response: devicePage{}},
		{Method: get, Path: devices + "/export.csv", Handler: s.exportDevices, Tag: "devices", Summary: "Export the device list as CSV",
			Description: "Every device matching the filters of the device list (same query, same order), streamed as CSV with a header row: " + strings.Join(deviceCSVHeader, ", ") + ". Tags are separated by spaces; status is online, offline or disabled. A text that a spreadsheet would read as a formula starts with '.",
			Auth:        authTenant, Perm: PermDevicesRead, Query: deviceFilterInput{}, Response: "", ResponseType: "text/csv"},
		{Method: post, Path: devices + "/bulk", Handler: s.bulkCreateDevices, Tag: "devices", Summary: "Create many devices from a CSV (bulk provisioning)",
			Description: "The body is `text/csv`: a header naming the columns (`name` required; `project`, a project's name or ID, and `tags`, separated by spaces or semicolons, optional), then one device a line, at most 1000. Every line is checked first: any bad line answers 422 with one field per problem, `lines[N].name`, `lines[N].project`, `lines[N].tags[i]` or `lines[N]` (N is the line number in the file, the header being line 1), and nothing is created. Otherwise the answer (201) is a zip: for each device its provisioning bundle with its secret (`NNNN-name-id.json`) and the same as an ESP-IDF NVS CSV (`NNNN-name-id.nvs.csv`, NNNN the line), plus `devices.csv` listing them. The secrets are only in this answer.",
			Auth:        authTenant, Perm: PermDevicesWrite, Request: "", RequestType: "text/csv", Status: http.StatusCreated,
			Response: []byte{}, ResponseType: "application/zip", Errors: []int{http.StatusUnsupportedMediaType, http.StatusRequestEntityTooLarge}},
		{Method: get, Path: devices + "/stats", Handler: s.deviceStats, Tag: "devices", Summary: "Count devices: online, offline, disabled, per firmware version",
			Auth: authTenant, Perm: PermDevicesRead, Response: deviceStatsResponse{}},
		{Method: get, Path: devices + "/stats/history", Handler: s.fleetHistory, Tag: "devices", Summary: "Online and total devices over time",
			Description: "A count of the tenant's devices every `history.fleet_interval` (5 minutes by default), kept `history.retention` (30 days by default).",
			Auth:        authTenant, Perm: PermDevicesRead, Query: historyQuery{}, Response: fleetHistoryResponse{}},
		{Method: get, Path: device + "/history", Handler: s.deviceHistory, Tag: "devices", Summary: "A device's presence and health over time",
			Description: "Every presence change and every metadata report (RSSI, free heap, uptime) in the window, kept `history.retention` (30 days by default).",
			Auth:        authTenant, Perm: PermDevicesRead, Query: historyQuery{}, Response: deviceHistoryResponse{}},
		{Method: get, Path: device, Handler: s.getDevice, Tag: "devices", Summary: "Show a device",
			Auth: authTenant, Perm: PermDevicesRead, Response: deviceResponse{}},
		{Method: patch, Path: device, Handler: s.updateDevice, Tag: "devices", Summary: "Rename a device, change its tags or project link",
			Auth: authTenant, Perm: PermDevicesWrite, Request: updateDeviceRequest{}, Response: deviceResponse{}},
		{Method: del, Path: device, Handler: s.deleteDevice, Tag: "devices", Summary: "Delete a device",
			Description: "Its live MQTT session is closed at once.",
			Auth:        authTenant, Perm: PermDevicesWrite, Status: http.StatusNoContent},
		{Method: post, Path: device + "/rotate-credentials", Handler: s.rotateDevice, Tag: "devices", Summary: "Rotate a device's credentials",
			Description: "The body is optional (no body means `{\"mode\":\"immediate\"}`). Immediate: a new secret and a new per-device key; the old secret is refused from now on and the live session is closed at once. The answer carries the new secret and bundle, shown only this once. Staged (`{\"mode\":\"staged\"}`): answers 202 with the device and its pending `credentials_rotation`, and no secret; the new secret goes to the device only, as the platform config key `_mqtt_secret` sealed with its key (at once when it is online, at its boot refresh otherwise). The old secret keeps working until the device acknowledges that config; then the broker accepts only the new one and the live session is closed, so the device reconnects with it. The per-device key is kept.",
			Auth:        authTenant, Perm: PermDevicesWrite, Request: rotateDeviceRequest{}, Response: deviceCredentialsResponse{}},
		{Method: post, Path: device + "/disable", Handler: s.setDeviceDisabled(true), Tag: "devices", Summary: "Disable a device",
			Description: "The broker refuses the device and its live session is closed at once.",
			Auth:        authTenant, Perm: PermDevicesWrite, Response: deviceResponse{}},
		{Method: post, Path: device + "/enable", Handler: s.setDeviceDisabled(false), Tag: "devices", Summary: "Enable a device",
			Auth: authTenant, Perm: PermDevicesWrite, Response: deviceResponse{}},
		{Method: get, Path: device + "/provisioning", Handler: s.deviceProvisioning, Tag: "devices", Summary: "Download the provisioning bundle",
			Description: "JSON (default) or, with format=nvs-csv, an ESP-IDF NVS CSV for nvs_partition_gen.py (docs/provisioning.md). The secret is only stored hashed, so it is empty unless rotate=true, which rotates the credentials first (the device is disconnected). Needs devices:write because the bundle holds the per-device key.",
			Auth:        authTenant, Perm: PermDevicesWrite, Query: provisioningQuery{}, Response: fleet.Bundle{}},

		{Method: post, Path: "/api/v1/tenants/:tenant/commands", Handler: s.sendCommand, Tag: "commands", Summary: "Send a command to devices",
			Description: "One command per target device, stored as queued and published at once to connected devices (then delivered). Offline devices receive it when they reconnect, until it expires: their items say queued_until_connected, and offline counts them. An unknown command name is 422 unknown_command.",
			Auth:        authTenant, Perm: PermCommandsWrite, Request: sendCommandRequest{}, Status: http.StatusAccepted,
			Response: sentCommandsResponse{}},
		{Method: get, Path: device + "/commands", Handler: s.listDeviceCommands, Tag: "commands", Summary: "List a device's commands, newest first",
			Auth: authTenant, Perm: PermDevicesRead, Query: commandQuery{}, Response: commandPage{}},
		{Method: get, Path: device + "/commands/:command", Handler: s.getDeviceCommand, Tag: "commands", Summary: "Show one command",
			Auth: authTenant, Perm: PermDevicesRead, Response: commandResponse{}},

		{Method: get, Path: "/api/v1/tenants/:tenant/events", Handler: s.streamEvents, Tag: "events", Summary: "Stream the tenant's events (Server-Sent Events)",
			Description: "Send `Accept: text/event-stream` (406 otherwise). A text/event-stream of presence, metadata, command and device events; each message is `event: TYPE` with the JSON event below as data. A slow reader loses events and gets a `dropped` event with their count. Heartbeat comments every 15 s. Events come from the server replica that handled the device's report.",
			Auth:        authTenant, Perm: PermDevicesRead, Response: eventStreamDoc{}, Errors: []int{http.StatusNotAcceptable}},
	}
}
