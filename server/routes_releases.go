package server

import (
	"net/http"
)

type projectPage = pageResponse[projectResponse]

type rolloutDevicePage = pageResponse[rolloutDeviceResponse]

// releaseRoutes describes the project, release and rollout routes (docs/ota.md); the service
// lives in package ota.
func (s *Server) releaseRoutes() []apiRoute {
	const (
		get, post, patch, del = http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete
		projects              = "/api/v1/tenants/:tenant/projects"
		project               = projects + "/:project"
		releases              = project + "/releases"
		release               = releases + "/:release"
		rollouts              = "/api/v1/tenants/:tenant/rollouts"
		rollout               = rollouts + "/:rollout"
	)
	return []apiRoute{
		{Method: get, Path: projects, Handler: s.listProjects, Tag: "projects", Summary: "List projects",
			Auth: authTenant, Perm: PermDevicesRead, Query: pageQuery{}, Response: projectPage{}},
		{Method: post, Path: projects, Handler: s.createProject, Tag: "projects", Summary: "Create a project",
			Description: "Generates the project's Ed25519 signing key pair: the private key is sealed with the master key; the public key is shown and goes into provisioning bundles. A taken name is 422 on name.",
			Auth:        authTenant, Perm: PermReleasesWrite, Request: projectRequest{}, Status: http.StatusCreated, Response: projectResponse{}},
		{Method: get, Path: project, Handler: s.getProject, Tag: "projects", Summary: "Show a project",
			Auth: authTenant, Perm: PermDevicesRead, Response: projectResponse{}},
		{Method: patch, Path: project, Handler: s.updateProject, Tag: "projects", Summary: "Change a project",
			Description: "signing.enabled=false turns update signing off; the project then shows signing as unsafe. Devices provisioned with the public key refuse unsigned updates.",
			Auth:        authTenant, Perm: PermReleasesWrite, Request: projectRequest{}, Response: projectResponse{}},
		{Method: del, Path: project, Handler: s.deleteProject, Tag: "projects", Summary: "Delete a project with its releases and rollouts",
			Description: "Its devices stay, unlinked.",
			Auth:        authTenant, Perm: PermReleasesWrite, Status: http.StatusNoContent},

		{Method: get, Path: releases, Handler: s.listReleases, Tag: "releases", Summary: "List a project's releases, newest version first",
			Auth: authTenant, Perm: PermDevicesRead, Response: releaseListResponse{}},
		{Method: post, Path: releases, Handler: s.createRelease, BodyLimit: s.releaseBodyLimit, Tag: "releases", Summary: "Upload a release (and optionally start a rollout)",
			Description: "The body is the ESP32 application image, either raw (`Content-Type: application/octet-stream`, parameters in the query) or as the `file` part of `multipart/form-data` (parameters as form fields before the file, or in the query). It streams into firmware storage while it is validated: not an image, truncated, corrupt, or built for another chip than the project's releases → 422 `invalid_image` with the reason, and nothing is stored. Over the size cap (16 MiB by default) → 413. A duplicate version → 409. A version that differs from the image's own (esp_app_desc_t) is a warning, or 422 when the project refuses mismatches.",
			Auth:        authTenant, Perm: PermReleasesWrite, Query: releaseUploadQuery{}, Status: http.StatusCreated,
			Response: releaseCreatedResponse{}, Errors: []int{http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType}},
		{Method: get, Path: release, Handler: s.getRelease, Tag: "releases", Summary: "Show a release",
			Auth: authTenant, Perm: PermDevicesRead, Response: releaseResponse{}},
		{Method: patch, Path: release, Handler: s.updateRelease, Tag: "releases", Summary: "Change a release's notes",
			Auth: authTenant, Perm: PermReleasesWrite, Request: updateReleaseRequest{}, Response: releaseResponse{}},
		{Method: del, Path: release, Handler: s.deleteRelease, Tag: "releases", Summary: "Delete a release and its binary",
			Description: "Refused (409) while an active or paused rollout uses it.",
			Auth:        authTenant, Perm: PermReleasesWrite, Status: http.StatusNoContent, Errors: []int{http.StatusConflict}},
		{Method: get, Path: release + "/download", Handler: s.releaseDownload, Tag: "releases", Summary: "A signed, expiring download URL",
			Auth: authTenant, Perm: PermDevicesRead, Response: downloadResponse{}},
		{Method: get, Path: "/api/v1/public/tenants/:tenant/releases/:release/firmware.bin", Handler: s.publicRelease, Tag: "releases", Summary: "Stable public download",
			Description: "Redirects (302) to a fresh signed URL when the release's project enables public downloads; 404 otherwise. :tenant is the tenant ID.",
			Auth:        authNone, Status: http.StatusFound, Errors: []int{http.StatusNotFound}},

		{Method: get, Path: rollouts, Handler: s.listRollouts, Tag: "rollouts", Summary: "List rollouts",
			Auth: authTenant, Perm: PermDevicesRead, Query: rolloutQuery{}, Response: rolloutList{}},
		{Method: post, Path: rollouts, Handler: s.createRollout, Tag: "rollouts", Summary: "Start a rollout of a release",
			Description: "Sends every device of the first stage a signed update command; devices already on the version are skipped. Stages advance on their own while the failure rate stays at or under failure_threshold and the rollout pauses itself when it passes it.",
			Auth:        authTenant, Perm: PermReleasesWrite, Request: createRolloutRequest{}, Status: http.StatusCreated, Response: rolloutResponse{}},
		{Method: post, Path: rollouts + "/preview", Handler: s.previewRollout, Tag: "rollouts", Summary: "Count the devices a rollout would reach",
			Description: "Takes the body of POST /rollouts and starts nothing: the number of target devices, of the first stage's, and of those already on the version. For a confirmation before starting.",
			Auth:        authTenant, Perm: PermReleasesWrite, Request: createRolloutRequest{}, Response: rolloutPreviewResponse{}},
		{Method: get, Path: rollout, Handler: s.getRollout, Tag: "rollouts", Summary: "Show a rollout with its totals",
			Auth: authTenant, Perm: PermDevicesRead, Response: rolloutResponse{}},
		{Method: get, Path: rollout + "/devices", Handler: s.listRolloutDevices, Tag: "rollouts", Summary: "List a rollout's devices and their update states",
			Auth: authTenant, Perm: PermDevicesRead, Query: pageQuery{}, Response: rolloutDevicePage{}},
		{Method: post, Path: rollout + "/pause", Handler: s.rolloutAction("pause"), Tag: "rollouts", Summary: "Pause a rollout",
			Description: "Commands not yet delivered are withdrawn; devices already updating carry on. 409 unless active.",
			Auth:        authTenant, Perm: PermReleasesWrite, Response: rolloutResponse{}, Errors: []int{http.StatusConflict}},
		{Method: post, Path: rollout + "/resume", Handler: s.rolloutAction("resume"), Tag: "rollouts", Summary: "Resume a paused rollout",
			Description: "Optionally with a new failure_threshold. 409 unless paused.",
			Auth:        authTenant, Perm: PermReleasesWrite, Request: resumeRolloutRequest{}, Response: rolloutResponse{}, Errors: []int{http.StatusConflict}},
		{Method: post, Path: rollout + "/abort", Handler: s.rolloutAction("abort"), Tag: "rollouts", Summary: "Abort a rollout",
			Description: "Final. 409 when it is already completed or aborted.",
			Auth:        authTenant, Perm: PermReleasesWrite, Response: rolloutResponse{}, Errors: []int{http.StatusConflict}},
		{Method: get, Path: "/api/v1/tenants/:tenant/devices/:device/updates", Handler: s.deviceUpdates, Tag: "rollouts", Summary: "A device's update history",
			Auth: authTenant, Perm: PermDevicesRead, Response: deviceUpdatesResponse{}},
	}
}
