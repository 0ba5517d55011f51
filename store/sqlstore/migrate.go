package sqlstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// Migrations are plain SQL files, one folder per dialect, named NNNN_description.sql. The
// number is the schema version the file brings the database to. Every dialect has the same
// numbers; a released file is never edited — a change is a new file.
//
//go:embed migrations
var migrationFiles embed.FS

// migration is one numbered schema change.
type migration struct {
	version    int
	name       string
	statements []string
}

// migrateLockTimeout bounds how long Migrate waits for another process migrating the same
// database (several replicas starting together).
const migrateLockTimeout = 60 * time.Second

// migrateLockKey names the lock replicas take while migrating (an arbitrary constant for
// PostgreSQL's advisory locks; a name for MySQL's GET_LOCK).
const (
	migrateLockKey  = 7_311_042_985
	migrateLockName = "espadmin_schema_migrations"
)

// loadMigrations reads the embedded migrations of one dialect in version order.
func loadMigrations(backend string) ([]migration, error) {
	dir := path.Join("migrations", backend)
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: version, name: e.Name(), statements: splitStatements(string(b))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: versions must be 1, 2, 3… without gaps", m.name)
		}
	}
	return out, nil
}

// splitStatements cuts a migration into statements at semicolons that end a line, and drops
// comment lines. Migrations hold no semicolons inside literals, so no SQL parsing is needed;
// statements go to the driver one by one because not every driver accepts several in one call.
func splitStatements(sql string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		stmts = append(stmts, rest)
	}
	return stmts
}

// LatestSchemaVersion is the highest schema version this binary knows.
func LatestSchemaVersion() int {
	ms, err := loadMigrations(BackendSQLite)
	if err != nil {
		return 0
	}
	return len(ms)
}

// createMigrationsTable is the one statement every dialect understands alike.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	name       VARCHAR(255) NOT NULL,
	applied_at VARCHAR(64) NOT NULL
)`

// Migrate applies every pending migration and returns the resulting schema version. A
// database whose version is above the highest embedded migration is left untouched and
// store.ErrSchemaTooNew is returned.
//
// Each migration runs in its own transaction together with the row that records it, so a
// failed migration leaves the previous version. MySQL commits DDL implicitly: there a failure
// inside a migration can leave it half applied, and the version row (written right after the
// migration's last statement) tells how far it got. Several processes may call Migrate at once:
// they serialise on a database lock (an advisory lock on PostgreSQL, GET_LOCK on MySQL, the
// single writer connection and file lock on SQLite).
func (s *Store) Migrate(ctx context.Context) (int, error) {
	ms, err := loadMigrations(s.backend)
	if err != nil {
		return 0, fmt.Errorf("store: load migrations: %w", err)
	}
	if s.inTx {
		return 0, errors.New("store: migrate: not possible inside a transaction")
	}
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: migrate: %w", err)
	}
	defer conn.Close()

	unlock, err := s.lockMigrations(ctx, conn)
	if err != nil {
		return 0, fmt.Errorf("store: migrate: lock: %w", err)
	}
	defer unlock()

	current, err := schemaVersion(ctx, conn, s.backend)
	if err != nil {
		return 0, fmt.Errorf("store: migrate: %w", err)
	}
	if current > len(ms) {
		return current, fmt.Errorf("store: migrate: database at version %d, this binary knows up to %d: %w",
			current, len(ms), store.ErrSchemaTooNew)
	}
	if current == len(ms) {
		return current, nil
	}
	if _, err := conn.ExecContext(ctx, createMigrationsTable); err != nil {
		return current, fmt.Errorf("store: migrate: create schema_migrations: %w", err)
	}
	for _, m := range ms[current:] {
		start := time.Now()
		if err := s.apply(ctx, conn, m); err != nil {
			return current, fmt.Errorf("store: migrate: %s: %w", m.name, err)
		}
		current = m.version
		s.log.Info("schema migration applied", "backend", s.backend, "version", m.version,
			"name", m.name, "duration_ms", time.Since(start).Milliseconds())
	}
	return current, nil
}

// apply runs one migration and records it.
func (s *Store) apply(ctx context.Context, conn bun.Conn, m migration) error {
	return conn.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for i, stmt := range m.statements {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("statement %d: %w", i+1, err)
			}
		}
		_, err := tx.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
			m.version, m.name, time.Now().UTC().Format(time.RFC3339))
		return err
	})
}

// lockMigrations takes the cross-process migration lock on conn and returns its release.
func (s *Store) lockMigrations(ctx context.Context, conn bun.Conn) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, migrateLockTimeout)
	defer cancel()
	switch s.backend {
	case BackendPostgres:
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", migrateLockKey); err != nil {
			return nil, err
		}
		return func() {
			_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock(?)", migrateLockKey)
		}, nil
	case BackendMySQL:
		var got *int
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", migrateLockName,
			int(migrateLockTimeout.Seconds())).Scan(&got); err != nil {
			return nil, err
		}
		if got == nil || *got != 1 {
			return nil, errors.New("timed out waiting for another process to finish migrating")
		}
		return func() {
			_, _ = conn.ExecContext(context.Background(), "SELECT RELEASE_LOCK(?)", migrateLockName)
		}, nil
	}
	// SQLite: this connection is the only writer of this process, and the immediate
	// transactions each migration runs in exclude other processes.
	return func() {}, nil
}

// SchemaVersion reports the applied schema version; 0 for an empty database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	v, err := schemaVersion(ctx, s.r, s.backend)
	if err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	return v, nil
}

// schemaVersion reads the highest recorded version through db, or 0 when schema_migrations
// does not exist yet (an empty database).
func schemaVersion(ctx context.Context, db bun.IConn, backend string) (int, error) {
	var exists int
	var query string
	switch backend {
	case BackendSQLite:
		query = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
	case BackendPostgres:
		query = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
	case BackendMySQL:
		query = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'"
	}
	if err := db.QueryRowContext(ctx, query).Scan(&exists); err != nil {
		return 0, err
	}
	if exists == 0 {
		return 0, nil
	}
	var v *int64
	if err := db.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&v); err != nil {
		return 0, err
	}
	if v == nil {
		return 0, nil
	}
	return int(*v), nil
}
