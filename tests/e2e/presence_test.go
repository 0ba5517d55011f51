package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/cmd/espadmin/sim"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/tests/testkit/logbuf"
	"github.com/espadmin/espadmin/tests/testkit/poll"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// TestPresenceAfterServerKilled kills "espadmin serve" (SIGKILL, on PostgreSQL) while two
// devices are connected; one device is gone for good, the other reconnects. After the
// restart the gone device must show offline (the broker that knew its connection died with
// the process, and no will was ever published) and the other online.
func TestPresenceAfterServerKilled(t *testing.T) {
	root := repoRoot(t)
	dbURL := testsvc.Postgres(t)
	bin := buildEspadmin(t, root)
	env := append(cleanEnv(), "ESPADMIN_DATABASE_URL="+dbURL, "ESPADMIN_DATA_DIR="+filepath.Join(t.TempDir(), "data"))
	runCLI(t, bin, env, "a long enough password\n", "user", "create", "--email", "kill@example.com", "--tenant", tenant)
	out := runCLI(t, bin, env, "", "token", "create", "--email", "kill@example.com", "--tenant", tenant, "--name", "kill",
		"--scopes", "devices:read,devices:write")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := strings.TrimSpace(lines[len(lines)-1])

	httpAddr, mqttAddr := freeAddr(t), freeAddr(t)
	start := func() (*server, *exec.Cmd) {
		s := &server{url: "http://" + httpAddr, token: token, stderr: &logbuf.Buffer{}}
		cmd := exec.Command(bin, "serve", "--http-addr", httpAddr, "--mqtt-addr", mqttAddr,
			"--mqtt-tls-addr", "", "--log-format", "text", "--shutdown-timeout", "5s")
		cmd.Env = env
		runServer(t, "espadmin serve", cmd, s)
		return s, cmd
	}
	s, cmd := start()

	devices := map[string]*sim.Device{}
	var ids []string
	for _, name := range []string{"gone", "back"} {
		var created struct {
			ID     string       `json:"id"`
			Bundle fleet.Bundle `json:"provisioning"`
		}
		s.must(t, "POST", "/devices", map[string]any{"name": name}, http.StatusCreated, &created)
		d, err := sim.NewDevice(sim.Options{Bundle: created.Bundle, BrokerURL: "tcp://" + mqttAddr, ReconnectDelay: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		d.Start(context.Background())
		t.Cleanup(d.Stop)
		devices[name] = d
		ids = append(ids, created.ID)
	}
	gone, back := ids[0], ids[1]
	online := func(s *server, id string) (bool, string) {
		var dev struct {
			Online bool `json:"online"`
		}
		s.must(t, "GET", "/devices/"+id, nil, http.StatusOK, &dev)
		return dev.Online, fmt.Sprintf("online=%v", dev.Online)
	}
	for _, id := range ids {
		poll.State(t, checkEvery, waitTimeout, "device "+id+" online", func() (bool, string) { return online(s, id) })
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	devices["gone"].Stop()
	s = func() *server { s, _ := start(); return s }()

	poll.State(t, checkEvery, waitTimeout, "the gone device offline after the restart", func() (bool, string) {
		on, state := online(s, gone)
		return !on, state
	})
	poll.State(t, checkEvery, waitTimeout, "the device that came back online", func() (bool, string) { return online(s, back) })
}
