package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// TestMasterKeyCheck runs the real binary through the life of a master key: a new database
// (or one with accounts only) generates one and records its check; the same key starts again; a missing key file next to
// that database, or a wrong ESPADMIN_MASTER_KEY, stops the start with one line that names the
// setting, and generates no key.
func TestMasterKeyCheck(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	keyPath := filepath.Join(dataDir, "master.key")

	// New database: a key is generated.
	serveUntilReady(t, bin, dataDir)
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatalf("first start made no master key: %v", err)
	}

	// The right key, from the file and from the setting, starts.
	serveUntilReady(t, bin, dataDir)
	serveUntilReady(t, bin, dataDir, "ESPADMIN_MASTER_KEY="+strings.TrimSpace(string(key)))

	wrong := make([]byte, 32)
	if _, err := rand.Read(wrong); err != nil {
		t.Fatal(err)
	}
	wrongKey := base64.StdEncoding.EncodeToString(wrong)

	// A wrong key in the setting, then a wrong key file: refused, naming the setting or file.
	line := serveRefused(t, bin, dataDir, "ESPADMIN_MASTER_KEY="+wrongKey)
	for _, w := range []string{"ESPADMIN_MASTER_KEY", "does not open this database"} {
		if !strings.Contains(line, w) {
			t.Errorf("wrong key: error line %q lacks %q", line, w)
		}
	}
	if err := os.WriteFile(keyPath, []byte(wrongKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	line = serveRefused(t, bin, dataDir)
	for _, w := range []string{keyPath, "does not open this database"} {
		if !strings.Contains(line, w) {
			t.Errorf("wrong key file: error line %q lacks %q", line, w)
		}
	}

	// The key file lost next to the existing database: refused, and no new key is written.
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	line = serveRefused(t, bin, dataDir)
	for _, w := range []string{"ESPADMIN_MASTER_KEY", keyPath, "does not exist"} {
		if !strings.Contains(line, w) {
			t.Errorf("missing key: error line %q lacks %q", line, w)
		}
	}
	if _, err := os.Stat(keyPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused start left a master key behind: %v", err)
	}

	// Restoring the key from the backup starts again.
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
	serveUntilReady(t, bin, dataDir)

	// A database that only the account commands have used holds nothing sealed: the first
	// start generates its key.
	cliDir := filepath.Join(t.TempDir(), "data")
	create := exec.Command(bin, "user", "create", "--email", "first@example.com", "--tenant", "acme")
	create.Env = cleanEnv("ESPADMIN_DATA_DIR=" + cliDir)
	create.Stdin = strings.NewReader("a long enough password\n")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("user create: %v\n%s", err, out)
	}
	serveUntilReady(t, bin, cliDir)
	if _, err := os.Stat(filepath.Join(cliDir, "master.key")); err != nil {
		t.Errorf("no master key after the first start on an accounts-only database: %v", err)
	}
}

// serveUntilReady starts "espadmin serve" on dataDir, waits until /readyz answers 200 and
// stops it with SIGTERM, failing the test should it exit early or not cleanly.
func serveUntilReady(t *testing.T, bin, dataDir string, env ...string) {
	t.Helper()
	addr := freePort(t)
	var stderr syncWriter
	stderr.w = &bytes.Buffer{}
	cmd := exec.Command(bin, "serve", "--http-addr", addr, "--mqtt-addr", "127.0.0.1:0", "--shutdown-timeout", "5s")
	cmd.Env = cleanEnv(append([]string{"ESPADMIN_DATA_DIR=" + dataDir}, env...)...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()
	poll.Until(t, 30*time.Second, "/readyz", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("serve exited early: %v\n%s", err, stderr.String())
		default:
		}
		code, _, err := get("http://" + addr + "/readyz")
		return err == nil && code == 200
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", stderr.String())
	}
}

// serveRefused runs "espadmin serve" on dataDir, which must exit 1 with one plain error line
// (besides JSON log lines); it returns that line.
func serveRefused(t *testing.T, bin, dataDir string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "serve", "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0")
	cmd.Env = cleanEnv(append([]string{"ESPADMIN_DATA_DIR=" + dataDir, "ESPADMIN_LOG_FORMAT=json"}, env...)...)
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit status 1, got %v\nstderr: %s", err, stderr.String())
	}
	var plain []string
	for _, l := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
		if !strings.HasPrefix(l, "{") {
			plain = append(plain, l)
		}
	}
	if len(plain) != 1 || !strings.HasPrefix(plain[0], "espadmin: ") {
		t.Fatalf("want one error line, got %q", stderr.String())
	}
	return plain[0]
}
