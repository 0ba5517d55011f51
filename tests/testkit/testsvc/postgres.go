package testsvc

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// PostgresBinDir is where Debian's postgresql-15 package installs the server binaries.
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// startTimeout bounds how long a database server may take to accept connections.
const startTimeout = 30 * time.Second

// Shared servers. Starting PostgreSQL or MariaDB takes about a second, so one server of each
// kind is started per test binary, on first use, and every test gets a fresh database on it.
// StopAll (called from TestMain) stops them; should a test binary exit without calling it, the
// servers still go down with it (see serverSpec.deathSignal).
var (
	postgresServer sharedServer
	mariaDBServer  sharedServer
)

// sharedServer is a database server started at most once per test binary.
type sharedServer struct {
	once sync.Once
	mu   sync.Mutex
	srv  *server
	err  error
}

// get starts the server with start on first use and returns it, or the error the first start
// gave (a failed start is not retried: every test would pay for the timeout again).
func (s *sharedServer) get(start func() (*server, error)) (*server, error) {
	s.once.Do(func() {
		srv, err := start()
		s.mu.Lock()
		s.srv, s.err = srv, err
		s.mu.Unlock()
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if s.srv == nil {
		return nil, errors.New("the shared server was stopped by StopAll")
	}
	return s.srv, nil
}

// stop stops the server if it runs.
func (s *sharedServer) stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.stop()
	}
}

// StopAll stops the shared PostgreSQL and MariaDB servers. Call it from TestMain after m.Run in
// every test binary that uses Postgres or MariaDB.
func StopAll() {
	postgresServer.stop()
	mariaDBServer.stop()
}

// Postgres returns the URL of a fresh, empty database on a throwaway PostgreSQL 15 server
// (postgres://postgres@127.0.0.1:PORT/test_…?sslmode=disable). The server is shared by the
// whole test binary (see StopAll); the database is dropped when tb ends. When the server cannot
// start, tb is skipped locally and fails in CI (Unavailable).
func Postgres(tb testing.TB) string {
	tb.Helper()
	srv, err := postgresServer.get(startPostgres)
	if err != nil {
		Unavailable(tb, "PostgreSQL", err)
		return ""
	}
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", srv.port)
	name := "test_" + randomName()
	if err := execSQL("pgx", admin, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("testsvc: create PostgreSQL database: %v", err)
	}
	tb.Cleanup(func() {
		if err := execSQL("pgx", admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("testsvc: drop PostgreSQL database: %v", err)
		}
	})
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", srv.port, name)
}

// startPostgres creates a cluster in a temporary folder and starts the postmaster in the
// foreground as a child of the test process.
//
// initdb and postgres refuse to run as root, and CI runs as root: then both run as the
// "postgres" user (set as the child's credentials, which is what runuser would do), in a folder
// that user owns. The folder is made with os.MkdirTemp under the system temp dir and opened to
// 0755, because t.TempDir() may sit under a parent the postgres user cannot traverse.
func startPostgres() (*server, error) {
	spec, err := postgresSpec()
	if err != nil {
		return nil, err
	}
	return startServer(spec)
}

// postgresSpec says how to run a PostgreSQL 15 server from a temporary folder.
func postgresSpec() (serverSpec, error) {
	initdb := filepath.Join(PostgresBinDir, "initdb")
	postgres := filepath.Join(PostgresBinDir, "postgres")
	for _, bin := range []string{initdb, postgres} {
		if _, err := os.Stat(bin); err != nil {
			return serverSpec{}, fmt.Errorf("%s not found (apt-get install postgresql-15): %w", bin, err)
		}
	}
	cred, err := postgresCredential()
	if err != nil {
		return serverSpec{}, err
	}
	return serverSpec{
		name:        "postgres",
		dirPattern:  "espadmin-pg-",
		logName:     "postgres.log",
		stdioLog:    true,
		stopSignal:  syscall.SIGQUIT,
		deathSignal: syscall.SIGQUIT,
		prepare: func(dir string) (*exec.Cmd, error) {
			if err := os.Chmod(dir, 0o755); err != nil {
				return nil, err
			}
			sockDir := filepath.Join(dir, "sock")
			if err := os.Mkdir(sockDir, 0o755); err != nil {
				return nil, err
			}
			if cred != nil {
				for _, d := range []string{dir, sockDir} {
					if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
						return nil, err
					}
				}
			}
			cmd := exec.Command(initdb, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "-D", filepath.Join(dir, "data"))
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			return cmd, nil
		},
		command: func(dir, _ string, port int) *exec.Cmd {
			cmd := exec.Command(postgres, "-D", filepath.Join(dir, "data"),
				"-p", strconv.Itoa(port), "-k", filepath.Join(dir, "sock"),
				"-c", "listen_addresses=127.0.0.1",
				"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
				"-c", "max_connections=200")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			return cmd
		},
		driver: "pgx",
		dsn: func(port int) string {
			return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port)
		},
	}, nil
}

// postgresCredential returns the credential to run PostgreSQL with when the test runs as root,
// nil otherwise.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a postgres user (apt-get install postgresql-15): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// ping opens one connection to dsn and checks it answers.
func ping(driver, dsn string) error {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// execSQL runs one statement on a fresh connection to dsn.
func execSQL(driver, dsn, query string) error {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, query)
	return err
}

// randomName returns 16 random hex characters for database names.
func randomName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// PausablePostgres is a PostgreSQL server of one test's own, which the test may freeze to
// inject a database outage: while paused, every process of the server is stopped (SIGSTOP),
// so connections hang as they do when a database host stops answering.
type PausablePostgres struct {
	// URL is the address of its database "postgres".
	URL string
	srv *server
}

// NewPausablePostgres starts a PostgreSQL server for tb alone (about a second), stopped when
// tb ends. When it cannot start, tb is skipped locally and fails in CI (Unavailable).
func NewPausablePostgres(tb testing.TB) *PausablePostgres {
	tb.Helper()
	srv, err := startPostgres()
	if err != nil {
		Unavailable(tb, "PostgreSQL", err)
		return nil
	}
	p := &PausablePostgres{
		URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", srv.port),
		srv: srv,
	}
	tb.Cleanup(func() {
		_ = p.signal(syscall.SIGCONT)
		srv.stop()
	})
	return p
}

// Pause stops every process of the server: the postmaster first (so that it forks no new
// backend), then its children, which each run in a session of their own (SIGSTOP).
func (p *PausablePostgres) Pause(tb testing.TB) {
	tb.Helper()
	if err := p.signal(syscall.SIGSTOP); err != nil {
		tb.Fatalf("testsvc: pause PostgreSQL: %v", err)
	}
}

// Resume continues the server's processes (SIGCONT).
func (p *PausablePostgres) Resume(tb testing.TB) {
	tb.Helper()
	if err := p.signal(syscall.SIGCONT); err != nil {
		tb.Fatalf("testsvc: resume PostgreSQL: %v", err)
	}
}

// signal sends sig to the postmaster and to every child process of it.
func (p *PausablePostgres) signal(sig syscall.Signal) error {
	pid := p.srv.cmd.Process.Pid
	if err := syscall.Kill(pid, sig); err != nil {
		return err
	}
	children, err := childProcesses(pid)
	if err != nil {
		return err
	}
	for _, c := range children {
		_ = syscall.Kill(c, sig) // a backend may have exited meanwhile
	}
	return nil
}

// childProcesses lists the processes whose parent is pid (from /proc/*/stat).
func childProcesses(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out, nil
}
