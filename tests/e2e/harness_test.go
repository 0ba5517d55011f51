package e2e

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/espadmin/espadmin/tests/testkit/logbuf"
	"github.com/espadmin/espadmin/tests/testkit/poll"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// waitTimeout bounds every wait of the end-to-end test; the waits check every checkEvery
// (most checks are HTTP requests) and log the last state they saw when they fail.
const (
	waitTimeout = 20 * time.Second
	checkEvery  = 25 * time.Millisecond
)

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… %d lines left out", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// repoRoot is the folder of the module's go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside the espadmin module")
	}
	return filepath.Dir(gomod)
}

// buildAgent runs "make -C firmware" and returns the Linux agent. A missing compiler, make or
// library makes the test unavailable (a failure under CI=true); a compile error fails it.
func buildAgent(t *testing.T, root string) string {
	t.Helper()
	for _, tool := range []string{"make", "cc"} {
		if _, err := exec.LookPath(tool); err != nil {
			testsvc.Unavailable(t, "firmware toolchain", err)
		}
	}
	out, err := exec.Command("make", "-C", filepath.Join(root, "firmware")).CombinedOutput()
	if err != nil {
		text := string(out)
		if strings.Contains(text, "No such file or directory") && strings.Contains(text, ".h") ||
			strings.Contains(text, "cannot find -l") || strings.Contains(text, "command not found") {
			testsvc.Unavailable(t, "firmware toolchain", fmt.Errorf("make -C firmware: %v\n%s", err, text))
		}
		t.Fatalf("make -C firmware: %v\n%s", err, text)
	}
	bin := filepath.Join(root, "firmware", "build", "espadmin-agent")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("make -C firmware built no agent: %v", err)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// cleanEnv is the test's environment without ESPADMIN_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ESPADMIN_") {
			env = append(env, kv)
		}
	}
	return env
}

// server is "espadmin serve" run as a child process on a temp data dir, with a tenant "acme"
// and an API token of its owner.
type server struct {
	url, dataDir, token string
	stderr              *logbuf.Buffer
}

const tenant = "acme"

// startServer runs "espadmin serve" with the embedded broker on a fresh SQLite database, with
// a tenant "acme" and an API token of its owner.
func startServer(t *testing.T, root string) *server { return startServerOn(t, root, "") }

// startServerOn is startServer on the database dbURL (empty: SQLite in the data folder), at
// the default rate limits (the ones a device meets in production). The server's log is
// printed when the test fails.
func startServerOn(t *testing.T, root, dbURL string) *server {
	t.Helper()
	bin := buildEspadmin(t, root)
	dataDir := filepath.Join(t.TempDir(), "data")
	base := []string{"--data-dir", dataDir}
	if dbURL != "" {
		base = append(base, "--database-url", dbURL)
	}
	cli := func(stdin string, args ...string) string {
		t.Helper()
		return runCLI(t, bin, cleanEnv(), stdin, append(args, base...)...)
	}
	cli("a long enough password\n", "user", "create", "--email", "e2e@example.com", "--tenant", tenant)
	out := cli("", "token", "create", "--email", "e2e@example.com", "--tenant", tenant, "--name", "e2e",
		"--scopes", "devices:read,devices:write,commands:write,config:write,releases:write")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := strings.TrimSpace(lines[len(lines)-1])

	httpAddr, mqttAddr := freeAddr(t), freeAddr(t)
	s := &server{url: "http://" + httpAddr, dataDir: dataDir, token: token, stderr: &logbuf.Buffer{}}
	cmd := exec.Command(bin, append([]string{"serve", "--http-addr", httpAddr, "--mqtt-addr", mqttAddr,
		"--mqtt-tls-addr", "", "--log-format", "text", "--shutdown-timeout", "5s"}, base...)...)
	cmd.Env = cleanEnv()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", tail(s.stderr.String(), 60))
		}
	})
	runServer(t, "espadmin serve", cmd, s)
	return s
}

// buildEspadmin builds ./cmd/espadmin of the module at root into a temporary folder and
// returns the binary.
func buildEspadmin(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "espadmin")
	build := exec.Command("go", "build", "-o", bin, "./cmd/espadmin")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runCLI runs the espadmin binary bin with args, the environment env and stdin as its
// input, and returns what it writes to stdout; should it fail, so does the test, with its
// stderr.
func runCLI(t *testing.T, bin string, env []string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("espadmin %v: %v\n%s", args, err, errOut.String())
	}
	return out.String()
}

// runServer starts cmd, an "espadmin serve" for s, with its stderr going to s.stderr, and
// waits until s answers /readyz; should the process exit first, the test fails with the end
// of its log. The process gets SIGTERM when the test ends (SIGKILL after 10 s). name says
// which server in the test's messages.
func runServer(t *testing.T, name string, cmd *exec.Cmd, s *server) {
	t.Helper()
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	poll.State(t, checkEvery, waitTimeout, name+" ready", func() (bool, string) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited: %v\n%s", name, err, tail(s.stderr.String(), 40))
		default:
		}
		resp, err := http.Get(s.url + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// call sends a request to /api/v1/tenants/acme{path}: body []byte is sent as an image,
// anything else as JSON. It returns the status and the answer.
func (s *server) call(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		r, ctype = bytes.NewReader(b), "application/octet-stream"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+"/api/v1/tenants/"+tenant+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// must sends a request that has to answer want, and decodes the answer into out.
func (s *server) must(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	status, b := s.call(t, method, path, body)
	if status != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// agentProc runs the Linux agent. Its stderr accumulates over every start, since a restart
// re-executes the same process.
type agentProc struct {
	bin, bundle, stateDir string
	stderr                *logbuf.Buffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan int // the exit status of the current run
}

func newAgent(t *testing.T, bin, bundle string) *agentProc {
	t.Helper()
	a := &agentProc{bin: bin, bundle: bundle, stateDir: filepath.Join(t.TempDir(), "state"), stderr: &logbuf.Buffer{}}
	t.Cleanup(func() {
		a.mu.Lock()
		cmd, exited := a.cmd, a.exited
		a.mu.Unlock()
		if cmd != nil {
			_ = cmd.Process.Kill()
			<-exited
			exited <- -1 // keep the channel answering for a late reader
		}
	})
	return a
}

// start runs the agent with the state dir, firmware v-1.0.0 at first boot, a heartbeat line
// every 200 ms and extra arguments.
func (a *agentProc) start(t *testing.T, extra ...string) {
	t.Helper()
	args := append([]string{"--state-dir", a.stateDir, "--firmware-version", "v-1.0.0", "--log-interval-ms", "200"}, extra...)
	cmd := exec.Command(a.bin, append(args, a.bundle)...)
	cmd.Env = cleanEnv()
	cmd.Stderr = a.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	go func() {
		err := cmd.Wait()
		code := 0
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		exited <- code
	}()
	a.mu.Lock()
	a.cmd, a.exited = cmd, exited
	a.mu.Unlock()
}

// pid is the process ID of the current run.
func (a *agentProc) pid() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd.Process.Pid
}

// running reports whether the current run has not exited.
func (a *agentProc) running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case code := <-a.exited:
		a.exited <- code
		return false
	default:
		return true
	}
}

// waitExit waits for the current run to end and returns its exit status.
func (a *agentProc) waitExit(t *testing.T) int {
	t.Helper()
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.mu.Unlock()
	select {
	case code := <-exited:
		a.mu.Lock()
		a.cmd = nil
		a.mu.Unlock()
		return code
	case <-time.After(waitTimeout):
		t.Fatalf("agent pid %d still running after %s", cmd.Process.Pid, waitTimeout)
		return 0
	}
}

// stop ends the current run with SIGTERM (a clean stop) and checks it exits 0.
func (a *agentProc) stop(t *testing.T) {
	t.Helper()
	a.mu.Lock()
	cmd := a.cmd
	a.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := a.waitExit(t); code != 0 {
		t.Fatalf("agent exited %d after SIGTERM", code)
	}
}

// count is how many times s appears in the agent's stderr.
func (a *agentProc) count(s string) int { return strings.Count(a.stderr.String(), s) }

// nvs reads the agent's "NVS" file: {"ns": {"key": base64(nonce | ciphertext | tag)}}, each
// value sealed with AES-256-GCM under SHA-256("espadmin-nvs-v1" ‖ device key) with the AAD
// "espadmin-nvs-v1\n{ns}\n{key}" (firmware/ports/linux/platform_linux.c). It returns every
// value opened.
func (a *agentProc) nvs(t *testing.T, deviceKey []byte) map[string]map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(a.stateDir, "nvs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sealed map[string]map[string]string
	if err := json.Unmarshal(raw, &sealed); err != nil {
		t.Fatalf("nvs.json: %v", err)
	}
	h := sha256.New()
	h.Write([]byte("espadmin-nvs-v1"))
	h.Write(deviceKey)
	block, err := aes.NewCipher(h.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for ns, kv := range sealed {
		out[ns] = map[string]string{}
		for k, v := range kv {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil || len(b) < 12+16 {
				t.Fatalf("nvs %s/%s: not a sealed value", ns, k)
			}
			plain, err := gcm.Open(nil, b[:12], b[12:], []byte("espadmin-nvs-v1\n"+ns+"\n"+k))
			if err != nil {
				t.Fatalf("nvs %s/%s: %v", ns, k, err)
			}
			out[ns][k] = string(plain)
		}
	}
	return out
}

// bootState is the agent's simulated bootloader state, DIR/boot.json.
type bootState struct {
	BootSlot int `json:"boot_slot"`
	Slots    []struct {
		Version string `json:"version"`
		State   string `json:"state"`
	} `json:"slots"`
}

func (a *agentProc) boot(t *testing.T) bootState {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(a.stateDir, "boot.json"))
	if err != nil {
		t.Fatal(err)
	}
	var b bootState
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("boot.json: %v\n%s", err, raw)
	}
	if b.BootSlot < 0 || b.BootSlot >= len(b.Slots) {
		t.Fatalf("boot.json: boot slot %d of %d", b.BootSlot, len(b.Slots))
	}
	return b
}
