package sqlstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/storetest"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testsvc.StopAll()
	os.Exit(code)
}

// backends lists the three dialects with a function giving a fresh, empty database URL.
var backends = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string {
		return "sqlite://" + filepath.Join(t.TempDir(), "sub", "espadmin.db")
	}},
	{"postgres", func(t *testing.T) string { return testsvc.Postgres(t) }},
	{"mysql", func(t *testing.T) string { return testsvc.MariaDB(t) }},
}

// openURL opens and migrates url, closing the store when t ends.
func openURL(t *testing.T, url string) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) store.Store { return openURL(t, b.url(t)) })
		})
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	latest := LatestSchemaVersion()
	if latest < 1 {
		t.Fatalf("LatestSchemaVersion() = %d", latest)
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			url := b.url(t)
			s, err := Open(ctx, url, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if v, err := s.SchemaVersion(ctx); err != nil || v != 0 {
				t.Fatalf("SchemaVersion on an empty database = %d, %v; want 0", v, err)
			}
			if v, err := s.Migrate(ctx); err != nil || v != latest {
				t.Fatalf("Migrate = %d, %v; want %d", v, err, latest)
			}
			if v, err := s.Migrate(ctx); err != nil || v != latest {
				t.Fatalf("second Migrate = %d, %v; want %d (no-op)", v, err, latest)
			}
			if v, err := s.SchemaVersion(ctx); err != nil || v != latest {
				t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, latest)
			}
			// A newer binary migrated this database: this one must refuse and change nothing.
			if _, err := s.w.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				latest+1, "9999_future.sql", "2099-01-01T00:00:00Z"); err != nil {
				t.Fatal(err)
			}
			s2, err := Open(ctx, url, Options{})
			if err != nil {
				t.Fatalf("Open on a newer schema: %v (Open must not check or alter the schema)", err)
			}
			defer s2.Close()
			if v, err := s2.Migrate(ctx); !errors.Is(err, store.ErrSchemaTooNew) || v != latest+1 {
				t.Fatalf("Migrate on a newer schema = %d, %v; want %d, ErrSchemaTooNew", v, err, latest+1)
			}
			if v, err := s2.SchemaVersion(ctx); err != nil || v != latest+1 {
				t.Fatalf("SchemaVersion after refused Migrate = %d, %v", v, err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name, url, want string
	}{
		{"unknown scheme", "oracle://scott:tiger@db/x", "unsupported scheme"},
		{"sqlite without path", "sqlite://", "missing file path"},
		{"sqlite memory", "sqlite::memory:", "in-memory"},
		{"mysql without database", "mysql://root:s3cret@127.0.0.1:1/", "missing or invalid database name"},
		{"mysql bad option", "mysql://root:s3cret@127.0.0.1:1/db?parseTime=false", "cannot be overridden"},
		{"postgres malformed", "postgres://root:s3cret@127.0.0.1:notaport/db", "store: open"},
		{"postgres unreachable", "postgres://root:s3cret@127.0.0.1:1/db?sslmode=disable", "unreachable"},
		{"mysql unreachable", "mysql://root:s3cret@127.0.0.1:1/db", "unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			s, err := Open(ctx, tt.url, Options{})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tt.url)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("Open(%q) = %q; want it to mention %q", tt.url, msg, tt.want)
			}
			if strings.Contains(msg, "s3cret") || strings.Contains(msg, "tiger") {
				t.Errorf("Open(%q) error leaks the password: %q", tt.url, msg)
			}
			if d := time.Since(start); d > 2*openTimeout {
				t.Errorf("Open(%q) took %s", tt.url, d)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db":   "postgres://u:xxxxx@h:5432/db",
		"mysql://u@h/db":                  "mysql://u@h/db",
		"sqlite://data/espadmin.db":       "sqlite://data/espadmin.db",
		"postgres://u:sec%zzret@h/db":     "postgres://u:xxxxx@h/db",
		"error in postgres://u:p@h:x/db.": "error in postgres://u:xxxxx@h:x/db.",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSQLiteSetup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a", "b", "espadmin.db")
	s := openURL(t, "sqlite://"+path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("database file not created in a new folder: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode = %o, want 600 (it holds hashes and sealed secrets)", perm)
	}
	check := func(name string, query string, want string) {
		t.Helper()
		for _, db := range map[string]interface {
			Scan(ctx context.Context, dest ...any) error
		}{"writer": s.w.NewRaw(query), "reader": s.r.NewRaw(query)} {
			var got string
			if err := db.Scan(ctx, &got); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
	}
	check("journal_mode", "PRAGMA journal_mode", "wal")
	check("foreign_keys", "PRAGMA foreign_keys", "1")
	check("busy_timeout", "PRAGMA busy_timeout", "10000")
	var sync string
	if err := s.w.NewRaw("PRAGMA synchronous").Scan(ctx, &sync); err != nil || sync != "1" { // 1 = NORMAL
		t.Errorf("writer synchronous = %q, %v; want 1 (NORMAL)", sync, err)
	}
	if n := s.wdb.DB.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("writer pool allows %d connections, want 1", n)
	}
	// The read pool refuses writes.
	if _, err := s.r.ExecContext(ctx, "DELETE FROM tenants"); err == nil {
		t.Error("the read pool accepted a write")
	}
	if s.Backend() != BackendSQLite {
		t.Errorf("Backend() = %q", s.Backend())
	}
	// sqliteshim must pick modernc.org/sqlite (pure Go, registered as "sqlite"), not the cgo
	// driver "sqlite3", so the binary builds with CGO_ENABLED=0.
	if name := sqliteshim.DriverName(); name != "sqlite" {
		t.Errorf("sqliteshim uses driver %q, want the pure-Go \"sqlite\"", name)
	}
}

func TestDialectSpecifics(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := openURL(t, b.url(t))
			if s.Backend() != b.name {
				t.Errorf("Backend() = %q, want %q", s.Backend(), b.name)
			}

			// Timestamps: a non-UTC zone and sub-millisecond digits go in, UTC milliseconds come out.
			zone := time.FixedZone("UTC+5:30", 5*3600+1800)
			at := time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, zone)
			tn := store.Tenant{Slug: "ts", Name: "T", CreatedAt: at, UpdatedAt: at}
			if err := s.CreateTenant(ctx, &tn); err != nil {
				t.Fatal(err)
			}
			got, err := s.Tenant(ctx, tn.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := at.Truncate(time.Millisecond)
			if !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC || got.CreatedAt != tn.CreatedAt {
				t.Errorf("CreatedAt = %v (%v), want %v in UTC", got.CreatedAt, got.CreatedAt.Location(), want)
			}

			// Unique violations are ErrConflict, a missing parent is ErrNotFound.
			dup := store.Tenant{Slug: "ts", Name: "again"}
			if err := s.CreateTenant(ctx, &dup); !errors.Is(err, store.ErrConflict) {
				t.Errorf("duplicate slug: %v, want ErrConflict", err)
			}
			orphan := store.Project{TenantID: "no-such-tenant", Name: "p"}
			if err := s.CreateProject(ctx, &orphan); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("project of a missing tenant: %v, want ErrNotFound", err)
			}

			// Presence ordering at sub-second differences, which text comparison on SQLite
			// must get right too: .5 s, then .05 s (older) must lose, 1 s later wins.
			d := store.Device{TenantID: tn.ID, Name: "d"}
			if err := s.CreateDevice(ctx, &d); err != nil {
				t.Fatal(err)
			}
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			steps := []struct {
				online bool
				at     time.Time
				want   bool
			}{
				{true, base.Add(500 * time.Millisecond), true},
				{false, base.Add(50 * time.Millisecond), true},
				{false, base, true},
				{false, base.Add(time.Second), false},
			}
			for i, st := range steps {
				if err := s.SetDevicePresence(ctx, tn.ID, d.ID, store.Presence{Online: st.online, ChangedAt: st.at, LastSeenAt: st.at}); err != nil {
					t.Fatal(err)
				}
				got, err := s.Device(ctx, tn.ID, d.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.Presence.Online != st.want {
					t.Errorf("step %d: online = %t, want %t", i, got.Presence.Online, st.want)
				}
			}

			// Deleting the tenant cascades.
			if err := s.DeleteTenant(ctx, tn.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.DeviceAuth(ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("device after tenant delete: %v, want ErrNotFound", err)
			}
		})
	}
}
