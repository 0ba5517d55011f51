// Package sqlstore implements store.Store on SQL databases through bun: SQLite (the embedded
// default, pure-Go driver), PostgreSQL (pgx) and MySQL/MariaDB (go-sql-driver/mysql).
//
// bun is used as a thin query builder: every query is written at its call site against plain
// row structs (the *Row types), which are converted to and from the domain types of package
// store. The schema lives in numbered SQL files per dialect under migrations/ (see migrate.go).
//
// Conventions every file follows:
//   - every query on tenant-owned rows has tenant_id = ? in its WHERE clause;
//   - timestamps are written normalised with store.Timestamp (UTC, milliseconds) and converted
//     to UTC when read, so they round-trip identically on all three databases; a zero time is
//     stored as NULL;
//   - an update or delete that matches no row is store.ErrNotFound, a unique violation is
//     store.ErrConflict (see errors.go);
//   - on SQLite there is one writer connection and a pool of read-only connections: reads go
//     to the pool, every write and every transaction to the writer. PostgreSQL and MySQL use one
//     pool for both.
//
// Referential integrity: every tenant-owned table has a foreign key to tenants with ON DELETE
// CASCADE, and the rows a user owns (memberships, identities, sessions, personal API tokens,
// one-time tokens) cascade from users. Links between tenant-owned rows (a device's project, a
// rollout's release, a command's device) are not foreign keys: the Delete methods remove or
// unlink the dependent rows explicitly in one transaction, which keeps the behaviour identical
// to the MongoDB backend and avoids SET NULL on composite keys, which MySQL and SQLite cannot
// limit to one column.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/mysqldialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/espadmin/espadmin/store"
)

// Backend names, as returned by Store.Backend.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
	BackendMySQL    = "mysql"
)

// openTimeout bounds the ping that Open uses to report an unreachable database early.
const openTimeout = 5 * time.Second

// sqliteBusyTimeout is how long SQLite waits for a lock held by another process (for example
// `espadmin migrate` run beside a server) before failing.
const sqliteBusyTimeout = 10 * time.Second

// Options configure Open.
type Options struct {
	// Logger receives the store's own log lines (migrations applied); nil discards them.
	Logger *slog.Logger
}

// Store is the SQL implementation of store.Store.
type Store struct {
	backend string
	// wdb takes every write and every transaction; rdb takes reads. They are the same
	// *bun.DB except on SQLite, where wdb holds the only writer connection.
	wdb, rdb *bun.DB
	// w and r are what queries run on: wdb and rdb, or both the transaction of a Store that
	// Atomic bound to one (then inTx is set).
	w, r bun.IDB
	inTx bool
	log  *slog.Logger
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by databaseURL and checks that it answers. It does not
// migrate; call Migrate. Accepted URLs:
//
//	sqlite://relative/path.db, sqlite:///absolute/path.db, sqlite:path.db
//	postgres://user:pass@host:5432/db?sslmode=disable (also postgresql://)
//	mysql://user:pass@host:3306/db?tls=true
//
// Errors name the URL with its password redacted.
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	scheme, _, _ := strings.Cut(databaseURL, ":")
	var (
		s   *Store
		err error
	)
	switch strings.ToLower(scheme) {
	case "sqlite":
		s, err = openSQLite(databaseURL)
	case "postgres", "postgresql":
		s, err = openPostgres(databaseURL)
	case "mysql":
		s, err = openMySQL(databaseURL)
	default:
		err = errors.New(`unsupported scheme (want sqlite://, postgres:// or mysql://)`)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", RedactURL(databaseURL), err)
	}
	s.log = log
	pingCtx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	if err := s.Ping(pingCtx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("store: open %s: database unreachable: %w", RedactURL(databaseURL), err)
	}
	return s, nil
}

// openSQLite opens the writer and the read pool over one file, creating its folder.
func openSQLite(raw string) (*Store, error) {
	path := strings.TrimPrefix(raw[len("sqlite:"):], "//")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		return nil, errors.New("query parameters are not supported in SQLite URLs")
	}
	if path == "" {
		return nil, errors.New("missing file path (sqlite://path/to/file.db)")
	}
	if strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") {
		return nil, errors.New("in-memory and file: URIs are not supported: the writer and the read pool must share one file")
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create database folder: %w", err)
		}
	}
	// The database holds password hashes and sealed secrets: create it readable by its owner
	// only. SQLite gives its -wal and -shm files the database file's permissions.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create database file: %w", err)
	}
	// Pragmas given in the DSN are applied by the driver to every new connection, so a
	// connection that the pool replaces keeps them. busy_timeout comes first so the others
	// already wait for locks.
	busy := "_pragma=busy_timeout(" + strconv.FormatInt(sqliteBusyTimeout.Milliseconds(), 10) + ")"
	writerDSN := path + "?" + busy +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)" +
		"&_txlock=immediate" // take the write lock at BEGIN: no lock upgrade deadlocks
	readerDSN := path + "?" + busy + "&_pragma=foreign_keys(1)&_pragma=query_only(1)"

	wdb, err := sql.Open(sqliteshim.ShimName, writerDSN)
	if err != nil {
		return nil, err
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	// Open the writer first: it switches the file to WAL before any reader connects.
	if err := wdb.Ping(); err != nil {
		_ = wdb.Close()
		return nil, err
	}
	rdb, err := sql.Open(sqliteshim.ShimName, readerDSN)
	if err != nil {
		_ = wdb.Close()
		return nil, err
	}
	readers := max(4, runtime.NumCPU())
	rdb.SetMaxOpenConns(readers)
	rdb.SetMaxIdleConns(readers)
	return newStore(BackendSQLite, bun.NewDB(wdb, sqlitedialect.New()), bun.NewDB(rdb, sqlitedialect.New())), nil
}

// openPostgres opens a pgx pool. The URL is handed to pgx as is, so every libpq parameter
// (sslmode, connect_timeout, …) works.
func openPostgres(raw string) (*Store, error) {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return nil, errors.New(redactInText(err.Error()))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = openTimeout
	}
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(25)
	sqldb.SetMaxIdleConns(10)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	db := bun.NewDB(sqldb, pgdialect.New())
	return newStore(BackendPostgres, db, db), nil
}

// openMySQL translates mysql://user:pass@host:port/db?params to a go-sql-driver DSN. The
// store relies on parseTime and loc=UTC (DATETIME values come back as UTC time.Time) and on
// clientFoundRows (an UPDATE that matches a row but changes nothing still counts it, so "no row
// affected" reliably means "not found").
func openMySQL(raw string) (*Store, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New(redactInText(err.Error()))
	}
	if u.Host == "" {
		return nil, errors.New("missing host (mysql://user:pass@host:3306/database)")
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if dbName == "" || strings.Contains(dbName, "/") {
		return nil, errors.New("missing or invalid database name (mysql://user:pass@host:3306/database)")
	}
	cfg := mysql.NewConfig()
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = u.Host + ":3306"
	}
	cfg.DBName = dbName
	// Let the driver parse the remaining options (tls, timeouts, …) and reject unknown ones.
	q := u.Query()
	for _, fixed := range []string{"parseTime", "loc", "clientFoundRows", "charset", "collation"} {
		if q.Has(fixed) {
			return nil, fmt.Errorf("parameter %q is set by the store and cannot be overridden", fixed)
		}
	}
	if len(q) > 0 {
		parsed, err := mysql.ParseDSN("/?" + q.Encode())
		if err != nil {
			return nil, err
		}
		cfg.Params = parsed.Params
		cfg.TLSConfig = parsed.TLSConfig
		cfg.TLS = parsed.TLS
		cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = parsed.Timeout, parsed.ReadTimeout, parsed.WriteTimeout
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = openTimeout
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.ClientFoundRows = true
	cfg.Collation = "utf8mb4_bin"
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	// DATETIME columns carry no zone; make the session's zone UTC too so NOW() and friends
	// agree with what the store writes.
	cfg.Params["time_zone"] = "'+00:00'"
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	sqldb := sql.OpenDB(connector)
	sqldb.SetMaxOpenConns(25)
	sqldb.SetMaxIdleConns(10)
	sqldb.SetConnMaxLifetime(30 * time.Minute) // below MySQL's default wait_timeout of 8 h
	db := bun.NewDB(sqldb, mysqldialect.New(mysqldialect.WithTimeLocation("UTC")))
	return newStore(BackendMySQL, db, db), nil
}

func newStore(backend string, wdb, rdb *bun.DB) *Store {
	return &Store{backend: backend, wdb: wdb, rdb: rdb, w: wdb, r: rdb}
}

// Backend names the database kind: "sqlite", "postgres" or "mysql".
func (s *Store) Backend() string { return s.backend }

// Ping checks that the database answers (on SQLite, both the writer and the read pool).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.wdb.PingContext(ctx); err != nil {
		return wrap(err, "ping")
	}
	if s.rdb != s.wdb {
		return wrap(s.rdb.PingContext(ctx), "ping")
	}
	return nil
}

// Close closes every connection.
func (s *Store) Close() error {
	err := s.wdb.Close()
	if s.rdb != s.wdb {
		err = errors.Join(err, s.rdb.Close())
	}
	return err
}

// RedactURL returns raw with the password replaced by "xxxxx", for logs and error messages.
// It never fails: text that does not parse as a URL is redacted by pattern.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return redactInText(raw)
}

// credentials matches the user:password@ part of a URL inside any text.
var credentials = regexp.MustCompile(`(://[^:/@\s]*):[^@\s]*@`)

// redactInText replaces passwords of URLs found in s (drivers quote the URL in their errors).
func redactInText(s string) string {
	return credentials.ReplaceAllString(s, "$1:xxxxx@")
}

// tx runs fn in a transaction on the writer. A transaction the database aborted because of a
// deadlock or a serialisation failure (PostgreSQL and MySQL can pick a victim among concurrent
// upserts) is retried a few times; fn must therefore be safe to run again. Inside Atomic, fn
// runs in a savepoint of the open transaction instead, so a refused statement (a unique
// violation reported as store.ErrConflict) undoes only fn's part; it is not retried there,
// since a deadlock has aborted the whole transaction.
func (s *Store) tx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	if s.inTx {
		return s.w.RunInTx(ctx, nil, fn)
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = s.w.RunInTx(ctx, nil, fn)
		if err == nil || !isRetryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// Atomic runs fn in one transaction on the writer (see store.Transactor). Inside, reads go
// through the transaction too, so fn sees its own writes; on SQLite the read pool is not used
// until Atomic returns. A nested call joins the open transaction. bun rolls back when fn
// returns an error or panics, and re-raises the panic.
func (s *Store) Atomic(ctx context.Context, fn func(tx store.Store) error) error {
	if s.inTx {
		return fn(s)
	}
	return s.wdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		bound := *s
		bound.w, bound.r, bound.inTx = tx, tx, true
		return fn(&bound)
	})
}
