package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// configProject creates a project in tenant alpha of the harness and links devices to it.
func configProject(t *testing.T, h *harness, deviceIDs ...string) string {
	t.Helper()
	ctx := t.Context()
	tn, err := h.st.TenantBySlug(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	p := store.Project{TenantID: tn.ID, Name: "thermostat", VersionMismatch: store.MismatchWarn}
	if err := h.st.CreateProject(ctx, &p); err != nil {
		t.Fatal(err)
	}
	for _, id := range deviceIDs {
		d, err := h.st.Device(ctx, tn.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		d.ProjectID = p.ID
		if err := h.st.UpdateDevice(ctx, &d); err != nil {
			t.Fatal(err)
		}
	}
	return p.ID
}

// mqttCapture records every message the broker routes under the topic root.
type mqttCapture struct {
	mu   sync.Mutex
	msgs []messaging.Message
}

func (c *mqttCapture) all() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, m := range c.msgs {
		b.WriteString(m.Topic + " " + string(m.Payload) + "\n")
	}
	return b.String()
}

func captureMQTT(t *testing.T, h *harness) *mqttCapture {
	t.Helper()
	c := &mqttCapture{}
	stop, err := h.fleet.broker.Subscribe(t.Context(), "espadmin/#", 1, func(m messaging.Message) {
		c.mu.Lock()
		c.msgs = append(c.msgs, m)
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return c
}

// recorder keeps every API answer of a scenario, to search them afterwards.
type recorder struct {
	c    *apiClient
	seen strings.Builder
}

func (r *recorder) do(t *testing.T, method, path string, body any, want int) map[string]any {
	t.Helper()
	status, resp := r.c.do(method, path, body)
	raw, _ := json.Marshal(resp)
	r.seen.Write(raw)
	r.seen.WriteByte('\n')
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %v", method, path, status, want, resp)
	}
	return resp
}

func entryOf(t *testing.T, eff map[string]any, key string) map[string]any {
	t.Helper()
	list, _ := eff["entries"].([]any)
	for _, e := range list {
		if m := e.(map[string]any); m["key"] == key {
			return m
		}
	}
	t.Fatalf("no key %q in %v", key, eff)
	return nil
}

// TestConfigScenario runs remote configuration end to end with the real broker and simulated
// devices: project variables reach every linked device, a device override is effective on
// that device only, an offline device receives its config at its boot refresh and reports it
// applied, a rollback brings earlier values back, and the secret's plaintext appears in no
// MQTT payload, log line, API answer or audit entry.
func TestConfigScenario(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	h := w.h
	mqtt := captureMQTT(t, h)
	api := &recorder{c: w.owner}
	const plaintext = "hunter2-Plaintext-Q7xZ"

	_, b1 := w.create(t, map[string]any{"name": "one"})
	_, b2 := w.create(t, map[string]any{"name": "two"})
	project := configProject(t, h, b1.DeviceID, b2.DeviceID)
	base := "/api/v1/tenants/alpha"
	d1 := w.start(t, b1)
	poll.Wait(t, "device one online", func() bool { return w.device(t, b1.DeviceID)["online"] == true })

	// Project variables, one of them secret; device two is offline.
	api.do(t, "PUT", base+"/projects/"+project+"/config", map[string]any{"entries": []map[string]any{
		{"key": "interval_s", "type": "int", "value": 30, "version": 0},
		{"key": "wifi_pass", "type": "string", "value": plaintext, "secret": true, "version": 0},
		{"key": "labels", "type": "json", "value": map[string]any{"b": 1, "a": []any{true}}, "version": 0},
	}}, http.StatusOK)
	// Device one overrides interval_s.
	put := api.do(t, "PUT", base+"/devices/"+b1.DeviceID+"/config/interval_s",
		map[string]any{"type": "int", "value": 5, "version": 0}, http.StatusOK)
	if put["version"] != float64(1) {
		t.Fatalf("override: %v", put)
	}

	path1 := base + "/devices/" + b1.DeviceID + "/config/effective"
	poll.Wait(t, "device one in sync", func() bool {
		eff := api.do(t, "GET", path1, nil, http.StatusOK)
		sync := eff["sync"].(map[string]any)
		return sync["state"] == "in_sync" && sync["applied_version"] == eff["version"]
	})
	eff1 := api.do(t, "GET", path1, nil, http.StatusOK)
	// The device's metadata (reported at boot, before any config) agrees with the sync
	// state: it runs the applied version, not the boot's 0.
	if md := w.device(t, b1.DeviceID)["metadata"].(map[string]any); md["config_version"] != eff1["version"] || md["booted_at"] == nil {
		t.Errorf("device metadata config_version = %v (booted_at %v), want the applied version %v", md["config_version"], md["booted_at"], eff1["version"])
	}
	if e := entryOf(t, eff1, "interval_s"); e["value"] != float64(5) || e["layer"] != "device" {
		t.Errorf("device one interval_s: %v", e)
	}
	if e := entryOf(t, eff1, "wifi_pass"); e["layer"] != "project" || e["secret"] != true ||
		fmt.Sprint(e["value"]) != "map[secret:true set:true]" {
		t.Errorf("device one wifi_pass: %v", e)
	}
	cfg := d1.Config()
	if string(cfg["interval_s"]) != "5" || string(cfg["wifi_pass"]) != `"`+plaintext+`"` || string(cfg["labels"]) != `{"a":[true],"b":1}` {
		t.Errorf("device one applied %v", cfg)
	}
	if d1.ConfigVersion() != int64(eff1["version"].(float64)) {
		t.Errorf("device one runs version %d, effective %v", d1.ConfigVersion(), eff1["version"])
	}

	// Device two was offline: pending, with the project's interval; it gets it at boot.
	path2 := base + "/devices/" + b2.DeviceID + "/config/effective"
	eff2 := api.do(t, "GET", path2, nil, http.StatusOK)
	if e := entryOf(t, eff2, "interval_s"); e["value"] != float64(30) || e["layer"] != "project" {
		t.Errorf("device two interval_s: %v", e)
	}
	if s := eff2["sync"].(map[string]any); s["state"] != "pending" {
		t.Errorf("offline device two: sync %v", s)
	}
	d2 := w.start(t, b2)
	poll.Wait(t, "device two in sync after its boot", func() bool {
		s := api.do(t, "GET", path2, nil, http.StatusOK)["sync"].(map[string]any)
		return s["state"] == "in_sync"
	})
	if cfg := d2.Config(); string(cfg["interval_s"]) != "30" || string(cfg["wifi_pass"]) != `"`+plaintext+`"` {
		t.Errorf("device two applied %v", cfg)
	}

	// Change the override, then roll back to the version that had 5.
	before := int64(eff1["version"].(float64))
	api.do(t, "PUT", base+"/devices/"+b1.DeviceID+"/config/interval_s",
		map[string]any{"type": "int", "value": 7, "version": 1}, http.StatusOK)
	poll.Wait(t, "device one runs 7", func() bool { return string(d1.Config()["interval_s"]) == "7" })
	versions := api.do(t, "GET", base+"/devices/"+b1.DeviceID+"/config/versions", nil, http.StatusOK)
	items := versions["items"].([]any)
	latest := items[0].(map[string]any)
	changes := latest["changes"].([]any)
	if len(changes) != 1 || changes[0].(map[string]any)["old"] != float64(5) || changes[0].(map[string]any)["new"] != float64(7) {
		t.Errorf("diff of the latest version: %v", latest)
	}
	rb := api.do(t, "POST", base+"/devices/"+b1.DeviceID+"/config/rollback", map[string]any{"version": before}, http.StatusOK)
	if e := entryOf(t, rb, "interval_s"); e["value"] != float64(5) || rb["version"].(float64) <= float64(before) {
		t.Errorf("rollback: %v", rb)
	}
	poll.Wait(t, "device one runs 5 again", func() bool {
		return string(d1.Config()["interval_s"]) == "5" && d1.ConfigVersion() == int64(rb["version"].(float64))
	})
	if string(d2.Config()["interval_s"]) != "30" {
		t.Errorf("device two changed by device one's rollback: %v", d2.Config())
	}

	// Read everything back once more, including the audit log.
	api.do(t, "GET", base+"/projects/"+project+"/config", nil, http.StatusOK)
	api.do(t, "GET", base+"/projects/"+project+"/config/wifi_pass", nil, http.StatusOK)
	api.do(t, "GET", base+"/devices/"+b1.DeviceID+"/config/versions", nil, http.StatusOK)
	audit := api.do(t, "GET", base+"/audit?action=config.put", nil, http.StatusOK)
	if len(audit["items"].([]any)) < 3 {
		t.Errorf("config.put audit events: %v", audit)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tn, _ := h.st.TenantBySlug(ctx, "alpha")
	events, _ := h.st.ListAuditEvents(ctx, tn.ID, store.AuditFilter{}, store.ListOptions{Limit: store.MaxPageSize})
	auditRaw, _ := json.Marshal(events.Items)

	payloads := mqtt.all()
	if !strings.Contains(payloads, `"name":"config"`) || !strings.Contains(payloads, `"secret":true`) {
		t.Fatalf("no config command with a secret captured on MQTT:\n%s", payloads)
	}
	for name, text := range map[string]string{
		"MQTT payloads": payloads, "server log": h.logs.String(), "config service log": h.fleet.configLogs.String(),
		"API answers": api.seen.String(), "audit entries": string(auditRaw),
	} {
		if strings.Contains(text, plaintext) {
			t.Errorf("the secret's plaintext appears in the %s", name)
		}
	}
}

// TestConfigBadInput: each invalid request is a 4xx in the error shape naming the field, and
// nothing is written by any of them.
func TestConfigBadInput(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	h := w.h
	_, b := w.create(t, map[string]any{"name": "one"})
	project := configProject(t, h, b.DeviceID)
	base := "/api/v1/tenants/alpha"
	dev := base + "/devices/" + b.DeviceID + "/config"
	proj := base + "/projects/" + project + "/config"
	if st, resp := w.owner.do("PUT", dev+"/mode", map[string]any{"type": "string", "value": "eco", "version": 0}); st != http.StatusOK {
		t.Fatalf("seed: %d %v", st, resp)
	}
	snapshot := func() string {
		e1 := w.get(t, dev)
		e2 := w.get(t, proj)
		v := w.get(t, dev+"/versions")
		raw, _ := json.Marshal([]any{e1, e2, v["items"]})
		return string(raw)
	}
	before := snapshot()
	entry := func(k, typ string, v any) map[string]any {
		return map[string]any{"key": k, "type": typ, "value": v, "version": 0}
	}
	batch := func(es ...map[string]any) map[string]any { return map[string]any{"entries": es} }
	cases := []struct {
		name, method, path string
		body               any
		status             int
		field              string
	}{
		{"key too long", "PUT", dev + "/abcdefghijklmnop", map[string]any{"type": "int", "value": 1, "version": 0}, 422, "key"},
		{"illegal character", "PUT", dev, batch(entry("ok", "int", 1), entry("bad-key", "int", 1)), 422, "entries[1].key"},
		{"reserved key", "PUT", proj, batch(entry("_mqtt_host", "string", "evil.example")), 422, "entries[0].key"},
		{"string for int", "PUT", dev + "/n", map[string]any{"type": "int", "value": "12", "version": 0}, 422, "value"},
		{"fraction for int", "PUT", dev + "/n", map[string]any{"type": "int", "value": 1.5, "version": 0}, 422, "value"},
		{"int beyond 2^53", "PUT", dev + "/n", map[string]any{"type": "int", "value": json.RawMessage("9007199254740993"), "version": 0}, 422, "value"},
		{"bool as string", "PUT", dev + "/on", map[string]any{"type": "bool", "value": "true", "version": 0}, 422, "value"},
		{"unknown type", "PUT", dev + "/on", map[string]any{"type": "blob", "value": "x", "version": 0}, 422, "type"},
		{"string too large", "PUT", dev + "/s", map[string]any{"type": "string", "value": strings.Repeat("x", 4000), "version": 0}, 422, "value"},
		{"secret too large", "PUT", dev + "/s", map[string]any{"type": "string", "value": strings.Repeat("\"", 2700), "secret": true, "version": 0}, 422, "value"},
		{"config over 16 KiB", "PUT", proj, batch(entry("a1", "string", strings.Repeat("a", 3999)), entry("a2", "string", strings.Repeat("a", 3999)),
			entry("a3", "string", strings.Repeat("a", 3999)), entry("a4", "string", strings.Repeat("a", 3999)), entry("a5", "string", strings.Repeat("a", 3999))), 422, "entries"},
		{"duplicate key in a batch", "PUT", dev, batch(entry("x", "int", 1), entry("x", "int", 2)), 422, "entries[1].key"},
		{"stale version", "PUT", dev + "/mode", map[string]any{"type": "string", "value": "boost", "version": 7}, 409, ""},
		{"stale version in a batch", "PUT", dev, batch(entry("fresh", "int", 1), map[string]any{"key": "mode", "type": "string", "value": "x", "version": 0}), 409, ""},
		{"stale version on delete", "DELETE", dev + "/mode?version=9", nil, 409, ""},
		{"unknown device", "PUT", base + "/devices/nosuchdevice/config/mode", map[string]any{"type": "string", "value": "x", "version": 0}, 404, ""},
		{"unknown project", "PUT", base + "/projects/nosuchproject/config", batch(entry("x", "int", 1)), 404, ""},
		{"unknown key", "GET", dev + "/nokey", nil, 404, ""},
		{"rollback to a missing version", "POST", dev + "/rollback", map[string]any{"version": 99}, 422, "version"},
		{"push without target", "POST", base + "/config/push", map[string]any{"target": map[string]any{}}, 422, "target"},
	}
	for _, tc := range cases {
		status, resp := w.owner.do(tc.method, tc.path, tc.body)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d: %v", tc.name, status, tc.status, resp)
			continue
		}
		errCode(t, resp)
		if tc.field != "" {
			fields, _ := resp["error"].(map[string]any)["fields"].(map[string]any)
			if _, ok := fields[tc.field]; !ok {
				t.Errorf("%s: no error on field %q: %v", tc.name, tc.field, resp)
			}
		}
	}
	if after := snapshot(); after != before {
		t.Errorf("bad requests changed the config:\nbefore %s\nafter  %s", before, after)
	}
}
