package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/server/ota"
	"github.com/espadmin/espadmin/server/symbolize"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/blob"
)

// maxPanicLog bounds a pasted panic log: a whole ESP-IDF panic output with register dumps of
// two cores and a stack memory dump is a few KiB.
const maxPanicLog = 256 << 10

// elfResponse describes a release's ELF file.
type elfResponse struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256" doc:"equal to the image's image.elf_sha256"`
}

// stackFrameResponse is one symbolicated frame.
type stackFrameResponse struct {
	PC      string `json:"pc"`
	SP      string `json:"sp,omitempty"`
	Func    string `json:"func,omitempty"`
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Inlined bool   `json:"inlined,omitempty" doc:"this function was inlined into the next frame (same pc)"`
	Runtime bool   `json:"runtime,omitempty" doc:"ESP-IDF's panic or abort machinery, not the application"`
}

func stackOf(frames []symbolize.Frame) []stackFrameResponse {
	out := make([]stackFrameResponse, len(frames))
	for i, f := range frames {
		out[i] = stackFrameResponse{PC: fmt.Sprintf("0x%x", f.PC), Func: f.Func, File: f.File, Line: f.Line,
			Inlined: f.Inlined, Runtime: f.Resolved && symbolize.Runtime(f)}
		if f.SP != 0 {
			out[i].SP = fmt.Sprintf("0x%x", f.SP)
		}
	}
	return out
}

// rawStackOf is a backtrace without symbols.
func rawStackOf(frames []protocol.Frame) []stackFrameResponse {
	out := make([]stackFrameResponse, len(frames))
	for i, f := range frames {
		out[i] = stackFrameResponse{PC: f.PC, SP: f.SP, Func: f.Func, File: f.File, Line: f.Line}
	}
	return out
}

// symbolicateRequest is a pasted panic log.
type symbolicateRequest struct {
	Log string `json:"log" doc:"the panic output as the serial console shows it: the Backtrace: line (Xtensa) or the register dump with MEPC and RA (RISC-V)"`
}

// symbolicateResponse is the panic log's stack, symbolicated.
type symbolicateResponse struct {
	Reason    string               `json:"reason,omitempty" doc:"from the Guru Meditation line or the abort message"`
	Corrupted bool                 `json:"corrupted,omitempty" doc:"the backtrace ended with |<-CORRUPTED"`
	Stack     []stackFrameResponse `json:"stack" doc:"innermost first; inlined functions are frames of their own"`
}

// putReleaseELF serves PUT …/releases/:release/elf: the ELF file of the build the image came
// from, raw (application/octet-stream) or as the file part of multipart/form-data. The
// release's crash groups keyed by address are then re-keyed by function in the background
// (devicerrors.Regrouper), so crashes reported before the upload and after it are one group.
func (s *Server) putReleaseELF(c echo.Context) error {
	if err := s.otaReady(); err != nil {
		return err
	}
	_, r, err := s.release(c)
	if err != nil {
		return err
	}
	body, err := uploadBody(c, "the ELF file", nil)
	if err != nil {
		return err
	}
	info, err := s.deps.OTA.UploadELF(c.Request().Context(), r, body)
	if err != nil {
		return uploadReadError(err)
	}
	s.audit(c, auditReleaseELF, "release", r.ID, map[string]any{"version": r.Version, "elf_size": info.Size, "elf_sha256": info.SHA256})
	if s.deps.Regroup != nil {
		s.deps.Regroup.Queue(r)
	}
	return c.JSON(http.StatusOK, elfResponse{Size: info.Size, SHA256: info.SHA256})
}

// auditReleaseELF records an ELF upload.
const auditReleaseELF = "release.elf"

// releaseELFLimit is the body limit of the ELF upload.
func (s *Server) releaseELFLimit() int64 { return ota.MaxELFSize + multipartOverhead }

// getReleaseELF serves GET …/releases/:release/elf: 404 until one was uploaded.
func (s *Server) getReleaseELF(c echo.Context) error {
	if err := s.otaReady(); err != nil {
		return err
	}
	_, r, err := s.release(c)
	if err != nil {
		return err
	}
	info, ok, err := s.deps.OTA.ELF(c.Request().Context(), r)
	if err != nil {
		return err
	}
	if !ok {
		return &Error{Status: http.StatusNotFound, Message: "release " + r.Version + " has no ELF file"}
	}
	return c.JSON(http.StatusOK, elfResponse{Size: info.Size, SHA256: info.SHA256})
}

// symbolicateLog serves POST …/releases/:release/symbolicate: a pasted panic log against the
// release's ELF file.
func (s *Server) symbolicateLog(c echo.Context) error {
	if err := s.otaReady(); err != nil {
		return err
	}
	_, r, err := s.release(c)
	if err != nil {
		return err
	}
	var req symbolicateRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if len(req.Log) > maxPanicLog {
		return store.Invalid("log", fmt.Sprintf("must be at most %d KiB", maxPanicLog>>10))
	}
	pl, err := symbolize.ParsePanicLog(req.Log)
	if err != nil {
		return store.Invalid("log", err.Error())
	}
	ctx := c.Request().Context()
	tab, ok, err := s.deps.OTA.Symbols(ctx, r)
	if err != nil {
		return err
	}
	if !ok {
		return &Error{Status: http.StatusConflict, Code: "no_elf",
			Message: "release " + r.Version + " has no ELF file: upload it first (PUT …/elf or espadmin release elf)"}
	}
	return c.JSON(http.StatusOK, symbolicateResponse{Reason: pl.Reason, Corrupted: pl.Corrupted, Stack: stackOf(tab.SymbolicateRaw(pl.Frames))})
}

// groupStack is the symbolicated stack of the newest report with a backtrace, for the error
// group page. Reports are stored as the device sent them, so an ELF file uploaded after the
// crash symbolicates them from then on. symbolicated is false when the stack is raw.
func (s *Server) groupStack(ctx context.Context, reports []store.ErrorReport) (stack []stackFrameResponse, symbolicated bool) {
	for _, r := range reports {
		var frames []protocol.Frame
		if r.Stack == "" || json.Unmarshal([]byte(r.Stack), &frames) != nil || len(frames) == 0 {
			continue
		}
		if s.deps.OTA != nil {
			sym, ok, err := s.deps.OTA.SymbolicateFrames(ctx, r.TenantID, r.ProjectID, r.FirmwareVersion, frames)
			if err != nil {
				s.log.Warn("symbolicate error report", "tenant_id", r.TenantID, "report_id", r.ID, "error", err)
			}
			if ok {
				return stackOf(sym), true
			}
		}
		return rawStackOf(frames), false
	}
	return nil, false
}

// coreDumpResponse answers a stored upload.
type coreDumpResponse struct {
	Size int64 `json:"size"`
}

// coreDumpDownloadResponse hands out a stored core dump.
type coreDumpDownloadResponse struct {
	URL       string    `json:"url" doc:"signed; needs no other credential"`
	ExpiresAt time.Time `json:"expires_at"`
	Size      int64     `json:"size"`
}

// coreDumpLimit is the upload route's body limit: the largest core dump a device may announce.
func coreDumpLimit() int64 { return protocol.MaxCoreDumpSize }

// coreDumpDownloadTTL is the lifetime of a core dump download URL handed to a person.
const coreDumpDownloadTTL = 15 * time.Minute

// uploadCoreDump serves PUT /api/v1/coredumps/:tenant/:report: a device's core dump, to the
// signed URL its coredump command carried.
func (s *Server) uploadCoreDump(c echo.Context) error {
	if s.deps.CoreDumps == nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "core dumps are not collected by this server"}
	}
	tenantID, reportID := c.Param("tenant"), c.Param("report")
	if len(tenantID) > 64 || len(reportID) > 64 || blob.ValidateKey(devicerrors.CoreDumpBlobKey(tenantID, reportID)) != nil {
		return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "the upload URL's signature is not valid"}
	}
	req := c.Request()
	_ = http.NewResponseController(c.Response().Writer).SetReadDeadline(time.Now().Add(uploadDeadline))
	size, err := s.deps.CoreDumps.Accept(req.Context(), tenantID, reportID, c.QueryParams(), req.Body)
	var ue *devicerrors.UploadError
	if errors.As(err, &ue) {
		return &Error{Status: ue.Status, Message: ue.Reason}
	}
	if err != nil {
		return uploadReadError(err)
	}
	return c.JSON(http.StatusCreated, coreDumpResponse{Size: size})
}

// coreDumpDownload serves GET …/errors/:group/reports/:report/coredump. The core dump is
// looked up under the path's tenant only, so another tenant's report is 404.
func (s *Server) coreDumpDownload(c echo.Context) error {
	if s.deps.CoreDumps == nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "core dumps are not collected by this server"}
	}
	tenantID, reportID := tenantFrom(c).Tenant.ID, c.Param("report")
	notFound := &Error{Status: http.StatusNotFound, Message: "no core dump was uploaded for this report"}
	if len(reportID) > 64 || blob.ValidateKey(devicerrors.CoreDumpBlobKey(tenantID, reportID)) != nil {
		return notFound
	}
	ctx := c.Request().Context()
	obj, ok, err := s.deps.CoreDumps.Stat(ctx, tenantID, reportID)
	if err != nil {
		return err
	}
	if !ok {
		return notFound
	}
	u, err := s.deps.CoreDumps.DownloadURL(ctx, tenantID, reportID, coreDumpDownloadTTL)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, coreDumpDownloadResponse{URL: u, ExpiresAt: s.now().Add(coreDumpDownloadTTL), Size: obj.Size})
}

// coreDumpKeys lists where the core dumps of a tenant's reports may be, for the tenant's
// deletion: every report that announced one.
func (s *Server) coreDumpKeys(ctx context.Context, tenantID string) ([]string, error) {
	var keys []string
	gopts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		groups, err := s.deps.Store.ListErrorGroups(ctx, tenantID, store.ErrorGroupFilter{}, gopts)
		if err != nil {
			return nil, err
		}
		for _, g := range groups.Items {
			ropts := store.ListOptions{Limit: store.MaxPageSize}
			for {
				reps, err := s.deps.Store.ListErrorReports(ctx, tenantID, g.ID, "", ropts)
				if err != nil {
					return nil, err
				}
				for _, r := range reps.Items {
					if coreDumpSize(r) > 0 {
						keys = append(keys, devicerrors.CoreDumpBlobKey(tenantID, r.ID))
					}
				}
				if reps.NextCursor == "" {
					break
				}
				ropts.Cursor = reps.NextCursor
			}
		}
		if groups.NextCursor == "" {
			return keys, nil
		}
		gopts.Cursor = groups.NextCursor
	}
}

// coreDumpSize is the size of the whole core dump a report announced, 0 for none.
func coreDumpSize(r store.ErrorReport) int64 {
	var cd protocol.CoreDump
	if r.CoreDump == "" || json.Unmarshal([]byte(r.CoreDump), &cd) != nil {
		return 0
	}
	return cd.Size
}

// markCoreDumps sets core_dump_uploaded on the reports that announced a core dump and whose
// upload arrived.
func (s *Server) markCoreDumps(ctx context.Context, reports []store.ErrorReport, out []errorReportResponse) {
	if s.deps.CoreDumps == nil {
		return
	}
	for i, r := range reports {
		if coreDumpSize(r) == 0 {
			continue
		}
		if _, ok, err := s.deps.CoreDumps.Stat(ctx, r.TenantID, r.ID); err == nil && ok {
			out[i].CoreDumpUploaded = true
		}
	}
}
