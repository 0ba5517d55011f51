package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// The espadmin binary is built once into binDir for the tests that exec it.
var (
	binDir   string
	buildMu  sync.Mutex
	binPath  string
	buildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "espadmin-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binary builds cmd/espadmin once, with a version stamped through -ldflags.
func binary(t testing.TB) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if binPath == "" && buildErr == nil {
		p := filepath.Join(binDir, "espadmin")
		cmd := exec.Command("go", "build", "-ldflags", "-X main.version=v0.0.0-test -X main.commit=testcommit", "-o", p, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		} else {
			binPath = p
		}
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// cleanEnv is the test process environment without any ESPADMIN_* variable, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ESPADMIN_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// freePort returns a port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func get(url string) (int, []byte, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestServeLifecycle runs the real binary on an empty data dir: it must answer /healthz,
// /readyz and /metrics, create the master key with mode 0600, log where the data lives and the
// URL to open, and exit 0 on SIGTERM within the shutdown deadline.
func TestServeLifecycle(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	addr := freePort(t)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "serve", "--http-addr", addr, "--mqtt-addr", "127.0.0.1:0", "--shutdown-timeout", "5s")
	cmd.Env = cleanEnv("ESPADMIN_DATA_DIR="+dataDir, "ESPADMIN_LOG_FORMAT=json")
	cmd.Stderr = &syncWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() }) // no-op once it has exited

	base := "http://" + addr
	poll.Until(t, 20*time.Second, "/readyz", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("serve exited early: %v\n%s", err, stderr.String())
		default:
		}
		code, _, err := get(base + "/readyz")
		return err == nil && code == 200
	})
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		code, body, err := get(base + path)
		if err != nil || code != 200 {
			t.Errorf("%s: %d %v %s", path, code, err, body)
		}
		if path == "/metrics" && !bytes.Contains(body, []byte("go_goroutines")) {
			t.Errorf("/metrics lacks go_goroutines")
		}
	}
	code, body, _ := get(base + "/nope")
	var e struct {
		Error struct{ Code, RequestID string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || code != 404 || e.Error.Code != "not_found" {
		t.Errorf("/nope: %d %s", code, body)
	}

	fi, err := os.Stat(filepath.Join(dataDir, "master.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("master.key: %v %v", fi, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit within the shutdown deadline\n%s", stderr.String())
	}

	logs := stderr.String()
	var readyLine map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("log line is not JSON: %q", sc.Text())
			continue
		}
		if m["msg"] == "espadmin is ready" {
			readyLine = m
		}
	}
	if readyLine == nil {
		t.Fatalf("no ready line in logs:\n%s", logs)
	}
	if readyLine["url"] != base || readyLine["data_dir"] != dataDir {
		t.Errorf("ready line: %v", readyLine)
	}
	if !strings.Contains(logs, "generated a new master key") {
		t.Error("first start did not say it generated the master key")
	}
}

// syncWriter lets the test read stderr while the process writes it.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

// String returns what has been written so far.
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestBadInputOneLine execs the binary with each kind of bad input: it must exit non-zero
// with exactly one line on stderr that names the setting, and no panic or stack trace.
func TestBadInputOneLine(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	tmp := t.TempDir()
	regularFile := filepath.Join(tmp, "file")
	if err := os.WriteFile(regularFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	shortKey := base64.StdEncoding.EncodeToString(make([]byte, 16))
	// A port held by another program (Mosquitto on 1883, another server on 8080).
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	busy := held.Addr().String()
	tests := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"malformed database URL", []string{"serve", "--database-url", "postgres://u:secretpw@host:notaport/db"}, nil,
			[]string{"ESPADMIN_DATABASE_URL", "--database-url"}},
		{"unsupported database scheme", []string{"serve"}, []string{"ESPADMIN_DATABASE_URL=foo://x"},
			[]string{"ESPADMIN_DATABASE_URL", `unsupported scheme "foo"`}},
		{"unreachable database", []string{"serve", "--database-url", "postgres://u:secretpw@127.0.0.1:1/db", "--http-addr", "127.0.0.1:0"}, nil,
			[]string{"ESPADMIN_DATABASE_URL", "127.0.0.1:1"}},
		{"data dir not writable", []string{"serve", "--data-dir", filepath.Join(regularFile, "data")}, nil,
			[]string{"ESPADMIN_DATA_DIR", "not a directory"}},
		{"master key wrong length", []string{"serve"}, []string{"ESPADMIN_MASTER_KEY=" + shortKey},
			[]string{"ESPADMIN_MASTER_KEY", "16 bytes"}},
		{"unknown flag", []string{"serve", "--no-such-flag"}, nil,
			[]string{"-no-such-flag", "espadmin serve -h"}},
		{"unknown command", []string{"frobnicate"}, nil,
			[]string{`unknown command "frobnicate"`, "espadmin help"}},
		{"no command", nil, nil, []string{"missing command"}},
		{"bad log level", []string{"config", "--log-level", "loud"}, nil, []string{"ESPADMIN_LOG_LEVEL"}},
		{"HTTP port taken", []string{"serve", "--http-addr", busy, "--mqtt-addr", "127.0.0.1:0"}, nil,
			[]string{"--http-addr", "address already in use"}},
		{"MQTT port taken", []string{"serve", "--http-addr", "127.0.0.1:0", "--mqtt-addr", busy}, nil,
			[]string{"--mqtt-addr", busy, "address already in use"}},
		{"MQTT WebSocket port taken", []string{"serve", "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--mqtt-ws-addr", busy}, nil,
			[]string{"--mqtt-ws-addr", busy, "address already in use"}},
		{"healthcheck with nothing listening", []string{"healthcheck", "--http-addr", freePort(t)}, nil, []string{"healthcheck", "/readyz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dataDir := filepath.Join(t.TempDir(), "data")
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			cmd.Env = cleanEnv(append([]string{"ESPADMIN_DATA_DIR=" + dataDir}, tt.env...)...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("want exit status 1, got %v\nstderr: %s", err, stderr.String())
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			// serve may log before failing (JSON lines); the error itself is the last line and
			// the only one that is not a log record.
			var plain []string
			for _, l := range lines {
				if !strings.HasPrefix(l, "{") {
					plain = append(plain, l)
				}
			}
			if len(plain) != 1 || !strings.HasPrefix(plain[0], "espadmin: ") {
				t.Fatalf("want one error line, got %q", stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(plain[0], w) {
					t.Errorf("error line %q lacks %q", plain[0], w)
				}
			}
			for _, bad := range []string{"panic", "goroutine ", "secretpw"} {
				if strings.Contains(stderr.String(), bad) {
					t.Errorf("stderr contains %q: %s", bad, stderr.String())
				}
			}
		})
	}
}

// TestConfigCommand runs the real run function: secrets redacted, output is YAML that
// reloads as a configuration file.
func TestConfigCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run(t.Context(), []string{"config",
		"--data-dir", dir,
		"--database-url", "postgres://admin:db-pass-123@db.internal:5432/esp",
		"--master-key-file", keyFile,
		"--http-addr", "127.0.0.1:9999",
	}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, secret := range []string{key, "db-pass-123"} {
		if strings.Contains(s, secret) {
			t.Errorf("config output leaks %q:\n%s", secret, s)
		}
	}
	for _, want := range []string{"admin:[redacted]@db.internal:5432", "master_key: '[redacted]'", "addr: 127.0.0.1:9999", "public_url: http://127.0.0.1:9999"} {
		if !strings.Contains(s, want) {
			t.Errorf("config output lacks %q:\n%s", want, s)
		}
	}
	cfgFile := filepath.Join(dir, "printed.yaml")
	// Drop the redacted values so the printout reloads.
	reload := regexp.MustCompile(`(?m)^.*\[redacted\].*\n`).ReplaceAllString(s, "")
	if err := os.WriteFile(cfgFile, []byte(reload), 0o600); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := run(t.Context(), []string{"config", "--config", cfgFile}, &again, io.Discard); err != nil {
		t.Fatalf("printout does not reload: %v\n%s", err, reload)
	}
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "go1.") {
		t.Errorf("version output: %q", out.String())
	}
	out.Reset()
	if err := run(t.Context(), []string{"help"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"serve", "migrate", "config", "healthcheck", "version"} {
		if !strings.Contains(out.String(), c) {
			t.Errorf("help lacks %s", c)
		}
	}
	out.Reset()
	if err := run(t.Context(), []string{"serve", "-h"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "-database-url") || !strings.Contains(out.String(), "ESPADMIN_DATABASE_URL") {
		t.Errorf("serve -h lacks the flags:\n%s", out.String())
	}
	// The flag package takes a usage's first `quoted` word as the placeholder; the settings'
	// help quotes values for the docs, which must not garble the flag lines.
	for _, garbled := range []string{"-signup closed", "-oidc-name Company SSO"} {
		if strings.Contains(out.String(), garbled) {
			t.Errorf("serve -h shows the garbled %q", garbled)
		}
	}

	// Commands that work on a server's data show their own flags and the few that find the
	// data, not the server's seventy.
	for _, tc := range []struct {
		args       []string
		want, omit []string
	}{
		{[]string{"token", "create", "-h"}, []string{"-email", "-expires", "-data-dir", "-database-url"}, []string{"-s3-endpoint", "-oidc-name", "-mqtt-addr", "-signup"}},
		{[]string{"user", "create", "-h"}, []string{"-email", "-role", "-data-dir"}, []string{"-s3-endpoint", "-smtp-url-file", "-mqtt-addr"}},
		{[]string{"user", "reset-link", "-h"}, []string{"-email", "-public-url", "-database-url"}, []string{"-s3-endpoint", "-mqtt-addr"}},
		{[]string{"sim", "-h"}, []string{"-bundle", "-count", "-log-level"}, []string{"-database-url", "-s3-endpoint", "-mqtt-addr"}},
	} {
		out.Reset()
		if err := run(t.Context(), tc.args, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w+" ") {
				t.Errorf("%v lacks %s:\n%s", tc.args, w, out.String())
			}
		}
		for _, o := range tc.omit {
			if strings.Contains(out.String(), o+" ") {
				t.Errorf("%v shows the server flag %s", tc.args, o)
			}
		}
	}
	if err := run(t.Context(), []string{"token", "create", "--s3-endpoint", "x"}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "-s3-endpoint") {
		t.Errorf("token create with a server-only flag = %v, want the unknown flag named", err)
	}

	// The built binary carries the -ldflags version.
	b, err := exec.Command(binary(t), "version").Output()
	if err != nil || !strings.Contains(string(b), "v0.0.0-test") || !strings.Contains(string(b), "testcommit") {
		t.Errorf("binary version: %q %v", b, err)
	}
}

// TestMigrateAndHealthcheck migrates an empty SQLite database twice (the second run is a
// no-op at the same version) and runs healthcheck against a live server.
func TestMigrateAndHealthcheck(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	var first, second bytes.Buffer
	if err := run(t.Context(), []string{"migrate", "--data-dir", dir, "--log-level", "error"}, &first, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), []string{"migrate", "--data-dir", dir, "--log-level", "error"}, &second, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^schema version [1-9][0-9]*\n$`).MatchString(first.String()) || first.String() != second.String() {
		t.Errorf("migrate printed %q then %q", first.String(), second.String())
	}

	addr := freePort(t)
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"serve", "--data-dir", dir, "--http-addr", addr, "--log-level", "error"}, io.Discard, io.Discard)
	}()
	poll.Until(t, 20*time.Second, "healthcheck to pass", func() bool {
		return run(t.Context(), []string{"healthcheck", "--http-addr", addr}, io.Discard, io.Discard) == nil
	})
	cancel()
	if err := <-served; err != nil {
		t.Errorf("serve after cancel: %v", err)
	}
}

// BenchmarkStartToReady measures how long the binary takes from exec to a 200 from /readyz
// on an empty data dir (default SQLite database, local blobs, new master key).
func BenchmarkStartToReady(b *testing.B) {
	bin := binary(b)
	var total time.Duration
	for b.Loop() {
		dataDir := filepath.Join(b.TempDir(), "data")
		addr := freePort(b)
		cmd := exec.Command(bin, "serve", "--http-addr", addr, "--log-level", "error")
		cmd.Env = cleanEnv("ESPADMIN_DATA_DIR=" + dataDir)
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		poll.Until(b, 20*time.Second, "/readyz", func() bool {
			code, _, err := get("http://" + addr + "/readyz")
			return err == nil && code == 200
		})
		total += time.Since(start)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/start-to-ready")
}
