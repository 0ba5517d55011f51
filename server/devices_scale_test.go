package server

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// raw sends a request and returns the status, the headers and the body as they came.
func (c *apiClient) raw(method, path, contentType string, body io.Reader) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.csrf != "" {
		req.Header.Set(csrfHeader, c.csrf)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// TestDeviceListSortTotalExport: the device list sorts by a column in both directions, pages
// through every device with the total on each page, filters by status, exports the same
// list as CSV, and refuses an unknown column, status or cursor with a 422 naming the field.
func TestDeviceListSortTotalExport(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	proj := w.greenhouse(t)
	names := []string{"delta", "=alpha", "echo", "charlie", "bravo"}
	ids := map[string]string{}
	for i, n := range names {
		body := map[string]any{"name": n, "tags": []string{"t" + fmt.Sprint(i%2)}}
		if i%2 == 0 {
			body["project_id"] = proj.ID
		}
		r, _ := w.create(t, body)
		ids[n] = r["id"].(string)
	}
	if status, resp := w.owner.do("POST", "/api/v1/tenants/alpha/devices/"+ids["echo"]+"/disable", nil); status != 200 {
		t.Fatalf("disable: %d %v", status, resp)
	}

	walk := func(q string) ([]string, []float64) {
		var got []string
		var totals []float64
		cursor := ""
		for range 10 {
			page := w.get(t, "/api/v1/tenants/alpha/devices?limit=2"+q+"&cursor="+cursor)
			for _, it := range items(t, page) {
				got = append(got, it["name"].(string))
			}
			totals = append(totals, page["total"].(float64))
			if cursor = page["next_cursor"].(string); cursor == "" {
				break
			}
		}
		return got, totals
	}
	sorted := []string{"=alpha", "bravo", "charlie", "delta", "echo"}
	got, totals := walk("&sort=name")
	if !slices.Equal(got, sorted) || !slices.Equal(totals, []float64{5, 5, 5}) {
		t.Errorf("sort=name: %v totals %v", got, totals)
	}
	got, _ = walk("&sort=-name")
	if want := slices.Clone(sorted); !slices.Equal(got, append(want[:0:0], "echo", "delta", "charlie", "bravo", "=alpha")) {
		t.Errorf("sort=-name: %v", got)
	}
	got, totals = walk("&status=enabled&sort=name")
	if !slices.Equal(got, []string{"=alpha", "bravo", "charlie", "delta"}) || totals[0] != 4 {
		t.Errorf("status=enabled: %v totals %v", got, totals)
	}
	got, totals = walk("&status=disabled")
	if !slices.Equal(got, []string{"echo"}) || totals[0] != 1 {
		t.Errorf("status=disabled: %v totals %v", got, totals)
	}
	got, _ = walk("&sort=-project&project=" + proj.ID)
	if len(got) != 3 {
		t.Errorf("project filter: %v", got)
	}

	stats := w.get(t, "/api/v1/tenants/alpha/devices/stats")
	if stats["total"] != 5.0 || stats["offline"] != 5.0 || stats["disabled"] != 1.0 || fmt.Sprint(stats["firmware"]) != "[map[devices:5 version:]]" {
		t.Errorf("stats: %v", stats)
	}

	// The export: the same filter and order, every column, formulas defused.
	status, h, body := w.owner.raw("GET", "/api/v1/tenants/alpha/devices/export.csv?sort=name&tag=t0", "", nil)
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") || !strings.Contains(h.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v %s", status, h, body)
	}
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatalf("export is not CSV: %v\n%s", err, body)
	}
	if !slices.Equal(rows[0], deviceCSVHeader) || len(rows) != 4 {
		t.Fatalf("export rows: %v", rows)
	}
	if rows[1][1] != "bravo" || rows[2][1] != "delta" || rows[3][1] != "echo" || rows[3][5] != "disabled" || rows[2][5] != "offline" {
		t.Errorf("export order or status: %v", rows)
	}
	if rows[1][3] != "greenhouse" || rows[1][2] != proj.ID || rows[1][4] != "t0" {
		t.Errorf("export project and tags: %v", rows[1])
	}
	status, _, body = w.owner.raw("GET", "/api/v1/tenants/alpha/devices/export.csv?q=alpha", "", nil)
	if rows, _ := csv.NewReader(strings.NewReader(string(body))).ReadAll(); status != 200 || len(rows) != 2 || rows[1][1] != "'=alpha" {
		t.Errorf("export of a formula-like name: %d %q", status, body)
	}

	// Bad input: 422 naming the field, for the list and the export alike.
	for _, q := range []struct{ query, field string }{
		{"sort=secret_hash", "sort"},
		{"sort=--name", "sort"},
		{"status=asleep", "status"},
		{"status=online&online=true", "online"},
		{"sort=name&cursor=zzz", "cursor"},
	} {
		for _, path := range []string{"/devices?", "/devices/export.csv?"} {
			if q.field == "cursor" && strings.Contains(path, "export") {
				continue // the export has no pages
			}
			status, resp := w.owner.do("GET", "/api/v1/tenants/alpha"+path+q.query, nil)
			wantError(t, path+q.query, status, resp, 422)
			if f := resp["error"].(map[string]any)["fields"].(map[string]any); f[q.field] == nil {
				t.Errorf("%s%s: fields %v, want %s", path, q.query, f, q.field)
			}
		}
	}
}

// TestCommandToFilter: a command (and a config push) targets every device matching a device
// list filter, and a bad filter writes nothing.
func TestCommandToFilter(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	for i := range 5 {
		w.create(t, map[string]any{"name": fmt.Sprintf("node-%d", i), "tags": []string{fmt.Sprintf("t%d", i%2)}})
	}
	cmds := w.send(t, map[string]any{"name": "restart", "target": map[string]any{"filter": map[string]any{"tag": "t0", "status": "offline"}}})
	if len(cmds) != 3 {
		t.Errorf("restart to tag t0 offline: %d commands, want 3", len(cmds))
	}
	cmds = w.send(t, map[string]any{"name": "restart", "target": map[string]any{"filter": map[string]any{}}})
	if len(cmds) != 5 {
		t.Errorf("restart to every device: %d commands, want 5", len(cmds))
	}
	tn := tenantID(t, w.h.st, "alpha")
	before, err := w.h.st.ListCommands(t.Context(), tn, store.CommandFilter{}, store.ListOptions{Limit: store.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		target map[string]any
		field  string
	}{
		{"bad status", map[string]any{"filter": map[string]any{"status": "asleep"}}, "target.filter.status"},
		{"no match", map[string]any{"filter": map[string]any{"q": "nobody"}}, "target.filter"},
		{"filter and tag", map[string]any{"filter": map[string]any{}, "tag": "t0"}, "target"},
	} {
		status, resp := w.owner.do("POST", "/api/v1/tenants/alpha/commands", map[string]any{"name": "restart", "target": tc.target})
		wantError(t, tc.name, status, resp, 422)
		if f := resp["error"].(map[string]any)["fields"].(map[string]any); f[tc.field] == nil {
			t.Errorf("%s: fields %v, want %s", tc.name, f, tc.field)
		}
	}
	status, resp := w.owner.do("POST", "/api/v1/tenants/alpha/commands", map[string]any{"name": "restart", "target": map[string]any{"filter": map[string]any{"sort": "name"}}})
	wantError(t, "sort in a filter", status, resp, 400)
	after, err := w.h.st.ListCommands(t.Context(), tn, store.CommandFilter{}, store.ListOptions{Limit: store.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Items) != len(before.Items) {
		t.Errorf("bad targets wrote commands: %d → %d", len(before.Items), len(after.Items))
	}
	status, resp = w.owner.do("POST", "/api/v1/tenants/alpha/config/push", map[string]any{"target": map[string]any{"filter": map[string]any{"tag": "t1"}}})
	if status != 202 || len(resp["devices"].([]any)) != 2 {
		t.Errorf("config push to a filter: %d %v", status, resp)
	}
}

// TestBulkProvisioning: a CSV of devices becomes devices and a zip of their bundles (JSON with
// the secret and NVS CSV); any bad line is a 422 naming the line and field, and creates
// nothing.
func TestBulkProvisioning(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	tn := tenantID(t, w.h.st, "alpha")
	proj := store.Project{TenantID: tn, Name: "Greenhouse", VersionMismatch: store.MismatchWarn}
	if err := w.h.st.CreateProject(t.Context(), &proj); err != nil {
		t.Fatal(err)
	}
	count := func() int64 {
		n, err := w.h.st.CountDevices(t.Context(), tn, store.DeviceFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	post := func(ct, body string) (int, http.Header, []byte) {
		return w.owner.raw("POST", "/api/v1/tenants/alpha/devices/bulk", ct, strings.NewReader(body))
	}

	for _, tc := range []struct {
		name, ct, body string
		status         int
		fields         []string
	}{
		{"JSON instead of CSV", "application/json", `{"name":"x"}`, 415, nil},
		{"empty", "text/csv", "", 422, []string{"csv"}},
		{"no name column", "text/csv", "project,tags\ngreenhouse,a\n", 422, []string{"csv"}},
		{"unknown column", "text/csv", "name,colour\nx,red\n", 422, []string{"csv"}},
		{"header only", "text/csv", "name,project\n", 422, []string{"csv"}},
		{"bad lines", "text/csv", "name,project,tags\nok-1,greenhouse,a b\n,greenhouse,\nok-3,nowhere,\nok-4,,bad!tag\nok-5,too,many,fields\n\"open quote,x,y\n",
			422, []string{"lines[3].name", "lines[4].project", "lines[5].tags[0]", "lines[6]", "lines[7]"}},
		{"too many", "text/csv", "name\n" + strings.Repeat("n\n", 1001), 422, []string{"csv"}},
	} {
		status, _, body := post(tc.ct, tc.body)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, status, tc.status, body)
			continue
		}
		var resp struct {
			Error struct {
				Fields map[string]string `json:"fields"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("%s: %v %s", tc.name, err, body)
		}
		for _, f := range tc.fields {
			if resp.Error.Fields[f] == "" {
				t.Errorf("%s: no error for %s in %v", tc.name, f, resp.Error.Fields)
			}
		}
		if len(resp.Error.Fields) != len(tc.fields) {
			t.Errorf("%s: fields %v, want exactly %v", tc.name, resp.Error.Fields, tc.fields)
		}
	}
	if n := count(); n != 0 {
		t.Fatalf("refused CSVs created %d devices", n)
	}

	csvIn := "\ufeffName, Project, Tags\nkitchen,greenhouse,indoor;floor-1\ngarage," + proj.ID + ",\nattic,,\n"
	status, h, body := post("text/csv; charset=utf-8", csvIn)
	if status != http.StatusCreated || h.Get("Content-Type") != "application/zip" || !strings.Contains(h.Get("Content-Disposition"), "espadmin-devices-3.zip") {
		t.Fatalf("bulk create: %d %v %.300s", status, h, body)
	}
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	if len(files) != 7 {
		t.Fatalf("zip files: %v", slices.Sorted(maps.Keys(files)))
	}
	index, err := csv.NewReader(bytes.NewReader(files["devices.csv"])).ReadAll()
	if err != nil || len(index) != 4 {
		t.Fatalf("devices.csv: %v %q", err, files["devices.csv"])
	}
	for i, want := range []struct{ name, project, tags string }{{"kitchen", proj.ID, "indoor floor-1"}, {"garage", proj.ID, ""}, {"attic", "", ""}} {
		row := index[i+1]
		id := row[1]
		d, err := w.h.st.Device(t.Context(), tn, id)
		if err != nil {
			t.Fatalf("device of line %s: %v", row[0], err)
		}
		if d.Name != want.name || d.ProjectID != want.project || strings.Join(d.Tags, " ") != want.tags {
			t.Errorf("line %d: device %+v, want %+v", i+2, d, want)
		}
		b := bundleOf(t, json.RawMessage(files[row[5]]))
		if b.DeviceID != id || b.Secret == "" {
			t.Errorf("bundle %s: %+v", row[5], b)
		}
		if !bytes.Contains(files[row[6]], []byte("device_id,data,string,"+id)) || !bytes.Contains(files[row[6]], []byte("secret,data,string,"+b.Secret)) {
			t.Errorf("NVS CSV %s: %s", row[6], files[row[6]])
		}
		// The bundle's secret is the device's: the broker would accept it.
		if !bytes.Equal(fleet.HashSecret(b.Secret), d.SecretHash) {
			t.Errorf("line %d: the bundle's secret does not match the device", i+2)
		}
	}
}

// TestDeviceHistory: a device's presence changes and metadata report are kept as its history
// and served by the history route; the fleet's counts by the fleet history route; a bad
// window is a 422.
func TestDeviceHistory(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	r, b := w.create(t, map[string]any{"name": "charted"})
	id := r["id"].(string)
	d := w.start(t, b)
	w.waitOnline(t, id, true)
	path := "/api/v1/tenants/alpha/devices/" + id + "/history"
	samples := func() []any { return w.get(t, path)["samples"].([]any) }
	poll.Wait(t, "the presence and metadata samples", func() bool { return len(samples()) >= 2 })
	var kinds []string
	for _, s := range samples() {
		sm := s.(map[string]any)
		kinds = append(kinds, sm["kind"].(string))
		if sm["kind"] == "metadata" && (sm["free_heap"] == nil || sm["rssi"] == nil) {
			t.Errorf("metadata sample without health: %v", sm)
		}
		if sm["kind"] == "presence" && sm["online"] != true {
			t.Errorf("first presence sample: %v", sm)
		}
	}
	if !slices.Contains(kinds, "presence") || !slices.Contains(kinds, "metadata") {
		t.Errorf("kinds %v", kinds)
	}
	d.Stop()
	w.waitOnline(t, id, false)
	poll.Wait(t, "the offline sample", func() bool {
		s := samples()
		last := s[len(s)-1].(map[string]any)
		return last["kind"] == "presence" && last["online"] == false
	})

	tn := tenantID(t, w.h.st, "alpha")
	if err := w.h.st.AddFleetSample(t.Context(), store.FleetSample{TenantID: tn, At: store.Now().Add(-time.Hour), Online: 1, Total: 1}); err != nil {
		t.Fatal(err)
	}
	if err := w.h.st.AddFleetSample(t.Context(), store.FleetSample{TenantID: tn, At: store.Now().Add(-48 * time.Hour), Online: 7, Total: 7}); err != nil {
		t.Fatal(err)
	}
	fleetSamples := w.get(t, "/api/v1/tenants/alpha/devices/stats/history")["samples"].([]any)
	if len(fleetSamples) != 1 || fleetSamples[0].(map[string]any)["online"] != 1.0 {
		t.Errorf("fleet history (24 h): %v", fleetSamples)
	}
	if n := len(w.get(t, "/api/v1/tenants/alpha/devices/stats/history?hours=72")["samples"].([]any)); n != 2 {
		t.Errorf("fleet history (72 h): %d samples", n)
	}
	for _, q := range []string{"?hours=0", "?hours=721", "?hours=day"} {
		status, resp := w.owner.do("GET", path+q, nil)
		wantError(t, "device history "+q, status, resp, 422)
		status, resp = w.owner.do("GET", "/api/v1/tenants/alpha/devices/stats/history"+q, nil)
		wantError(t, "fleet history "+q, status, resp, 422)
	}
	// Another tenant's device has no history here.
	bID := tenantID(t, w.h.st, "beta")
	p, err := w.h.fleet.devices.Create(t.Context(), bID, fleet.DeviceInput{Name: "theirs"})
	if err != nil {
		t.Fatal(err)
	}
	status, resp := w.owner.do("GET", "/api/v1/tenants/alpha/devices/"+p.Device.ID+"/history", nil)
	wantError(t, "B's device history", status, resp, 404)
}

// TestErrorGroupDevicesAndTrend: an error group's detail names its devices (a deleted one
// keeps only its ID) and counts its reports per day over 14 days.
func TestErrorGroupDevicesAndTrend(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	admin := w.session(t, "alpha", store.RoleAdmin)
	tn := tenantID(t, w.h.st, "alpha")
	dev, err := w.h.st.Device(t.Context(), tn, w.a["device"])
	if err != nil {
		t.Fatal(err)
	}
	gone := store.Device{ID: store.NewID(), TenantID: tn, Name: "gone", SecretHash: make([]byte, 32)}
	if err := w.h.st.CreateDevice(t.Context(), &gone); err != nil {
		t.Fatal(err)
	}
	now := store.Now()
	for _, r := range []struct {
		device string
		at     time.Time
	}{{dev.ID, now}, {dev.ID, now.AddDate(0, 0, -3)}, {gone.ID, now.AddDate(0, 0, -3)}, {dev.ID, now.AddDate(0, 0, -20)}} {
		rep := store.ErrorReport{TenantID: tn, DeviceID: r.device, Type: "panic", Message: "LoadProhibited", Severity: "error",
			FirmwareVersion: "v-1.0.0", Fingerprint: devicerrors.Fingerprint("panic", "LoadProhibited", "v-1.0.0"), ReceivedAt: r.at}
		if _, err := w.h.st.RecordError(t.Context(), &rep); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.h.st.DeleteDevice(t.Context(), tn, gone.ID); err != nil {
		t.Fatal(err)
	}
	st, resp := admin.do("GET", "/api/v1/tenants/alpha/errors/"+w.a["group"], nil)
	if st != 200 {
		t.Fatalf("detail: %d %v", st, resp)
	}
	devs := resp["devices"].([]any)
	names := map[string]any{}
	for _, d := range devs {
		dm := d.(map[string]any)
		names[dm["device_id"].(string)] = dm["device_name"]
	}
	if names[dev.ID] != dev.Name {
		t.Errorf("device names: %v, want %s for %s", names, dev.Name, dev.ID)
	}
	trend := resp["trend"].([]any)
	if len(trend) != 14 {
		t.Fatalf("trend: %v", trend)
	}
	day := func(i int) map[string]any { return trend[i].(map[string]any) }
	if day(13)["day"] != now.UTC().Format(time.DateOnly) || day(13)["reports"] != 2.0 || day(10)["reports"] != 2.0 {
		t.Errorf("trend: %v", trend)
	}
	var sum float64
	for i := range trend {
		sum += day(i)["reports"].(float64)
	}
	if sum != 4 { // the world's own report, today, and three of the four above
		t.Errorf("trend counts %v reports in 14 days, want 4 (the 20-day-old one is outside)", sum)
	}
	// The tenant's trend (the dashboard's errors per day) counts every group; beta's report
	// is not alpha's.
	st, resp = admin.do("GET", "/api/v1/tenants/alpha/errors/trend", nil)
	days := resp["days"].([]any)
	if st != 200 || len(days) != 14 || days[13].(map[string]any)["reports"] != 2.0 || days[10].(map[string]any)["reports"] != 2.0 {
		t.Errorf("tenant trend: %d %v", st, resp)
	}
}

// TestErrorTrendCountsBusyDay: a day with more reports than the trend once read (5,000) is
// counted in full, in the group's detail and in the tenant's trend.
func TestErrorTrendCountsBusyDay(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	admin := w.session(t, "alpha", store.RoleAdmin)
	tn := tenantID(t, w.h.st, "alpha")
	const busy = 5001
	now := store.Now()
	// One transaction, so SQLite does not sync the disk for every report.
	err := w.h.st.Atomic(t.Context(), func(tx store.Store) error {
		for range busy {
			rep := store.ErrorReport{TenantID: tn, Type: "panic", Message: "LoadProhibited", Severity: "error",
				FirmwareVersion: "v-1.0.0", Fingerprint: devicerrors.Fingerprint("panic", "LoadProhibited", "v-1.0.0"), ReceivedAt: now}
			if _, err := tx.RecordError(t.Context(), &rep); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := float64(busy + 1) // and the world's own report, received just before
	today := now.UTC().Format(time.DateOnly)
	reportsOn := func(what string, trend []any) {
		t.Helper()
		for _, d := range trend {
			if d := d.(map[string]any); d["day"] == today {
				if d["reports"] != want {
					t.Errorf("%s: %s has %v reports, want %v", what, today, d["reports"], want)
				}
				return
			}
		}
		t.Errorf("%s: no %s in %v", what, today, trend)
	}
	st, resp := admin.do("GET", "/api/v1/tenants/alpha/errors/"+w.a["group"], nil)
	if st != 200 {
		t.Fatalf("detail: %d %v", st, resp)
	}
	reportsOn("group trend", resp["trend"].([]any))
	st, resp = admin.do("GET", "/api/v1/tenants/alpha/errors/trend", nil)
	if st != 200 {
		t.Fatalf("tenant trend: %d %v", st, resp)
	}
	reportsOn("tenant trend", resp["days"].([]any))
}
