package testsvc

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
)

// OutagePostgres is a PostgreSQL 15 server of one test's own, which the test stops and starts
// again to put the code under test through a database outage. Unlike
// Postgres, it is not shared: stopping it touches no other test.
type OutagePostgres struct {
	// URL is the address of its database "postgres".
	URL string

	spec serverSpec
	mu   sync.Mutex
	srv  *server
}

// PostgresForOutage starts a PostgreSQL server for tb alone; it is stopped and its folder
// removed when tb ends. When the server cannot start, tb is skipped locally and fails in CI.
func PostgresForOutage(tb testing.TB) *OutagePostgres {
	tb.Helper()
	spec, err := postgresSpec()
	if err == nil {
		var srv *server
		if srv, err = startServer(spec); err == nil {
			p := &OutagePostgres{spec: spec, srv: srv,
				URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", srv.port)}
			tb.Cleanup(p.remove)
			return p
		}
	}
	Unavailable(tb, "PostgreSQL", err)
	return nil
}

// Stop shuts the server down (PostgreSQL's fast mode: open connections are closed, new ones
// refused), keeping its data. Not the immediate mode the shared servers stop with: the servers
// run with synchronous_commit=off, and an immediate stop could lose the last commits.
func (p *OutagePostgres) Stop(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv.exited() {
		return
	}
	stopProcess(p.srv.cmd.Process, syscall.SIGINT, p.srv.done)
}

// Start starts the stopped server again on the same port and data, and waits until it
// accepts connections.
func (p *OutagePostgres) Start(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.srv
	srv := &server{
		cmd: p.spec.command(old.dir, old.logPath, old.port), dir: old.dir, port: old.port,
		stopSignal: old.stopSignal, done: make(chan struct{}), logPath: old.logPath,
	}
	srv.cmd.Dir = old.dir
	srv.cmd.SysProcAttr.Pdeathsig = p.spec.deathSignal
	logFile, err := os.OpenFile(old.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		tb.Fatalf("testsvc: reopen PostgreSQL log: %v", err)
	}
	defer logFile.Close()
	srv.cmd.Stdout, srv.cmd.Stderr = logFile, logFile
	if err := srv.cmd.Start(); err != nil {
		tb.Fatalf("testsvc: restart PostgreSQL: %v", err)
	}
	go func() { _ = srv.cmd.Wait(); close(srv.done) }()
	p.srv = srv
	if err := waitReady(srv, p.spec.driver, p.spec.dsn(srv.port)); err != nil {
		tb.Fatalf("testsvc: PostgreSQL did not restart: %v\n%s", err, srv.logTail())
	}
}

func (p *OutagePostgres) remove() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.srv.stop()
}
