package server

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// brokerRoutes describes the tenant broker settings routes and the device authentication
// endpoints external brokers call (docs/external-broker.md). A tenant's own broker is reached
// through bridges that package tenantbus runs. The device authentication endpoints sit
// outside the API's authentication (OwnAuth): they carry the shared secret mqtt.auth_secret,
// possibly as HTTP basic auth, which deviceAuthGuard checks.
func (s *Server) brokerRoutes() []apiRoute {
	const (
		get, post, put = http.MethodGet, http.MethodPost, http.MethodPut
		tenant         = "/api/v1/tenants/:tenant"
		secretNote     = " Answered only when the server sets mqtt.auth_secret (404 otherwise), to a caller presenting it in the X-ESPAdmin-Auth-Secret header, as the password of HTTP basic auth or as the query parameter `secret` (401 otherwise); rate-limited (429)."
	)
	guard := []echo.MiddlewareFunc{s.deviceAuthGuard}
	deviceAuthErrors := []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusTooManyRequests}
	return []apiRoute{
		{Method: get, Path: tenant + "/settings/broker", Handler: s.getBrokerSettings, Tag: "broker", Summary: "Show the tenant's MQTT broker settings",
			Description: "The password is write-only: only whether one is set is shown. version is what PUT must send back.",
			Auth:        authTenant, Perm: PermSettingsManage, Response: brokerSettingsResponse{}},
		{Method: put, Path: tenant + "/settings/broker", Handler: s.putBrokerSettings, Tag: "broker", Summary: "Choose the built-in broker or the tenant's own",
			Description: "Replaces the settings. With mode external the server connects to the tenant's broker through a bridge (restarted when the settings change, stopped when the tenant switches back to builtin): commands go out there, reports come in from there, and provisioning bundles point devices at it. Invalid settings are 422 with field errors; a stale version is 409. The password is sealed with the server's master key; the audit log records the change without it.",
			Auth:        authTenant, Perm: PermSettingsManage, Request: brokerSettingsRequest{}, Response: brokerSettingsResponse{},
			Errors: []int{http.StatusConflict}},
		{Method: post, Path: tenant + "/settings/broker/test", Handler: s.testBrokerSettings, Tag: "broker", Summary: "Test a connection to the tenant's broker",
			Description: "Connects once with the submitted settings (or, without a URL, the saved ones), subscribes to and publishes a probe under the topic root, and disconnects. A failed test is 200 with ok false, the error class and a message saying what to fix.",
			Auth:        authTenant, Perm: PermSettingsManage, Request: brokerTestRequest{}, Response: brokerTestResponse{}},
		{Method: get, Path: tenant + "/settings/broker/state", Handler: s.brokerState, Tag: "broker", Summary: "Show the live connection to the tenant's broker",
			Description: "This replica's bridge: status, the last error and its class, and since when. A failed status means a setting needs fixing; the bridge keeps retrying with backoff.",
			Auth:        authTenant, Perm: PermSettingsManage, Response: brokerStateResponse{}},

		{Method: post, Path: "/api/v1/mqtt/auth", Handler: s.emqxAuth, Middleware: guard, OwnAuth: true, Tag: "device-auth", Summary: "Check device credentials (EMQX HTTP authentication)",
			Description: "Body {\"username\",\"password\",\"clientid\"} (JSON or form): the device ID, its secret and the client ID (which must be the device ID). Always 200 with result allow or deny." + secretNote,
			Auth:        authNone, Request: deviceAuthRequest{}, Response: emqxAuthResponse{}, Errors: deviceAuthErrors},
		{Method: post, Path: "/api/v1/mqtt/user", Handler: s.goAuthUser, Middleware: guard, OwnAuth: true, Tag: "device-auth", Summary: "Check device credentials (mosquitto-go-auth HTTP backend)",
			Description: "Form or JSON username, password, clientid. 200 allows, 403 denies." + secretNote,
			Auth:        authNone, Request: deviceAuthRequest{}, Errors: append([]int{http.StatusForbidden}, deviceAuthErrors...)},
		{Method: post, Path: "/api/v1/mqtt/superuser", Handler: s.goAuthSuperuser, Middleware: guard, OwnAuth: true, Tag: "device-auth", Summary: "Superuser check (mosquitto-go-auth HTTP backend)",
			Description: "No device is a superuser: always 403." + secretNote,
			Auth:        authNone, Request: deviceAuthRequest{}, Status: http.StatusForbidden, Errors: deviceAuthErrors},
		{Method: post, Path: "/api/v1/mqtt/acl", Handler: s.goAuthACL, Middleware: guard, OwnAuth: true, Tag: "device-auth", Summary: "Check a device's topic access (mosquitto-go-auth HTTP backend)",
			Description: "Form or JSON username, clientid, topic and acc (1 read, 2 write, 3 read and write, 4 subscribe). The topic must be the device's own under its tenant's topic root (docs/protocol.md). 200 allows, 403 denies." + secretNote,
			Auth:        authNone, Request: deviceAuthRequest{}, Errors: append([]int{http.StatusForbidden}, deviceAuthErrors...)},
	}
}
