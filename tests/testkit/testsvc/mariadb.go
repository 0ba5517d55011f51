package testsvc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	_ "github.com/go-sql-driver/mysql" // registers the "mysql" database/sql driver
)

// MariaDB returns the URL of a fresh, empty database on a throwaway MariaDB server
// (mysql://root@127.0.0.1:PORT/test_…). The server is shared by the whole test binary (see
// StopAll); the database is dropped when tb ends. When the server cannot start, tb is skipped
// locally and fails in CI (Unavailable).
func MariaDB(tb testing.TB) string {
	tb.Helper()
	srv, err := mariaDBServer.get(startMariaDB)
	if err != nil {
		Unavailable(tb, "MariaDB", err)
		return ""
	}
	admin := fmt.Sprintf("root@tcp(127.0.0.1:%d)/", srv.port)
	name := "test_" + randomName()
	if err := execSQL("mysql", admin, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		tb.Fatalf("testsvc: create MariaDB database: %v", err)
	}
	tb.Cleanup(func() {
		if err := execSQL("mysql", admin, "DROP DATABASE IF EXISTS "+name); err != nil {
			tb.Errorf("testsvc: drop MariaDB database: %v", err)
		}
	})
	return fmt.Sprintf("mysql://root@127.0.0.1:%d/%s", srv.port, name)
}

// startMariaDB initialises a data folder with mariadb-install-db and runs mariadbd in the
// foreground as a child of the test process. root keeps password authentication (with an
// empty password) so the tests connect over TCP exactly as a deployment would.
func startMariaDB() (*server, error) {
	install, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		return nil, fmt.Errorf("mariadb-install-db not found (apt-get install mariadb-server): %w", err)
	}
	mariadbd, err := lookPathSbin("mariadbd")
	if err != nil {
		return nil, fmt.Errorf("mariadbd not found (apt-get install mariadb-server): %w", err)
	}
	userArgs := []string{}
	if os.Geteuid() == 0 {
		userArgs = []string{"--user=root"}
	}
	return startServer(serverSpec{
		name:        "mariadbd",
		dirPattern:  "espadmin-mariadb-",
		logName:     "mariadb.log",
		stopSignal:  syscall.SIGTERM,
		deathSignal: syscall.SIGKILL,
		prepare: func(dir string) (*exec.Cmd, error) {
			args := append([]string{"--no-defaults", "--datadir=" + filepath.Join(dir, "data"),
				"--auth-root-authentication-method=normal", "--skip-test-db"}, userArgs...)
			return exec.Command(install, args...), nil
		},
		command: func(dir, logPath string, port int) *exec.Cmd {
			return exec.Command(mariadbd, append([]string{
				"--no-defaults",
				"--datadir=" + filepath.Join(dir, "data"),
				"--port=" + strconv.Itoa(port),
				"--bind-address=127.0.0.1",
				"--socket=" + filepath.Join(dir, "sock"),
				"--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
				"--log-error=" + logPath,
				"--skip-name-resolve",
				"--skip-log-bin",
				"--character-set-server=utf8mb4",
				"--collation-server=utf8mb4_bin",
				"--innodb-buffer-pool-size=64M",
				"--innodb-log-file-size=32M",
				"--innodb-flush-log-at-trx-commit=0",
				"--innodb-doublewrite=0",
				"--max-connections=300",
			}, userArgs...)...)
		},
		driver: "mysql",
		dsn:    func(port int) string { return fmt.Sprintf("root@tcp(127.0.0.1:%d)/?timeout=2s", port) },
	})
}

// lookPathSbin finds name on PATH or in the sbin folders, which are not on every user's PATH.
func lookPathSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not on PATH nor in /usr/sbin", name)
}
