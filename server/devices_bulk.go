package server

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
)

// auditDeviceBulkCreate records one bulk provisioning (the IDs of every device it created).
const auditDeviceBulkCreate = "device.bulk_create"

// maxBulkDevices bounds one bulk provisioning request: its zip holds every secret and is built
// in memory.
const maxBulkDevices = 1000

// bulkRow is one valid line of a bulk provisioning CSV.
type bulkRow struct {
	line      int
	name      string
	projectID string
	tags      []string
}

// bulkCreateDevices serves POST /api/v1/tenants/:tenant/devices/bulk: a CSV of devices in, a
// zip of their provisioning bundles out. Every line is checked before anything is created: a
// bad line makes the whole request a 422 naming each bad line (lines[N].field, N the line
// number in the file, the header being line 1), and no device is created.
func (s *Server) bulkCreateDevices(c echo.Context) error {
	if err := s.fleetReady(); err != nil {
		return err
	}
	tc := tenantFrom(c)
	req := c.Request()
	if mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType)); err != nil || mt != "text/csv" {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "send the devices as text/csv"}
	}
	raw, err := io.ReadAll(req.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large", Message: fmt.Sprintf("the CSV is larger than %d bytes", mbe.Limit)}
		}
		return err
	}
	projects, err := s.projectNames(c)
	if err != nil {
		return err
	}
	rows, err := parseBulkCSV(raw, projects)
	if err != nil {
		return err
	}

	// Valid: create each device, then answer with the zip.
	ctx := req.Context()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var indexBuf bytes.Buffer
	index := csv.NewWriter(&indexBuf)
	_ = index.Write([]string{"line", "id", "name", "project", "tags", "bundle", "nvs_csv"})
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		p, err := s.deps.Devices.Create(ctx, tc.Tenant.ID, fleet.DeviceInput{Name: r.name, ProjectID: r.projectID, Tags: r.tags})
		if err != nil {
			// Devices of earlier lines exist: say which, so nothing is created twice on retry.
			s.audit(c, auditDeviceBulkCreate, "device", "", map[string]any{"devices": ids, "failed_line": r.line})
			return fmt.Errorf("bulk provisioning stopped at line %d after %d devices (IDs in the audit log): %w", r.line, len(ids), deviceError(err))
		}
		ids = append(ids, p.Device.ID)
		base := fmt.Sprintf("%04d-%s-%s", r.line, fileSafe(r.name), p.Device.ID)
		bundle, err := json.MarshalIndent(p.Bundle, "", "  ")
		if err != nil {
			return err
		}
		nvs, err := p.Bundle.NVSCSV()
		if err != nil {
			return err
		}
		for name, body := range map[string][]byte{base + ".json": bundle, base + ".nvs.csv": nvs} {
			f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Now()})
			if err != nil {
				return err
			}
			if _, err := f.Write(body); err != nil {
				return err
			}
		}
		_ = index.Write([]string{fmt.Sprint(r.line), p.Device.ID, csvSafe(r.name), csvSafe(projects[r.projectID]), strings.Join(r.tags, " "),
			base + ".json", base + ".nvs.csv"})
	}
	index.Flush()
	f, err := zw.Create("devices.csv")
	if err != nil {
		return err
	}
	if _, err := f.Write(indexBuf.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	s.audit(c, auditDeviceBulkCreate, "device", "", map[string]any{"devices": ids})
	h := c.Response().Header()
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="espadmin-devices-%d.zip"`, len(ids)))
	h.Set("Cache-Control", "no-store") // it holds secrets
	return c.Blob(http.StatusCreated, "application/zip", buf.Bytes())
}

// parseBulkCSV validates every line of a bulk provisioning CSV: a header naming the columns
// (name is required; project and tags are optional, in any order), then one device a line.
// project is a project's name or ID; tags are separated by spaces or semicolons.
func parseBulkCSV(raw []byte, projects map[string]string) ([]bulkRow, error) {
	byName := map[string]string{}
	for id, name := range projects {
		byName[strings.ToLower(name)] = id
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(raw, []byte("\ufeff"))))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err == io.EOF {
		return nil, store.Invalid("csv", "is empty: the first line names the columns, e.g. name,project,tags")
	}
	if err != nil {
		return nil, store.Invalid("csv", "line 1: "+csvReason(err))
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		switch h {
		case "name", "project", "tags":
			if _, dup := col[h]; dup {
				return nil, store.Invalid("csv", fmt.Sprintf("line 1: column %q appears twice", h))
			}
			col[h] = i
		default:
			return nil, store.Invalid("csv", fmt.Sprintf("line 1: unknown column %q (want name, project, tags)", h))
		}
	}
	if _, ok := col["name"]; !ok {
		return nil, store.Invalid("csv", "line 1: the header needs a name column")
	}
	fields := map[string]string{}
	var rows []bulkRow
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return nil, store.Invalid("csv", csvReason(err))
			}
			fields[fmt.Sprintf("lines[%d]", pe.StartLine)] = csvReason(err)
			if len(fields) > 50 {
				break
			}
			continue
		}
		line, _ := r.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(rec) != len(header) {
			fields[fmt.Sprintf("lines[%d]", line)] = fmt.Sprintf("has %d fields, the header %d", len(rec), len(header))
			continue
		}
		get := func(name string) string {
			if i, ok := col[name]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		row := bulkRow{line: line, name: get("name")}
		if msg := validDeviceName(row.name); msg != "" {
			fields[fmt.Sprintf("lines[%d].name", line)] = msg
		}
		if p := get("project"); p != "" {
			if _, ok := projects[p]; ok {
				row.projectID = p
			} else if id, ok := byName[strings.ToLower(p)]; ok {
				row.projectID = id
			} else {
				fields[fmt.Sprintf("lines[%d].project", line)] = fmt.Sprintf("no project %q in this tenant", p)
			}
		}
		tagFields := map[string]string{}
		row.tags = cleanTags(strings.FieldsFunc(get("tags"), func(r rune) bool { return r == ' ' || r == ';' }), tagFields)
		for k, v := range tagFields {
			fields[fmt.Sprintf("lines[%d].%s", line, k)] = v
		}
		rows = append(rows, row)
		if len(rows) > maxBulkDevices {
			return nil, store.Invalid("csv", fmt.Sprintf("more than %d devices: split the file", maxBulkDevices))
		}
	}
	if len(fields) > 0 {
		return nil, &store.InvalidError{Fields: fields}
	}
	if len(rows) == 0 {
		return nil, store.Invalid("csv", "lists no device: one device a line after the header")
	}
	return rows, nil
}

// csvReason is a CSV parse error without its position (the field name carries the line).
func csvReason(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return "is not valid CSV: " + pe.Err.Error()
	}
	return "is not valid CSV: " + err.Error()
}

// fileSafe turns a device name into a file name part.
func fileSafe(name string) string {
	out := []rune{}
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			out = append(out, r)
		} else {
			out = append(out, '_')
		}
		if len(out) == 40 {
			break
		}
	}
	return string(out)
}
