package server

import (
	"net/http"

	"github.com/espadmin/espadmin/store"
)

type configVersionPage = pageResponse[configVersionResponse]

// configRoutes describes the remote configuration routes (docs/configuration-devices.md); the
// service lives in package devconfig. Entries of a project ("project variables") and of a
// device ("custom properties"); the static segments effective, versions and rollback take
// precedence over :key.
func (s *Server) configRoutes() []apiRoute {
	const (
		get, post, put, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
		tenant              = "/api/v1/tenants/:tenant"
		project             = tenant + "/projects/:project/config"
		device              = tenant + "/devices/:device/config"
	)
	conflict := []int{http.StatusConflict}
	var docs []apiRoute
	for _, sc := range []struct {
		path, what, tag string
		scope           store.ConfigScope
	}{
		{project, "project variables, inherited by every device linked to the project", "config", store.ScopeProject},
		{device, "the device's custom properties, which override project variables", "config", store.ScopeDevice},
	} {
		docs = append(docs,
			apiRoute{Method: get, Path: sc.path, Handler: s.listConfig(sc.scope), Tag: sc.tag, Summary: "List " + sc.what,
				Description: "Ordered by key. Secret values read back as {\"secret\":true,\"set\":true}. Keys managed by the platform (starting with _) are not listed; see the effective config.",
				Auth:        authTenant, Perm: PermDevicesRead, Response: configEntriesResponse{}},
			apiRoute{Method: put, Path: sc.path, Handler: s.putConfigBatch(sc.scope), Tag: sc.tag, Summary: "Write several entries at once",
				Description: "All or nothing: any invalid entry is 422 with a field error per entry (entries[i].field), any entry whose version does not match is 409, and nothing is written. Affected devices get a new config version and a config command.",
				Auth:        authTenant, Perm: PermConfigWrite, Request: putConfigBatchRequest{}, Response: configEntriesResponse{},
				Errors: conflict},
			apiRoute{Method: get, Path: sc.path + "/:key", Handler: s.getConfigEntry(sc.scope), Tag: sc.tag, Summary: "Show one entry",
				Auth: authTenant, Perm: PermDevicesRead, Response: configEntryResponse{}},
			apiRoute{Method: put, Path: sc.path + "/:key", Handler: s.putConfigEntry(sc.scope), Tag: sc.tag, Summary: "Create or replace one entry",
				Description: "version 0 creates a key that must not exist; otherwise it must be the entry's current version (409 when it changed). Values are checked against the type and the ESP-IDF NVS limits and refused, never truncated; the device's whole config must fit in one 16 KiB command.",
				Auth:        authTenant, Perm: PermConfigWrite, Request: putConfigEntryRequest{}, Response: configEntryResponse{},
				Errors: conflict},
			apiRoute{Method: del, Path: sc.path + "/:key", Handler: s.deleteConfigEntry(sc.scope), Tag: sc.tag, Summary: "Delete one entry",
				Auth: authTenant, Perm: PermConfigWrite, Query: deleteConfigQuery{}, Status: http.StatusNoContent, Errors: conflict},
		)
	}
	return append(docs,
		apiRoute{Method: get, Path: device + "/effective", Handler: s.effectiveConfig, Tag: "config", Summary: "Show a device's effective config",
			Description: "The device's current config version: every key with the layer it comes from (project, device, platform), the version, the content hash and the delivery state (in_sync, pending, failed with the device's reason).",
			Auth:        authTenant, Perm: PermDevicesRead, Response: effectiveConfigResponse{}},
		apiRoute{Method: get, Path: device + "/versions", Handler: s.configVersions, Tag: "config", Summary: "List a device's config versions, newest first",
			Description: "Each version with who made it, when, why, and its diff against the previous version; secret values are masked.",
			Auth:        authTenant, Perm: PermDevicesRead, Query: pageQuery{}, Response: configVersionPage{}},
		apiRoute{Method: post, Path: device + "/rollback", Handler: s.rollbackConfig, Tag: "config", Summary: "Roll a device's config back to an earlier version",
			Description: "Makes a new version with the earlier content by writing device-level entries (project variables are not changed; a key the project added later stays). Answers with the effective config.",
			Auth:        authTenant, Perm: PermConfigWrite, Request: rollbackConfigRequest{}, Response: effectiveConfigResponse{},
			Errors: conflict},
		apiRoute{Method: post, Path: tenant + "/config/push", Handler: s.pushConfig, Tag: "config", Summary: "Send devices their current config again",
			Description: "For explicit devices, a tag or a project's devices. Devices without any config are listed with version 0.",
			Auth:        authTenant, Perm: PermConfigWrite, Request: pushConfigRequest{}, Status: http.StatusAccepted,
			Response: pushConfigResponse{}},
	)
}
