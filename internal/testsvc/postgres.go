package testsvc

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
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
// servers still go down with it (see sharedServer.start).
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

// server is one database server process running from a temporary folder.
type server struct {
	cmd  *exec.Cmd
	dir  string
	port int
	// stopSignal asks the server to shut down (PostgreSQL: SIGQUIT is its "immediate" mode).
	stopSignal syscall.Signal
	done       chan struct{} // closed when the process has exited
	logPath    string
}

// stop signals the server, waits for it (killing it after a deadline) and removes its folder.
func (s *server) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(s.stopSignal)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	_ = os.RemoveAll(s.dir)
}

// exited reports whether the process has ended, which during start means it failed.
func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// logTail returns the end of the server's log, to explain a failed start.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
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
	initdb := filepath.Join(PostgresBinDir, "initdb")
	postgres := filepath.Join(PostgresBinDir, "postgres")
	for _, bin := range []string{initdb, postgres} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%s not found (apt-get install postgresql-15): %w", bin, err)
		}
	}
	dir, err := os.MkdirTemp("", "espadmin-pg-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(dir)
		}
	}()
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	cred, err := postgresCredential(dir)
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")
	sockDir := filepath.Join(dir, "sock")
	if err := os.Mkdir(sockDir, 0o755); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(sockDir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}

	cmd := exec.Command(initdb, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "-D", dataDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, strings.TrimSpace(string(out)))
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	srv := &server{
		cmd: exec.Command(postgres, "-D", dataDir,
			"-p", strconv.Itoa(port), "-k", sockDir,
			"-c", "listen_addresses=127.0.0.1",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=200"),
		dir:        dir,
		port:       port,
		stopSignal: syscall.SIGQUIT,
		done:       make(chan struct{}),
		logPath:    logPath,
	}
	srv.cmd.Dir = dir
	srv.cmd.Stdout, srv.cmd.Stderr = logFile, logFile
	// Pdeathsig takes the server down with the test process should StopAll not be called.
	srv.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := srv.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() { _ = srv.cmd.Wait(); close(srv.done) }()

	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port)
	if err := waitReady(srv, "pgx", url); err != nil {
		tail := srv.logTail()
		srv.stop()
		ok = true // stop removed the folder
		return nil, fmt.Errorf("postgres did not start: %w\n%s", err, tail)
	}
	ok = true
	return srv, nil
}

// postgresCredential returns the credential to run PostgreSQL with when the test runs as root
// (nil otherwise) and gives dir to that user.
func postgresCredential(dir string) (*syscall.Credential, error) {
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
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// waitReady polls the server until it accepts a connection, it exits, or startTimeout passes.
func waitReady(srv *server, driver, dsn string) error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if srv.exited() {
			return fmt.Errorf("server exited: %v", lastErr)
		}
		if lastErr = ping(driver, dsn); lastErr == nil {
			return nil
		}
		select {
		case <-srv.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after %s: %w", startTimeout, lastErr)
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

// freePort returns a loopback TCP port that was free a moment ago (FreePort without a
// testing.TB, for servers started outside any one test).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// randomName returns 16 random hex characters for database names.
func randomName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
