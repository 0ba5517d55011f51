package server

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/cmd/espadmin/sim"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// startWithState runs a simulated device that keeps its bundle in dir.
func (w *deviceWorld) startWithState(t *testing.T, b fleet.Bundle, dir string) *sim.Device {
	t.Helper()
	d, err := sim.NewDevice(sim.Options{Bundle: b, BrokerURL: "tcp://" + w.h.fleet.mqttAddr, ReconnectDelay: 50 * time.Millisecond, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background())
	t.Cleanup(d.Stop)
	return d
}

// stagedSecret is the _mqtt_secret the simulated device applied ("" when none).
func stagedSecret(d *sim.Device) string {
	var s string
	_ = json.Unmarshal(d.Config()[protocol.KeyMQTTSecret], &s)
	return s
}

// savedSecret is the secret of the bundle the simulated device saved in dir.
func savedSecret(t *testing.T, dir, id string) string {
	t.Helper()
	b, err := sim.ReadBundle(filepath.Join(dir, id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b.Secret
}

// TestStagedRotation rotates credentials in staged mode with the real broker and simulated
// devices: an online device receives the new secret in its config, acknowledges it, is
// disconnected, reconnects with the new secret and is online again, after which the old
// secret is refused; an offline device keeps its old secret until it boots, gets the new one
// at its boot refresh and switches the same way. The staged secrets appear in no API answer,
// audit entry, log line or MQTT payload. Immediate mode still answers with a new secret,
// refuses the old one at once and drops the staged secret entry.
func TestStagedRotation(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	h := w.h
	capture := captureMQTT(t, h)
	api := &recorder{c: w.owner}
	base := "/api/v1/tenants/alpha/devices/"
	addr := h.fleet.mqttAddr
	ctx := t.Context()
	tn, err := h.st.TenantBySlug(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	switched := func(id, secret string) bool {
		d, err := h.st.Device(ctx, tn.ID, id)
		return err == nil && fleet.SecretMatches(secret, d.SecretHash)
	}

	_, b1 := w.create(t, map[string]any{"name": "online"})
	_, b2 := w.create(t, map[string]any{"name": "offline"})
	dir1, dir2 := t.TempDir(), t.TempDir()

	// Online device.
	d1 := w.startWithState(t, b1, dir1)
	w.waitOnline(t, b1.DeviceID, true)
	rot := api.do(t, "POST", base+b1.DeviceID+"/rotate-credentials", map[string]any{"mode": "staged"}, http.StatusAccepted)
	if _, ok := rot["secret"]; ok {
		t.Fatalf("staged rotation answered a secret: %v", rot)
	}
	if _, ok := rot["provisioning"]; ok {
		t.Fatalf("staged rotation answered a bundle: %v", rot)
	}
	if cr, _ := rot["credentials_rotation"].(map[string]any); cr["state"] != "pending" || cr["mode"] != "staged" || cr["config_version"] == float64(0) {
		t.Fatalf("staged rotation: %v", rot)
	}
	poll.Wait(t, "device one applied a new secret", func() bool { return stagedSecret(d1) != "" })
	new1 := stagedSecret(d1)
	if new1 == b1.Secret {
		t.Fatal("the staged secret is the old one")
	}
	poll.Wait(t, "device one switched, reconnected and online", func() bool {
		return switched(b1.DeviceID, new1) && d1.Stats().Connects >= 2 && d1.Connected() &&
			w.device(t, b1.DeviceID)["online"] == true
	})
	if got := savedSecret(t, dir1, b1.DeviceID); got != new1 {
		t.Errorf("device one saved secret %q, want the staged one", got)
	}
	if err := mqttConnect(addr, b1.DeviceID, b1.Secret); err == nil {
		t.Error("the old secret of device one still connects after the switch")
	}
	w.waitOnline(t, b1.DeviceID, true)
	dev1 := api.do(t, "GET", base+b1.DeviceID, nil, http.StatusOK)
	if dev1["credentials_rotation"] != nil || dev1["credentials_rotated_at"] == nil {
		t.Errorf("device one after the switch: %v", dev1)
	}
	eff := api.do(t, "GET", base+b1.DeviceID+"/config/effective", nil, http.StatusOK)
	if e := entryOf(t, eff, protocol.KeyMQTTSecret); e["layer"] != "platform" || e["secret"] != true {
		t.Errorf("effective _mqtt_secret: %v", e)
	}
	// Users still cannot write the reserved key.
	api.do(t, "PUT", base+b1.DeviceID+"/config/"+protocol.KeyMQTTSecret,
		map[string]any{"type": "string", "value": "x", "secret": true, "version": 0}, http.StatusUnprocessableEntity)

	// Offline device: the old secret works until it applied the new one.
	api.do(t, "POST", base+b2.DeviceID+"/rotate-credentials", map[string]any{"mode": "staged"}, http.StatusAccepted)
	dev2 := api.do(t, "GET", base+b2.DeviceID, nil, http.StatusOK)
	if cr, _ := dev2["credentials_rotation"].(map[string]any); cr["state"] != "pending" {
		t.Fatalf("offline device: %v", dev2)
	}
	if err := mqttConnect(addr, b2.DeviceID, b2.Secret); err != nil {
		t.Fatalf("the old secret of the offline device is refused before it applied the new one: %v", err)
	}
	d2 := w.startWithState(t, b2, dir2)
	poll.Wait(t, "device two applied a new secret at boot", func() bool { return stagedSecret(d2) != "" })
	new2 := stagedSecret(d2)
	poll.Wait(t, "device two switched, reconnected and online", func() bool {
		return switched(b2.DeviceID, new2) && d2.Stats().Connects >= 2 && d2.Connected() &&
			w.device(t, b2.DeviceID)["online"] == true
	})
	if got := savedSecret(t, dir2, b2.DeviceID); got != new2 {
		t.Errorf("device two saved secret %q, want the staged one", got)
	}
	if err := mqttConnect(addr, b2.DeviceID, b2.Secret); err == nil {
		t.Error("the old secret of device two still connects after the switch")
	}
	if dev2 = api.do(t, "GET", base+b2.DeviceID, nil, http.StatusOK); dev2["credentials_rotation"] != nil {
		t.Errorf("device two after the switch: %v", dev2)
	}

	// A later config change does not switch or disconnect again.
	connects := d1.Stats().Connects
	api.do(t, "PUT", base+b1.DeviceID+"/config/interval_s", map[string]any{"type": "int", "value": 5, "version": 0}, http.StatusOK)
	poll.Wait(t, "device one applied interval_s", func() bool { return string(d1.Config()["interval_s"]) == "5" })
	poll.Wait(t, "device one in sync", func() bool {
		s := api.do(t, "GET", base+b1.DeviceID+"/config/effective", nil, http.StatusOK)["sync"].(map[string]any)
		return s["state"] == "in_sync"
	})
	if d1.Stats().Connects != connects || !switched(b1.DeviceID, new1) {
		t.Errorf("a later config change reconnected device one (%d → %d connects) or changed its secret", connects, d1.Stats().Connects)
	}

	// Immediate mode: unchanged, and the staged secret entry is dropped.
	status, imm := w.owner.do("POST", base+b1.DeviceID+"/rotate-credentials", nil)
	if status != http.StatusOK || imm["secret"] == "" || imm["secret"] == nil || imm["provisioning"] == nil {
		t.Fatalf("immediate rotation: %d %v", status, imm)
	}
	w.waitOnline(t, b1.DeviceID, false)
	if err := mqttConnect(addr, b1.DeviceID, new1); err == nil {
		t.Error("the staged secret still connects after an immediate rotation")
	}
	if err := mqttConnect(addr, b1.DeviceID, imm["secret"].(string)); err != nil {
		t.Errorf("the new secret of the immediate rotation is refused: %v", err)
	}
	if _, err := h.st.ConfigEntry(ctx, tn.ID, store.ScopeDevice, b1.DeviceID, protocol.KeyMQTTSecret); err == nil {
		t.Error("the staged secret entry survived an immediate rotation")
	}
	status, bad := w.owner.do("POST", base+b1.DeviceID+"/rotate-credentials", map[string]any{"mode": "later"})
	if status != http.StatusUnprocessableEntity {
		t.Errorf("unknown mode: %d %v", status, bad)
	}

	// The staged secrets never appear in clear text.
	api.do(t, "GET", base+b1.DeviceID+"/config/versions", nil, http.StatusOK)
	audit := api.do(t, "GET", "/api/v1/tenants/alpha/audit?action=device.rotate_credentials", nil, http.StatusOK)
	if n := len(audit["items"].([]any)); n != 3 {
		t.Errorf("%d rotation audit events, want 3", n)
	}
	events, err := h.st.ListAuditEvents(ctx, tn.ID, store.AuditFilter{}, store.ListOptions{Limit: store.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	auditRaw, _ := json.Marshal(events.Items)
	payloads := capture.all()
	if !strings.Contains(payloads, `"key":"_mqtt_secret"`) {
		t.Fatalf("no config carrying _mqtt_secret captured on MQTT:\n%s", payloads)
	}
	for name, text := range map[string]string{
		"MQTT payloads": payloads, "server log": h.logs.String(), "config service log": h.fleet.configLogs.String(),
		"API answers": api.seen.String(), "audit entries": string(auditRaw),
	} {
		for _, secret := range []string{new1, new2} {
			if strings.Contains(text, secret) {
				t.Errorf("a staged secret appears in the %s", name)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir1, b1.DeviceID+".json")); err != nil {
		t.Error(err)
	}
}
