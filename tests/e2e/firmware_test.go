// Package e2e runs ESP Admin end to end: the real server binary and the firmware's Linux agent
// as a simulated device, driven only through the public API.
package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/espadmin/espadmin/server/ota/otatest"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// device is the part of GET …/devices/{id} the test reads.
type device struct {
	ID       string `json:"id"`
	Online   bool   `json:"online"`
	Metadata *struct {
		FirmwareVersion string    `json:"firmware_version"`
		ResetReason     string    `json:"reset_reason"`
		ConfigVersion   int64     `json:"config_version"`
		FreeHeap        int64     `json:"free_heap"`
		UpdatedAt       time.Time `json:"updated_at"`
	} `json:"metadata"`
}

func (d device) String() string {
	if d.Metadata == nil {
		return fmt.Sprintf("online=%v, no metadata", d.Online)
	}
	return fmt.Sprintf("online=%v firmware=%s reset=%s config=%d at %s", d.Online, d.Metadata.FirmwareVersion,
		d.Metadata.ResetReason, d.Metadata.ConfigVersion, d.Metadata.UpdatedAt.Format(time.RFC3339Nano))
}

type command struct {
	ID    string         `json:"id"`
	Name  string         `json:"name"`
	State string         `json:"state"`
	Error string         `json:"error"`
	Ack   map[string]any `json:"ack"`
}

type rolloutDevice struct {
	RolloutID string `json:"rollout_id"`
	DeviceID  string `json:"device_id"`
	State     string `json:"state"`
	Reason    string `json:"reason"`
}

// TestFirmwareAgent provisions a device, runs the firmware's Linux agent with its bundle
// against "espadmin serve", and drives every command through the API: boot metadata, config
// with a secret, restart, live logs, an update, a corrupted update and an update whose image
// fails to boot.
func TestFirmwareAgent(t *testing.T) {
	root := repoRoot(t)
	agentBin := buildAgent(t, root)
	srv := startServer(t, root)
	var ag *agentProc
	t.Cleanup(func() { // registered first, so it runs after the processes ended
		if t.Failed() {
			t.Logf("server stderr (end):\n%s", tail(srv.stderr.String(), 300))
			if ag != nil {
				t.Logf("agent stderr (end):\n%s", tail(ag.stderr.String(), 300))
			}
		}
	})

	// Provisioning: a project and a device linked to it; the bundle goes to a file.
	var project struct {
		ID      string `json:"id"`
		Signing struct {
			PublicKey string `json:"public_key"`
		} `json:"signing"`
	}
	srv.must(t, "POST", "/projects", map[string]any{"name": "greenhouse"}, http.StatusCreated, &project)
	var created struct {
		ID           string          `json:"id"`
		Secret       string          `json:"secret"`
		Provisioning json.RawMessage `json:"provisioning"`
	}
	srv.must(t, "POST", "/devices", map[string]any{"name": "sim-1", "project_id": project.ID}, http.StatusCreated, &created)
	var bundle struct {
		DeviceID     string `json:"device_id"`
		Secret       string `json:"secret"`
		DeviceKey    string `json:"device_key"`
		OTAPublicKey string `json:"ota_public_key"`
	}
	if err := json.Unmarshal(created.Provisioning, &bundle); err != nil {
		t.Fatal(err)
	}
	if created.ID == "" || created.Secret == "" || bundle.DeviceID != created.ID || bundle.Secret != created.Secret ||
		bundle.OTAPublicKey == "" || bundle.OTAPublicKey != project.Signing.PublicKey {
		t.Fatalf("device %q, bundle %s", created.ID, created.Provisioning)
	}
	deviceKey, err := base64.StdEncoding.DecodeString(bundle.DeviceKey)
	if err != nil || len(deviceKey) != 32 {
		t.Fatalf("device_key: %v (%d bytes)", err, len(deviceKey))
	}
	bundlePath := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(bundlePath, created.Provisioning, 0o600); err != nil {
		t.Fatal(err)
	}
	id := created.ID
	getDevice := func() device {
		var d device
		srv.must(t, "GET", "/devices/"+id, nil, http.StatusOK, &d)
		return d
	}
	// waitBoot waits for a boot after `after` (metadata reported since) that matches want.
	waitBoot := func(what string, after time.Time, want func(device) bool) device {
		t.Helper()
		var d device
		poll.State(t, checkEvery, waitTimeout, what, func() (bool, string) {
			d = getDevice()
			return d.Online && d.Metadata != nil && d.Metadata.UpdatedAt.After(after) && want(d), d.String()
		})
		return d
	}

	// 1. The device comes online with its boot metadata.
	ag = newAgent(t, agentBin, bundlePath)
	ag.start(t)
	d := waitBoot("the first boot", time.Time{}, func(d device) bool { return true })
	if d.Metadata.FirmwareVersion != "v-1.0.0" || d.Metadata.ResetReason != "poweron" {
		t.Fatalf("first boot: %s", d)
	}
	// "Free heap" is the agent process's own (its malloc arenas hold kilobytes), not the
	// host's free memory (gigabytes).
	if d.Metadata.FreeHeap < 0 || d.Metadata.FreeHeap > 64<<20 {
		t.Errorf("free_heap = %d bytes: not the agent's own heap", d.Metadata.FreeHeap)
	}

	// 2. Config: a project variable, a device property and a secret, each a new version.
	const secretValue = "s3cret-wifi-pass"
	srv.must(t, "PUT", "/projects/"+project.ID+"/config/greeting",
		map[string]any{"type": "string", "value": "hello", "version": 0}, http.StatusOK, nil)
	srv.must(t, "PUT", "/devices/"+id+"/config/interval",
		map[string]any{"type": "int", "value": 42, "version": 0}, http.StatusOK, nil)
	srv.must(t, "PUT", "/devices/"+id+"/config/wifi_pass",
		map[string]any{"type": "string", "value": secretValue, "secret": true, "version": 0}, http.StatusOK, nil)
	var eff struct {
		Version int64 `json:"version"`
		Hash    string
		Entries []struct {
			Key   string `json:"key"`
			Layer string `json:"layer"`
		} `json:"entries"`
		Sync struct {
			State          string `json:"state"`
			AppliedVersion int64  `json:"applied_version"`
			Error          string `json:"error"`
		} `json:"sync"`
	}
	poll.State(t, checkEvery, waitTimeout, "config in sync", func() (bool, string) {
		srv.must(t, "GET", "/devices/"+id+"/config/effective", nil, http.StatusOK, &eff)
		layers := map[string]string{}
		for _, e := range eff.Entries {
			layers[e.Key] = e.Layer
		}
		ok := layers["greeting"] == "project" && layers["interval"] == "device" && layers["wifi_pass"] == "device"
		return ok && eff.Sync.State == "in_sync" && eff.Sync.AppliedVersion == eff.Version,
			fmt.Sprintf("entries %v, version %d, sync %+v", layers, eff.Version, eff.Sync)
	})
	// The agent holds the applied version, and the secret decrypted with its device key, in
	// its (sealed) NVS.
	nvs := ag.nvs(t, deviceKey)
	active := nvs["espadmin"]["cfg_active"]
	if active != "a" && active != "b" {
		t.Fatalf("cfg_active %q", active)
	}
	if v := nvs["espadmin"]["cfg_"+active+"_ver"]; v != fmt.Sprint(eff.Version) {
		t.Errorf("the agent holds config version %q, the server applied %d", v, eff.Version)
	}
	cfg := nvs["espadmin_cfg_"+active]
	// Stored values are the type digit (0 string, 1 int) then the value's text.
	for key, want := range map[string]string{"greeting": "0hello", "interval": "142", "wifi_pass": "0" + secretValue} {
		if cfg[key] != want {
			t.Errorf("agent config %s = %q, want %q", key, cfg[key], want)
		}
	}
	if strings.Contains(ag.stderr.String(), secretValue) || strings.Contains(srv.stderr.String(), secretValue) {
		t.Error("the secret value appears in a log")
	}
	if ag.count(fmt.Sprintf("config %d applied (%d entries)", eff.Version, len(eff.Entries))) != 1 {
		t.Errorf("the agent did not log applying config %d", eff.Version)
	}

	// 3. Restart: the agent re-executes itself (same process) and boots again, reset by software.
	pid := ag.pid()
	before := d.Metadata.UpdatedAt
	var sent struct{ Items []command }
	srv.must(t, "POST", "/commands", map[string]any{"name": "restart", "params": map[string]any{"reason": "e2e"},
		"target": map[string]any{"device_ids": []string{id}}}, http.StatusAccepted, &sent)
	if len(sent.Items) != 1 {
		t.Fatalf("restart: %d commands", len(sent.Items))
	}
	waitCommand(t, srv, id, sent.Items[0].ID, "succeeded")
	d = waitBoot("the boot after restart", before, func(d device) bool { return d.Metadata.ResetReason == "sw" })
	if d.Metadata.FirmwareVersion != "v-1.0.0" || d.Metadata.ConfigVersion != eff.Version {
		t.Errorf("after restart: %s, want config %d", d, eff.Version)
	}
	if !ag.running() || ag.pid() != pid || ag.count("restart requested: e2e") != 1 || ag.count("online as "+id) != 2 {
		t.Errorf("restart: running %v, pid %d→%d, agent log:\n%s", ag.running(), pid, ag.pid(), ag.stderr.String())
	}

	// 4. Debug: a WebSocket viewer turns debug on and receives the agent's heartbeat lines.
	watchLogs(t, srv, id)
	poll.State(t, checkEvery, waitTimeout, "debug off after the viewer left", func() (bool, string) {
		return ag.count("debug off") == 1, fmt.Sprintf("%d", ag.count("debug off"))
	})

	// 5. Update to v-1.1.0: signed command, download, slot switch, re-execution, new version.
	img110 := otatest.Image(otatest.ImageOptions{Version: "v-1.1.0", Size: 96 << 10})
	rel110 := uploadRelease(t, srv, project.ID, "v-1.1.0", img110)
	before = d.Metadata.UpdatedAt
	rd := rollout(t, srv, rel110, id, "succeeded")
	rollout110 := rd.RolloutID
	if rd.Reason != "" {
		t.Errorf("v-1.1.0: %+v", rd)
	}
	d = waitBoot("the boot on v-1.1.0", before, func(d device) bool { return d.Metadata.FirmwareVersion == "v-1.1.0" })
	if d.Metadata.ResetReason != "sw" {
		t.Errorf("after the update: %s", d)
	}
	boot := ag.boot(t)
	if boot.BootSlot != 1 || boot.Slots[1].Version != "v-1.1.0" || boot.Slots[1].State != "valid" {
		t.Errorf("boot state after the update: %+v", boot)
	}
	if slot, err := os.ReadFile(filepath.Join(ag.stateDir, "ota_1.bin")); err != nil || !bytes.Equal(slot, img110) {
		t.Errorf("slot 1 does not hold the released image (%d bytes, %v)", len(slot), err)
	}
	if ag.count("new image v-1.1.0 confirmed") != 1 || !ag.running() || ag.pid() != pid {
		t.Errorf("update: running %v, pid %d→%d", ag.running(), pid, ag.pid())
	}

	// 6. A corrupted image: the blob is replaced by other bytes of the same size after the
	// upload; the device refuses it for its hash and keeps running v-1.1.0.
	img120 := otatest.Image(otatest.ImageOptions{Version: "v-1.2.0", Size: 96 << 10})
	rel120 := uploadRelease(t, srv, project.ID, "v-1.2.0", img120)
	corruptBlob(t, srv.dataDir, rel120, len(img120))
	rd = rollout(t, srv, rel120, id, "failed")
	rollout120 := rd.RolloutID
	if rd.Reason != "hash_mismatch" {
		t.Errorf("corrupted v-1.2.0: %+v", rd)
	}
	if d = getDevice(); !d.Online || d.Metadata.FirmwareVersion != "v-1.1.0" {
		t.Errorf("after the corrupted update: %s", d)
	}
	if boot := ag.boot(t); boot.BootSlot != 1 || boot.Slots[1].Version != "v-1.1.0" || !ag.running() || ag.pid() != pid {
		t.Errorf("after the corrupted update: boot %+v, running %v", boot, ag.running())
	}
	if ag.count("update to v-1.2.0 failed: hash_mismatch\n") != 1 { // the whole line, no trailing space
		t.Error("the agent did not log the hash mismatch")
	}

	// 7. An image that fails to boot: the agent runs with --fail-boot-version v-1.3.0, switches,
	// exits with status 3 at the next start; started again (as a watchdog would) it rolls back
	// to v-1.1.0 and reports boot_failed_rolled_back.
	ag.stop(t)
	failArgs := []string{"--fail-boot-version", "v-1.3.0"}
	before = d.Metadata.UpdatedAt
	ag.start(t, failArgs...)
	d = waitBoot("the boot after a clean stop", before, func(d device) bool { return d.Metadata.ResetReason == "poweron" })
	if d.Metadata.FirmwareVersion != "v-1.1.0" {
		t.Fatalf("after a clean stop: %s", d)
	}
	img130 := otatest.Image(otatest.ImageOptions{Version: "v-1.3.0", Size: 96 << 10})
	rel130 := uploadRelease(t, srv, project.ID, "v-1.3.0", img130)
	before = d.Metadata.UpdatedAt
	rolloutID := startRollout(t, srv, rel130, id)
	if code := ag.waitExit(t); code != 3 {
		t.Fatalf("the agent exited %d on the failing image, want 3", code)
	}
	if ag.count("image v-1.3.0 fails to boot (simulated)") != 1 {
		t.Error("the agent did not log the simulated boot failure")
	}
	ag.start(t, failArgs...)
	rd = waitRolloutDevice(t, srv, rolloutID, id, "failed")
	if rd.Reason != "boot_failed_rolled_back" {
		t.Errorf("v-1.3.0: %+v", rd)
	}
	d = waitBoot("the boot after the rollback", before, func(d device) bool { return true })
	if d.Metadata.FirmwareVersion != "v-1.1.0" {
		t.Errorf("after the rollback: %s", d)
	}
	if boot := ag.boot(t); boot.Slots[boot.BootSlot].Version != "v-1.1.0" || boot.Slots[boot.BootSlot].State != "valid" {
		t.Errorf("boot state after the rollback: %+v", boot)
	}
	if ag.count("update to v-1.3.0 was rolled back; running v-1.1.0") != 1 || !ag.running() {
		t.Errorf("rollback: running %v", ag.running())
	}
	if d.Metadata.ResetReason != "panic" {
		t.Errorf("the boot after the failed image: %s, want reset reason panic", d)
	}
	// The abnormal exit is also reported as a device error, on the version that crashed
	// (v-1.3.0), not the one that reports it after the rollback.
	poll.State(t, checkEvery, waitTimeout, "the crash report", func() (bool, string) {
		var errs struct {
			Items []struct {
				Type            string `json:"type"`
				FirmwareVersion string `json:"firmware_version"`
			} `json:"items"`
		}
		srv.must(t, "GET", "/devices/"+id+"/errors", nil, http.StatusOK, &errs)
		for _, e := range errs.Items {
			if e.Type == "panic" && e.FirmwareVersion == "v-1.3.0" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", errs.Items)
	})
	// The device's update history holds the three outcomes.
	var history struct{ Items []rolloutDevice }
	srv.must(t, "GET", "/devices/"+id+"/updates", nil, http.StatusOK, &history)
	outcomes := map[string]string{}
	for _, u := range history.Items {
		outcomes[u.RolloutID] = u.State + " " + u.Reason
	}
	want := map[string]string{rollout110: "succeeded ", rollout120: "failed hash_mismatch", rolloutID: "failed boot_failed_rolled_back"}
	if fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Errorf("update history %v, want %v", outcomes, want)
	}
}

// waitCommand waits for a device's command to reach state.
func waitCommand(t *testing.T, srv *server, deviceID, commandID, state string) command {
	t.Helper()
	var c command
	poll.State(t, checkEvery, waitTimeout, "command "+commandID+" "+state, func() (bool, string) {
		srv.must(t, "GET", "/devices/"+deviceID+"/commands/"+commandID, nil, http.StatusOK, &c)
		if c.State == "failed" || c.State == "expired" {
			t.Fatalf("command %s: %+v", commandID, c)
		}
		return c.State == state, fmt.Sprintf("%+v", c)
	})
	return c
}

// watchLogs opens the device's live log stream as a script would (bearer token, the public
// URL's Origin) and waits for a batch with the agent's heartbeat lines; the server turns debug
// on for the first viewer, through a command the device acknowledges.
func watchLogs(t *testing.T, srv *server, deviceID string) {
	t.Helper()
	wsURL := "ws" + strings.TrimPrefix(srv.url, "http") + "/api/v1/tenants/" + tenant + "/devices/" + deviceID + "/logs/stream?level=info"
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, resp, err := dialer.DialContext(t.Context(), wsURL, http.Header{
		"Authorization": {"Bearer " + srv.token},
		"Origin":        {srv.url},
	})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("log stream: %v (HTTP %d)", err, status)
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	var debugOn bool
	var heartbeats int
	lastSeq := int64(-1)
	for heartbeats < 3 {
		var frame struct {
			Type    string `json:"type"`
			Enabled bool   `json:"enabled"`
			Lines   []struct {
				Seq   int64  `json:"seq"`
				Level string `json:"level"`
				Tag   string `json:"tag"`
				Msg   string `json:"msg"`
			} `json:"lines"`
		}
		if err := conn.ReadJSON(&frame); err != nil {
			t.Fatalf("log stream: %v after %d heartbeat lines (debug on: %v)", err, heartbeats, debugOn)
		}
		switch frame.Type {
		case "debug":
			debugOn = debugOn || frame.Enabled
		case "lines":
			for _, l := range frame.Lines {
				if l.Seq <= lastSeq {
					t.Errorf("line seq %d after %d", l.Seq, lastSeq)
				}
				lastSeq = l.Seq
				if l.Tag == "sim" && strings.HasPrefix(l.Msg, "heartbeat ") {
					heartbeats++
				}
			}
		}
	}
	// The debug command went through the command path and the device acknowledged it.
	var list struct{ Items []command }
	poll.State(t, checkEvery, waitTimeout, "an acknowledged debug command", func() (bool, string) {
		srv.must(t, "GET", "/devices/"+deviceID+"/commands?limit=500", nil, http.StatusOK, &list)
		for _, c := range list.Items {
			if c.Name == "debug" && c.State == "succeeded" && c.Ack != nil {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", list.Items)
	})
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
}

// uploadRelease stores an image as a release of the project and returns its ID.
func uploadRelease(t *testing.T, srv *server, projectID, version string, img []byte) string {
	t.Helper()
	var rel struct {
		ID      string `json:"id"`
		Version string `json:"version"`
		Size    int64  `json:"size"`
	}
	srv.must(t, "POST", "/projects/"+projectID+"/releases?version="+version, img, http.StatusCreated, &rel)
	if rel.ID == "" || rel.Version != version || rel.Size != int64(len(img)) {
		t.Fatalf("release %+v", rel)
	}
	return rel.ID
}

// startRollout sends a release to one device and returns the rollout's ID.
func startRollout(t *testing.T, srv *server, releaseID, deviceID string) string {
	t.Helper()
	var r struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	srv.must(t, "POST", "/rollouts", map[string]any{"release_id": releaseID,
		"target": map[string]any{"kind": "devices", "device_ids": []string{deviceID}}}, http.StatusCreated, &r)
	if r.ID == "" || r.State != "active" {
		t.Fatalf("rollout %+v", r)
	}
	return r.ID
}

// rollout starts a rollout of the release to the device and waits for the device's final state.
func rollout(t *testing.T, srv *server, releaseID, deviceID, state string) rolloutDevice {
	t.Helper()
	return waitRolloutDevice(t, srv, startRollout(t, srv, releaseID, deviceID), deviceID, state)
}

// waitRolloutDevice waits for the device to reach a final state in the rollout; a final
// state other than want fails the test.
func waitRolloutDevice(t *testing.T, srv *server, rolloutID, deviceID, want string) rolloutDevice {
	t.Helper()
	var got rolloutDevice
	poll.State(t, checkEvery, waitTimeout, "rollout "+rolloutID+" device "+want, func() (bool, string) {
		var list struct{ Items []rolloutDevice }
		srv.must(t, "GET", "/rollouts/"+rolloutID+"/devices", nil, http.StatusOK, &list)
		if len(list.Items) != 1 || list.Items[0].DeviceID != deviceID {
			return false, fmt.Sprintf("%+v", list.Items)
		}
		got = list.Items[0]
		switch got.State {
		case "succeeded", "failed", "skipped":
			if got.State != want {
				t.Fatalf("rollout %s: device %+v, want %s", rolloutID, got, want)
			}
			return true, ""
		}
		return false, fmt.Sprintf("%+v", got)
	})
	return got
}

// corruptBlob replaces the stored bytes of a release (blobs/…/{release}.bin in the data dir)
// by other bytes of the same size, so only the hash can tell.
func corruptBlob(t *testing.T, dataDir, releaseID string, size int) {
	t.Helper()
	var found []string
	err := filepath.WalkDir(filepath.Join(dataDir, "blobs"), func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() && e.Name() == releaseID+".bin" {
			found = append(found, p)
		}
		return err
	})
	if err != nil || len(found) != 1 {
		t.Fatalf("the blob of release %s: %v %v", releaseID, found, err)
	}
	b, err := os.ReadFile(found[0])
	if err != nil || len(b) != size {
		t.Fatalf("blob %s: %d bytes, %v", found[0], len(b), err)
	}
	for i := 64; i < len(b); i += 512 {
		b[i] ^= 0x5A
	}
	if err := os.WriteFile(found[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
}
