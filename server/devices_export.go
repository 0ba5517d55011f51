package server

import (
	"cmp"
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/store"
)

// deviceCSVHeader names the columns of the device list export.
var deviceCSVHeader = []string{"id", "name", "project_id", "project", "tags", "status", "firmware_version",
	"ip", "rssi", "free_heap", "last_seen_at", "created_at"}

// exportDevices serves GET /api/v1/tenants/:tenant/devices/export.csv: every device matching
// the device list's filters, in its order, streamed page by page so a large fleet never sits
// in memory.
func (s *Server) exportDevices(c echo.Context) error {
	tc := tenantFrom(c)
	f, err := parseDeviceQuery(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	projects, err := s.projectNames(c)
	if err != nil {
		return err
	}
	// The first page is read before the header goes out, so a failing store is still an
	// error status rather than a cut file.
	opts := store.ListOptions{Limit: store.MaxPageSize}
	page, err := s.deps.Store.ListDevices(ctx, tc.Tenant.ID, f, opts)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, `attachment; filename="devices-`+tc.Tenant.Slug+`.csv"`)
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	_ = w.Write(deviceCSVHeader)
	for {
		for _, d := range page.Items {
			_ = w.Write(deviceCSVRow(d, projects[d.ProjectID]))
		}
		w.Flush()
		if err := w.Error(); err != nil {
			return nil // the client went away
		}
		c.Response().Flush()
		if page.NextCursor == "" {
			return nil
		}
		opts.Cursor = page.NextCursor
		if page, err = s.deps.Store.ListDevices(ctx, tc.Tenant.ID, f, opts); err != nil {
			// The status is sent: end the file with a line that says it is incomplete.
			s.log.Error("device export cut short", "tenant", tc.Tenant.ID, "err", err)
			_ = w.Write([]string{"# export incomplete: " + err.Error()})
			w.Flush()
			return nil
		}
	}
}

// deviceCSVRow is one device in the export.
func deviceCSVRow(d store.Device, project string) []string {
	status := "offline"
	switch {
	case d.Disabled:
		status = "disabled"
	case d.Presence.Online:
		status = "online"
	}
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	m := d.Metadata
	rssi, heap := "", ""
	if !m.UpdatedAt.IsZero() {
		rssi, heap = strconv.Itoa(m.RSSI), strconv.FormatInt(m.FreeHeap, 10)
	}
	return []string{d.ID, csvSafe(d.Name), d.ProjectID, csvSafe(project), strings.Join(d.Tags, " "), status,
		csvSafe(m.FirmwareVersion), m.IP, rssi, heap, stamp(d.Presence.LastSeenAt), stamp(d.CreatedAt)}
}

// csvSafe keeps a spreadsheet from reading a user-chosen text as a formula.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// projectNames maps the tenant's project IDs to their names.
func (s *Server) projectNames(c echo.Context) (map[string]string, error) {
	out := map[string]string{}
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := s.deps.Store.ListProjects(c.Request().Context(), tenantFrom(c).Tenant.ID, opts)
		if err != nil {
			return nil, err
		}
		for _, p := range page.Items {
			out[p.ID] = p.Name
		}
		if page.NextCursor == "" {
			return out, nil
		}
		opts.Cursor = page.NextCursor
	}
}

// deviceStatsResponse is the fleet at a glance, for the dashboard.
type deviceStatsResponse struct {
	Total    int64               `json:"total"`
	Online   int64               `json:"online"`
	Offline  int64               `json:"offline"`
	Disabled int64               `json:"disabled"`
	Firmware []firmwareCountItem `json:"firmware" doc:"devices per reported firmware version, most devices first; \"\" is devices that never reported"`
}

type firmwareCountItem struct {
	Version string `json:"version"`
	Devices int64  `json:"devices"`
}

// deviceStats serves GET /api/v1/tenants/:tenant/devices/stats with one grouped query, so the
// dashboard never downloads the device list.
func (s *Server) deviceStats(c echo.Context) error {
	counts, err := s.deps.Store.DeviceCounts(c.Request().Context(), tenantFrom(c).Tenant.ID)
	if err != nil {
		return err
	}
	out := deviceStatsResponse{Total: counts.Total, Online: counts.Online, Offline: counts.Total - counts.Online,
		Disabled: counts.Disabled, Firmware: []firmwareCountItem{}}
	for v, n := range counts.ByFirmware {
		out.Firmware = append(out.Firmware, firmwareCountItem{Version: v, Devices: n})
	}
	slices.SortFunc(out.Firmware, func(a, b firmwareCountItem) int {
		if a.Devices != b.Devices {
			return cmp.Compare(b.Devices, a.Devices)
		}
		return strings.Compare(a.Version, b.Version)
	})
	return c.JSON(http.StatusOK, out)
}
