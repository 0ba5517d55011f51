package server

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/sqliteshim"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for the bulk seeding

	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/sqlstore"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// Fleet views benchmark size.
const (
	benchDevices  = 10_000
	benchCommands = 1_000_000
)

// BenchmarkFleetViews measures the fleet views' API requests against a tenant of 10,000
// devices (two projects, four firmware versions, a third online, tags) and 1,000,000
// command rows (100 per device): the device list (first page, sorted, filtered, a deep page),
// its CSV export, the dashboard page and its counts, and a device's command history. Each
// sub-benchmark sends its request b.N times one after the other and reports p50 and p99 in
// ms. The store is seeded directly with INSERT … SELECT from one template row each (seconds,
// not the hours a million API calls would take).
//
//	go test -run '^$' -bench FleetViews -benchtime 200x -timeout 30m ./server
//	BENCH_STORE=postgres go test -run '^$' -bench FleetViews -benchtime 200x -timeout 30m ./server
func BenchmarkFleetViews(b *testing.B) {
	ctx := context.Background()
	backend := os.Getenv("BENCH_STORE")
	var dbURL string
	switch backend {
	case "", "sqlite":
		backend = "sqlite"
		dbURL = "sqlite://" + filepath.ToSlash(filepath.Join(b.TempDir(), "bench.db"))
	case "postgres":
		dbURL = testsvc.Postgres(b)
	default:
		b.Fatalf("BENCH_STORE=%q: want sqlite or postgres", backend)
	}
	st, err := sqlstore.Open(ctx, dbURL, sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	accounts := AccountsConfig{Signup: SignupClosed, SessionIdleTimeout: time.Hour, SessionMaxAge: time.Hour, ResetLinkTTL: time.Hour}
	ln, base := listenLocal(b)
	srv := New(HTTPConfig{Addr: ln.Addr().String(), PublicURL: base}, Deps{Logger: slog.New(slog.DiscardHandler), Store: st,
		Accounts: accounts, PasswordHash: cheapHash})
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if _, _, _, err := srv.accounts.AddToTenant(ctx, account.SignupInput{Email: "bench@alpha.test", Password: testPassword}, "alpha", "", store.RoleOwner); err != nil {
		b.Fatal(err)
	}
	tn, err := st.TenantBySlug(ctx, "alpha")
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	projects := seedFleet(b, st, backend, dbURL, tn.ID)
	b.Logf("%s: seeded %d devices and %d commands in %s", backend, benchDevices, benchCommands, time.Since(start).Round(time.Millisecond))

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := client.Post(base+"/api/v1/auth/login", "application/json",
		strings.NewReader(`{"email":"bench@alpha.test","password":"`+testPassword+`"}`))
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("login: %d", resp.StatusCode)
	}
	api := "/api/v1/tenants/alpha/"
	device := benchDeviceID(4242)
	for _, r := range []struct{ name, path string }{
		{"DeviceList", api + "devices?limit=50"},
		{"DeviceListSortedByName", api + "devices?limit=50&sort=name"},
		{"DeviceListSortedByLastSeenDesc", api + "devices?limit=50&sort=-last_seen"},
		{"DeviceListFiltered", api + "devices?limit=50&project=" + projects[1] + "&status=online&firmware=v-1.1.0&sort=name"},
		{"DeviceListTag", api + "devices?limit=50&tag=floor-3"},
		{"DeviceListSearch", api + "devices?limit=50&q=node-09"},
		{"DeviceListPage100", api + "devices?limit=50&sort=name&cursor=o4950"},
		{"DeviceExportCSV", api + "devices/export.csv"},
		{"DashboardPage", "/t/alpha/"},
		{"DashboardCounts", api + "devices/stats"},
		{"DashboardErrors", api + "errors?resolved=false&limit=5"},
		{"DeviceCommandHistory", api + "devices/" + device + "/commands?limit=50"},
	} {
		b.Run(r.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				resp, err := client.Get(base + r.path)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %d", r.path, resp.StatusCode)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(ms(0.50), "p50_ms")
			b.ReportMetric(ms(0.99), "p99_ms")
		})
	}
}

// benchDeviceID is the ID of the benchmark's device n: fixed width, so ID order is n order.
func benchDeviceID(n int) string { return fmt.Sprintf("bench%021d", n) }

// seedFleet writes the benchmark's devices and commands: one template row of each through the
// store (so every column has the store's own encoding), then copies of it made by the
// database with INSERT … SELECT over a generated series. It returns the two project IDs.
func seedFleet(b *testing.B, st *sqlstore.Store, backend, dbURL, tenantID string) []string {
	ctx := context.Background()
	var projects []string
	for _, name := range []string{"north", "south"} {
		p := store.Project{TenantID: tenantID, Name: name, VersionMismatch: store.MismatchWarn}
		if err := st.CreateProject(ctx, &p); err != nil {
			b.Fatal(err)
		}
		projects = append(projects, p.ID)
	}
	now := time.Now().UTC()
	tmpl := store.Device{ID: "template", TenantID: tenantID, Name: "template", ProjectID: projects[0], Tags: []string{"bench"},
		SecretHash: make([]byte, 32), KeySealed: make([]byte, 60),
		Presence: store.Presence{Online: true, ChangedAt: now, LastSeenAt: now},
		Metadata: store.DeviceMetadata{FirmwareVersion: "v-1.0.0", ChipModel: "esp32s3", MAC: "aa:bb:cc:dd:ee:ff", IP: "10.0.0.2",
			RSSI: -60, FreeHeap: 123456, UptimeSeconds: 3600, ResetReason: "power_on", UpdatedAt: now}}
	if err := st.CreateDevice(ctx, &tmpl); err != nil {
		b.Fatal(err)
	}
	cmd := store.Command{TenantID: tenantID, DeviceID: tmpl.ID, Name: "restart", Payload: `{"reason":"bench"}`,
		State: store.CommandSucceeded, CreatedBy: "bench", ExpiresAt: now.Add(24 * time.Hour)}
	cmd.ID = "template"
	if err := st.CreateCommand(ctx, &cmd); err != nil {
		b.Fatal(err)
	}

	var db *sql.DB
	var err error
	var series, pad, text, mod string
	switch backend {
	case "sqlite":
		db, err = sql.Open(sqliteshim.ShimName, strings.TrimPrefix(dbURL, "sqlite://")+"?_pragma=busy_timeout(10000)")
		series = "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n+1 FROM s WHERE n < %d) "
		pad = "printf('%%0%dd', %s)"
		text = "CAST(%s AS TEXT)"
		mod = "%s %% %d"
	case "postgres":
		db, err = sql.Open("pgx", dbURL)
		series = "WITH s(n) AS (SELECT generate_series(0, %d)) "
		pad = "lpad((%[2]s)::text, %[1]d, '0')"
		text = "(%s)::text"
		mod = "%s %% %d"
	}
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	exec := func(q string) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatalf("%s\n%v", q, err)
		}
	}
	columns := func(table string) []string {
		rows, err := db.QueryContext(ctx, "SELECT * FROM "+table+" WHERE 1 = 0")
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			b.Fatal(err)
		}
		return cols
	}
	copyRows := func(table string, n int, exprs map[string]string) {
		cols := columns(table)
		sel := make([]string, len(cols))
		for i, c := range cols {
			sel[i] = "t." + c
			if e, ok := exprs[c]; ok {
				sel[i] = e
			}
		}
		exec(fmt.Sprintf(series, n-1) + "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") SELECT " +
			strings.Join(sel, ", ") + " FROM s, " + table + " t WHERE t.id = 'template'")
	}
	devID := func(expr string) string { return "'bench' || " + fmt.Sprintf(pad, 21, expr) }
	q := func(s string) string { return "'" + s + "'" }
	copyRows("devices", benchDevices, map[string]string{
		"id":               devID("n"),
		"name":             "'node-' || " + fmt.Sprintf(pad, 5, fmt.Sprintf(mod, "n*7919", benchDevices)),
		"project_id":       "CASE WHEN " + fmt.Sprintf(mod, "n", 2) + " = 0 THEN " + q(projects[0]) + " ELSE " + q(projects[1]) + " END",
		"online":           "(" + fmt.Sprintf(mod, "n", 3) + " = 0)",
		"firmware_version": "'v-1.' || " + fmt.Sprintf(text, fmt.Sprintf(mod, "n", 4)) + " || '.0'",
		"tags":             `'["floor-' || ` + fmt.Sprintf(text, fmt.Sprintf(mod, "n", 10)) + ` || '"]'`,
	})
	exec(fmt.Sprintf(series, benchDevices-1) + "INSERT INTO device_tags (tenant_id, device_id, tag) SELECT " + q(tenantID) + ", " +
		devID("n") + ", 'floor-' || " + fmt.Sprintf(text, fmt.Sprintf(mod, "n", 10)) + " FROM s")
	copyRows("commands", benchCommands, map[string]string{
		"id":        "'c' || " + fmt.Sprintf(pad, 25, "n"),
		"device_id": devID(fmt.Sprintf(mod, "n", benchDevices)),
	})
	exec("ANALYZE")
	return projects
}
