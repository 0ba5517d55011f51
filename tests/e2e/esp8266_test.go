package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/server/ota/otatest"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// buildSmallAgent builds the Linux agent with the core's small-memory profile (the ESP8266's:
// firmware/include/espadmin/profile.h) and returns it.
func buildSmallAgent(t *testing.T, root string) string {
	t.Helper()
	buildAgent(t, root) // the same toolchain checks
	out, err := exec.Command("make", "-C", filepath.Join(root, "firmware"), "agent", "PROFILE=small").CombinedOutput()
	if err != nil {
		t.Fatalf("make -C firmware agent PROFILE=small: %v\n%s", err, out)
	}
	bin := filepath.Join(root, "firmware", "build", "small", "espadmin-agent")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no small-profile agent: %v", err)
	}
	return bin
}

// TestFirmwareAgentSmallProfile runs the Linux agent built with the ESP8266 profile against
// "espadmin serve": the device declares its limits at boot; a config above them is refused by
// the API (422 naming the limit) and never reaches the device, one below reaches it; an
// ESP8266_RTOS_SDK release is validated, fixes the project's chip and is rolled out.
func TestFirmwareAgentSmallProfile(t *testing.T) {
	root := repoRoot(t)
	agentBin := buildSmallAgent(t, root)
	srv := startServer(t, root)
	var ag *agentProc
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server stderr (end):\n%s", tail(srv.stderr.String(), 200))
			if ag != nil {
				t.Logf("agent stderr (end):\n%s", tail(ag.stderr.String(), 200))
			}
		}
	})
	var project struct {
		ID string `json:"id"`
	}
	srv.must(t, "POST", "/projects", map[string]any{"name": "meters"}, http.StatusCreated, &project)
	var created struct {
		ID           string          `json:"id"`
		Provisioning json.RawMessage `json:"provisioning"`
	}
	srv.must(t, "POST", "/devices", map[string]any{"name": "meter-1", "project_id": project.ID}, http.StatusCreated, &created)
	id := created.ID
	bundlePath := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(bundlePath, created.Provisioning, 0o600); err != nil {
		t.Fatal(err)
	}
	type limitsView struct {
		Metadata *struct {
			FirmwareVersion string    `json:"firmware_version"`
			UpdatedAt       time.Time `json:"updated_at"`
			Limits          *struct {
				CommandBytes int `json:"command_bytes"`
				ConfigBytes  int `json:"config_bytes"`
			} `json:"limits"`
		} `json:"metadata"`
		Online bool `json:"online"`
	}
	var d limitsView
	ag = newAgent(t, agentBin, bundlePath)
	ag.start(t)
	poll.State(t, checkEvery, waitTimeout, "the device's limits at boot", func() (bool, string) {
		srv.must(t, "GET", "/devices/"+id, nil, http.StatusOK, &d)
		ok := d.Online && d.Metadata != nil && d.Metadata.Limits != nil &&
			d.Metadata.Limits.CommandBytes == 4608 && d.Metadata.Limits.ConfigBytes == 4096
		return ok, fmt.Sprintf("%+v", d.Metadata)
	})

	// Above the limit: refused at write time, nothing stored, nothing sent.
	entries := func(a, b int, secretB bool) map[string]any {
		return map[string]any{"entries": []map[string]any{
			{"key": "a", "type": "string", "value": strings.Repeat("a", a), "version": 0},
			{"key": "b", "type": "string", "value": strings.Repeat("b", b), "secret": secretB, "version": 0},
		}}
	}
	var refused struct {
		Error struct {
			Code   string            `json:"code"`
			Fields map[string]string `json:"fields"`
		} `json:"error"`
	}
	// 4,202 bytes stored: within the 4,608-byte command, over the 4,096-byte config limit
	srv.must(t, "PUT", "/devices/"+id+"/config", entries(2100, 2100, false), http.StatusUnprocessableEntity, &refused)
	if msg := refused.Error.Fields["entries"]; !strings.Contains(msg, "at most 4096 bytes") || !strings.Contains(msg, id) {
		t.Errorf("refusal: %+v", refused)
	}
	// Below it: stored, sent and applied (the secret decrypted by the device).
	srv.must(t, "PUT", "/devices/"+id+"/config", entries(1500, 600, true), http.StatusOK, nil)
	var eff struct {
		Version int64             `json:"version"`
		Entries []json.RawMessage `json:"entries"`
		Sync    struct {
			State          string `json:"state"`
			AppliedVersion int64  `json:"applied_version"`
		} `json:"sync"`
	}
	poll.State(t, checkEvery, waitTimeout, "config in sync", func() (bool, string) {
		srv.must(t, "GET", "/devices/"+id+"/config/effective", nil, http.StatusOK, &eff)
		return eff.Sync.State == "in_sync" && eff.Sync.AppliedVersion == eff.Version, fmt.Sprintf("%+v", eff)
	})
	if ag.count(fmt.Sprintf("config %d applied (%d entries)", eff.Version, len(eff.Entries))) != 1 || ag.count("config exceeds") != 0 {
		t.Errorf("the agent's log does not show exactly the config below the limit applied:\n%s", ag.stderr.String())
	}

	// An ESP8266 release: validated, the project's chip fixed, rolled out.
	img := otatest.ESP8266Image(otatest.ESP8266Options{Version: "v-1.1.0", Size: 96 << 10})
	rel := uploadRelease(t, srv, project.ID, "v-1.1.0", img)
	var release struct {
		Image struct {
			Chip string `json:"chip"`
		} `json:"image"`
	}
	srv.must(t, "GET", "/projects/"+project.ID+"/releases/"+rel, nil, http.StatusOK, &release)
	if release.Image.Chip != "esp8266" {
		t.Errorf("release chip %q", release.Image.Chip)
	}
	before := d.Metadata.UpdatedAt
	if rd := rollout(t, srv, rel, id, "succeeded"); rd.Reason != "" {
		t.Errorf("v-1.1.0: %+v", rd)
	}
	poll.State(t, checkEvery, waitTimeout, "the boot on v-1.1.0", func() (bool, string) {
		srv.must(t, "GET", "/devices/"+id, nil, http.StatusOK, &d)
		return d.Online && d.Metadata != nil && d.Metadata.UpdatedAt.After(before) && d.Metadata.FirmwareVersion == "v-1.1.0",
			fmt.Sprintf("%+v", d.Metadata)
	})
	var wrongChip map[string]any
	srv.must(t, "POST", "/projects/"+project.ID+"/releases?version=v-1.2.0",
		otatest.Image(otatest.ImageOptions{Version: "v-1.2.0"}), http.StatusUnprocessableEntity, &wrongChip)
}
