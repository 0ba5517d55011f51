package testsvc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// serverSpec says how to run one kind of database server (PostgreSQL, MariaDB) from a
// temporary folder; startServer runs it.
type serverSpec struct {
	name       string // the server program, in errors: "postgres", "mariadbd"
	dirPattern string // os.MkdirTemp pattern of its folder
	logName    string // its log file, in that folder
	// stdioLog sends the server's stdout and stderr to the log file, for a server that is not
	// told to write one itself.
	stdioLog   bool
	stopSignal syscall.Signal // see server.stopSignal
	// deathSignal is sent to the server when the test process dies (Pdeathsig), so that it
	// goes down with the test binary should StopAll not be called.
	deathSignal syscall.Signal
	// prepare readies the fresh folder dir (permissions, ownership) and returns the command
	// that initialises the data folder in it (initdb, mariadb-install-db).
	prepare func(dir string) (*exec.Cmd, error)
	// command returns the command that runs the server in the foreground from dir on port,
	// with the log at logPath.
	command func(dir, logPath string, port int) *exec.Cmd
	// driver and dsn are the database/sql driver and address readiness is checked with.
	driver string
	dsn    func(port int) string
}

// startServer runs the server spec describes as a child of the test process in a new
// temporary folder, and waits until it accepts connections (waitReady). The port is picked
// once the data folder is initialised, so that it is still free when the server binds it. On
// failure nothing is left running and the folder is removed; when the server does not come up,
// the error carries the end of its log.
func startServer(spec serverSpec) (_ *server, err error) {
	dir, err := os.MkdirTemp("", spec.dirPattern)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()

	initData, err := spec.prepare(dir)
	if err != nil {
		return nil, err
	}
	initData.Dir = dir
	if out, err := initData.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", filepath.Base(initData.Path), err, strings.TrimSpace(string(out)))
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, spec.logName)
	srv := &server{
		cmd:        spec.command(dir, logPath, port),
		dir:        dir,
		port:       port,
		stopSignal: spec.stopSignal,
		done:       make(chan struct{}),
		logPath:    logPath,
	}
	srv.cmd.Dir = dir
	if srv.cmd.SysProcAttr == nil {
		srv.cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	srv.cmd.SysProcAttr.Pdeathsig = spec.deathSignal
	if spec.stdioLog {
		logFile, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		defer logFile.Close()
		srv.cmd.Stdout, srv.cmd.Stderr = logFile, logFile
	}
	if err := srv.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.name, err)
	}
	go func() { _ = srv.cmd.Wait(); close(srv.done) }()

	if err := waitReady(srv, spec.driver, spec.dsn(port)); err != nil {
		tail := srv.logTail()
		srv.stop()
		return nil, fmt.Errorf("%s did not start: %w\n%s", spec.name, err, tail)
	}
	return srv, nil
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
		stopProcess(s.cmd.Process, s.stopSignal, s.done)
	}
	_ = os.RemoveAll(s.dir)
}

// stopProcess sends p sig and waits until done closes (the process has been waited for),
// killing p should it take more than 10 s.
func stopProcess(p *os.Process, sig os.Signal, done <-chan struct{}) {
	_ = p.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.Kill()
		<-done
	}
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
