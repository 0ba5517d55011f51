package server

import "net/http"

// crashRoutes describe the release ELF file and the symbolication of panic logs (crash.go;
// docs/logs-and-errors.md "Crash symbolication"); the symbols come from package ota.
func (s *Server) crashRoutes() []apiRoute {
	const release = "/api/v1/tenants/:tenant/projects/:project/releases/:release"
	return []apiRoute{
		{Method: http.MethodPut, Path: "/api/v1/coredumps/:tenant/:report", Handler: s.uploadCoreDump, BodyLimit: coreDumpLimit, Tag: "errors", Summary: "Upload a crash report's core dump (devices)",
			Description: "The URL a coredump command hands a device, signed for one report, one device, the announced size and an expiry (24 h); the body is the core dump as it is in flash. A wrong or expired signature is 403, more bytes than announced 413, fewer 400; nothing is stored then. 201 means stored: the device erases its copy.",
			Auth:        authNone, Status: http.StatusCreated, Response: coreDumpResponse{}, Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge}},
		{Method: http.MethodGet, Path: "/api/v1/tenants/:tenant/errors/:group/reports/:report/coredump", Handler: s.coreDumpDownload, Tag: "errors", Summary: "A signed download URL of a report's core dump",
			Description: "For `idf.py coredump-info --core FILE --core-format raw` (or coredump-debug) with the release's ELF file. 404 until the device uploaded it.",
			Auth:        authTenant, Perm: PermDevicesRead, Response: coreDumpDownloadResponse{}},
		{Method: http.MethodPut, Path: release + "/elf", Handler: s.putReleaseELF, BodyLimit: s.releaseELFLimit, Tag: "releases", Summary: "Upload the release's ELF file",
			Description: "The ELF file of the build the image came from (build/<project>.elf), raw (`application/octet-stream`) or as the `file` part of `multipart/form-data`. Its SHA-256 must equal the image's `image.elf_sha256` (esp_app_desc_t.app_elf_sha256): another build's file is 422 on `elf` with both hashes, and nothing is stored. A file without debug information is 422 too. It is kept beside the image and symbolicates the release's crash reports, those already stored included; the error groups of crashes reported before it, keyed by address, are re-keyed by function in the background, so later reports of the same crash count in them.",
			Auth:        authTenant, Perm: PermReleasesWrite, Response: elfResponse{}, Errors: []int{http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType}},
		{Method: http.MethodGet, Path: release + "/elf", Handler: s.getReleaseELF, Tag: "releases", Summary: "Describe the release's ELF file",
			Description: "404 until one was uploaded.",
			Auth:        authTenant, Perm: PermDevicesRead, Response: elfResponse{}},
		{Method: http.MethodPost, Path: release + "/symbolicate", Handler: s.symbolicateLog, Tag: "releases", Summary: "Symbolicate a pasted panic log",
			Description: "Reads the `Backtrace:` line (Xtensa) or MEPC and RA of the register dump (RISC-V) of an ESP-IDF panic output and answers function, file and line of each frame, inlined functions included, from the release's ELF file. A log without a backtrace is 422 on `log`; a release without an ELF file is 409 `no_elf`.",
			Auth:        authTenant, Perm: PermDevicesRead, Request: symbolicateRequest{}, Response: symbolicateResponse{}, Errors: []int{http.StatusConflict}},
	}
}
