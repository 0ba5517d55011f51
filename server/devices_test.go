package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/cmd/espadmin/sim"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// deviceWorld is a harness with the real broker, tenants alpha and beta with an owner each,
// and the owner's session in alpha.
type deviceWorld struct {
	h     *harness
	owner *apiClient
}

func newDeviceWorld(t *testing.T, opts ...harnessOption) *deviceWorld {
	t.Helper()
	h := newHarness(t, append([]harnessOption{withBroker()}, opts...)...)
	h.createUser(t, memberEmail("alpha", store.RoleOwner), "alpha", store.RoleOwner)
	h.createUser(t, memberEmail("beta", store.RoleOwner), "beta", store.RoleOwner)
	return &deviceWorld{h: h, owner: h.login(t, memberEmail("alpha", store.RoleOwner))}
}

// create makes a device through the API and returns the creation answer and its bundle.
func (w *deviceWorld) create(t *testing.T, body map[string]any) (map[string]any, fleet.Bundle) {
	t.Helper()
	status, resp := w.owner.do("POST", "/api/v1/tenants/alpha/devices", body)
	if status != http.StatusCreated {
		t.Fatalf("create device: %d %v", status, resp)
	}
	return resp, bundleOf(t, resp["provisioning"])
}

func bundleOf(t *testing.T, v any) fleet.Bundle {
	t.Helper()
	raw, _ := json.Marshal(v)
	var b fleet.Bundle
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// start runs a simulated device for b against the harness broker.
// greenhouse creates the project "greenhouse" (mismatch: warn) in tenant alpha.
func (w *deviceWorld) greenhouse(t *testing.T) store.Project {
	t.Helper()
	proj := store.Project{TenantID: tenantID(t, w.h.st, "alpha"), Name: "greenhouse", VersionMismatch: store.MismatchWarn}
	if err := w.h.st.CreateProject(t.Context(), &proj); err != nil {
		t.Fatal(err)
	}
	return proj
}

func (w *deviceWorld) start(t *testing.T, b fleet.Bundle) *sim.Device {
	t.Helper()
	return w.startWith(t, b, 50*time.Millisecond)
}

// startWith is start with the pause the device takes before reconnecting.
func (w *deviceWorld) startWith(t *testing.T, b fleet.Bundle, reconnect time.Duration) *sim.Device {
	t.Helper()
	d, err := sim.NewDevice(sim.Options{Bundle: b, BrokerURL: "tcp://" + w.h.fleet.mqttAddr, ReconnectDelay: reconnect})
	if err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background())
	t.Cleanup(d.Stop)
	return d
}

func (w *deviceWorld) get(t *testing.T, path string) map[string]any {
	t.Helper()
	status, resp := w.owner.do("GET", path, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, status, resp)
	}
	return resp
}

func (w *deviceWorld) device(t *testing.T, id string) map[string]any {
	t.Helper()
	return w.get(t, "/api/v1/tenants/alpha/devices/"+id)
}

// send posts a command and returns the created commands.
func (w *deviceWorld) send(t *testing.T, body map[string]any) []map[string]any {
	t.Helper()
	status, resp := w.owner.do("POST", "/api/v1/tenants/alpha/commands", body)
	if status != http.StatusAccepted {
		t.Fatalf("send command: %d %v", status, resp)
	}
	var out []map[string]any
	for _, it := range resp["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}

func (w *deviceWorld) commandState(t *testing.T, deviceID, id string) string {
	t.Helper()
	return w.get(t, "/api/v1/tenants/alpha/devices/"+deviceID+"/commands/"+id)["state"].(string)
}

func (w *deviceWorld) waitState(t *testing.T, cmd map[string]any, want string) {
	t.Helper()
	dev, id := cmd["device_id"].(string), cmd["id"].(string)
	poll.Wait(t, fmt.Sprintf("command %s %s", id, want), func() bool { return w.commandState(t, dev, id) == want })
}

func (w *deviceWorld) waitOnline(t *testing.T, id string, online bool) {
	t.Helper()
	poll.Wait(t, fmt.Sprintf("device %s online=%v", id, online), func() bool { return w.device(t, id)["online"] == online })
}

// eventStream reads a tenant's Server-Sent Events, with the id of each.
type eventStream struct {
	mu     sync.Mutex
	events []map[string]any
	ids    []string
	close  func()
}

func (w *deviceWorld) openEvents(t *testing.T, c *apiClient, slug string) *eventStream {
	t.Helper()
	return w.openEventsAfter(t, c, slug, "")
}

// openEventsAfter opens the stream as a client that resumes after the event lastID
// (Last-Event-ID), or a fresh one when lastID is empty.
func (w *deviceWorld) openEventsAfter(t *testing.T, c *apiClient, slug, lastID string) *eventStream {
	t.Helper()
	before := w.h.fleet.hub.Subscribers()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", c.base+"/api/v1/tenants/"+slug+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := (&http.Client{Jar: c.http.Jar}).Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &eventStream{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var typ, id string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				var ev map[string]any
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil || ev["type"] != typ {
					t.Errorf("bad event %q (%v)", line, err)
					continue
				}
				s.mu.Lock()
				s.events = append(s.events, ev)
				s.ids = append(s.ids, id)
				s.mu.Unlock()
				id = ""
			}
		}
	}()
	var once sync.Once
	s.close = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(s.close)
	// The subscription exists once the server sent its first bytes; wait until the hub
	// counts it so no event is missed.
	poll.Wait(t, "event subscription", func() bool { return w.h.fleet.hub.Subscribers() > before })
	return s
}

// all returns the events read so far, with their ids.
func (s *eventStream) all() ([]map[string]any, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events), slices.Clone(s.ids)
}

// find returns the first event matching cond.
func (s *eventStream) find(cond func(map[string]any) bool) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.events {
		if cond(ev) {
			return ev
		}
	}
	return nil
}

func eventIs(typ, deviceID string, data func(map[string]any) bool) func(map[string]any) bool {
	return func(ev map[string]any) bool {
		if ev["type"] != typ || ev["device_id"] != deviceID {
			return false
		}
		d, _ := ev["data"].(map[string]any)
		return data == nil || data(d)
	}
}

// TestDeviceConnectsAndShowsOnline: a device created through the API connects with the
// returned ID and secret, shows online in the API and on the event stream (pushed, not
// polled from the device), and its boot metadata is stored.
func TestDeviceConnectsAndShowsOnline(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	events := w.openEvents(t, w.owner, "alpha")

	resp, b := w.create(t, map[string]any{"name": "Kitchen sensor", "tags": []string{"floor-1", "sensor", "floor-1"}})
	id, secret := resp["id"].(string), resp["secret"].(string)
	if !protocol.ValidDeviceID(id) || len(secret) < 40 || b.DeviceID != id || b.Secret != secret {
		t.Fatalf("create answer: %v", resp)
	}
	if key, err := base64.StdEncoding.DecodeString(b.DeviceKey); err != nil || len(key) != 32 {
		t.Errorf("device_key %q", b.DeviceKey)
	}
	if b.V != 1 || b.MQTT.TopicRoot != protocol.DefaultRoot || b.MQTT.Host == "" || b.MQTT.Port == 0 || b.ServerURL == "" {
		t.Errorf("bundle %+v", b)
	}
	if tags := resp["tags"].([]any); len(tags) != 2 {
		t.Errorf("tags not deduplicated: %v", tags)
	}
	if resp["online"] != false {
		t.Errorf("new device online: %v", resp)
	}

	// It waits a second before reconnecting after a power loss, so the offline is visible.
	d := w.startWith(t, b, time.Second)
	poll.Wait(t, "online event", func() bool {
		return events.find(eventIs(fleet.EventPresence, id, func(d map[string]any) bool { return d["online"] == true })) != nil
	})
	poll.Wait(t, "metadata event", func() bool { return events.find(eventIs(fleet.EventMetadata, id, nil)) != nil })
	w.waitOnline(t, id, true)
	poll.Wait(t, "metadata stored", func() bool { return w.device(t, id)["metadata"] != nil })
	got := w.device(t, id)
	md := got["metadata"].(map[string]any)
	if md["firmware_version"] != sim.DefaultFirmware || md["chip_model"] != sim.DefaultChip || md["reset_reason"] != "poweron" || md["mac"] == "" {
		t.Errorf("metadata %v", md)
	}
	poll.Wait(t, "last seen", func() bool { return w.device(t, id)["last_seen_at"] != nil })
	// Uptime is reported at boot (about 0 s); while the device stays online the device's
	// answer counts on from its boot.
	w.h.clock.Advance(10 * time.Minute)
	if up := w.device(t, id)["metadata"].(map[string]any)["uptime_seconds"].(float64); up < 500 {
		t.Errorf("uptime_seconds 10 minutes after boot = %v, want about 600", up)
	}

	// A power loss: the broker publishes the will, the device shows offline, then comes back.
	d.Kill()
	poll.Wait(t, "offline event", func() bool {
		return events.find(eventIs(fleet.EventPresence, id, func(d map[string]any) bool { return d["online"] == false })) != nil
	})
	poll.Until(t, 30*time.Second, "reconnected", func() bool { return d.Stats().Connects >= 2 && d.Connected() })
	w.waitOnline(t, id, true)
	// A clean stop: no will, but the broker reports the device offline.
	d.Stop()
	w.waitOnline(t, id, false)

	// The audit log has the creation, without the secret.
	audit := w.get(t, "/api/v1/tenants/alpha/audit?action=device.create")
	raw, _ := json.Marshal(audit)
	if len(items(t, audit)) != 1 || bytes.Contains(raw, []byte(secret)) {
		t.Errorf("audit: %s", raw)
	}
}

// TestDeviceList: filters and cursor pagination.
func TestDeviceList(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	proj := w.greenhouse(t)
	r1, b1 := w.create(t, map[string]any{"name": "Kitchen", "tags": []string{"a"}, "project_id": proj.ID})
	r2, _ := w.create(t, map[string]any{"name": "Garage", "tags": []string{"a", "b"}})
	r3, _ := w.create(t, map[string]any{"name": "Attic"})
	w.start(t, b1)
	w.waitOnline(t, r1["id"].(string), true)
	poll.Wait(t, "metadata", func() bool { return w.device(t, r1["id"].(string))["metadata"] != nil })

	ids := func(q string) []string {
		var out []string
		for _, it := range items(t, w.get(t, "/api/v1/tenants/alpha/devices"+q)) {
			out = append(out, it["id"].(string))
		}
		return out
	}
	id1, id2, id3 := r1["id"].(string), r2["id"].(string), r3["id"].(string)
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"", []string{id1, id2, id3}},
		{"?tag=a", []string{id1, id2}},
		{"?tag=b", []string{id2}},
		{"?project=" + proj.ID, []string{id1}},
		{"?online=true", []string{id1}},
		{"?online=false", []string{id2, id3}},
		{"?firmware=" + sim.DefaultFirmware, []string{id1}},
		{"?q=gara", []string{id2}},
		{"?q=" + id3, []string{id3}},
	} {
		if got := ids(tc.q); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%q: %v, want %v", tc.q, got, tc.want)
		}
	}
	page := w.get(t, "/api/v1/tenants/alpha/devices?limit=2")
	if len(items(t, page)) != 2 || page["next_cursor"] == "" {
		t.Fatalf("page 1: %v", page)
	}
	page2 := w.get(t, "/api/v1/tenants/alpha/devices?limit=2&cursor="+page["next_cursor"].(string))
	if got := items(t, page2); len(got) != 1 || got[0]["id"] != id3 || page2["next_cursor"] != "" {
		t.Errorf("page 2: %v", page2)
	}
	status, resp := w.owner.do("GET", "/api/v1/tenants/alpha/devices?online=maybe", nil)
	wantError(t, "online=maybe", status, resp, 422)

	// PATCH: rename, retag, link and unlink the project; an unknown project is refused.
	status, resp = w.owner.do("PATCH", "/api/v1/tenants/alpha/devices/"+id2, map[string]any{"name": "Shed", "tags": []string{"c"}, "project_id": proj.ID})
	if status != 200 || resp["name"] != "Shed" || resp["project_id"] != proj.ID || fmt.Sprint(resp["tags"]) != "[c]" {
		t.Errorf("patch: %d %v", status, resp)
	}
	status, resp = w.owner.do("PATCH", "/api/v1/tenants/alpha/devices/"+id2, map[string]any{"project_id": "0000000000000000000000none"})
	wantError(t, "unknown project", status, resp, 422)
	status, resp = w.owner.do("PATCH", "/api/v1/tenants/alpha/devices/"+id2, map[string]any{"project_id": ""})
	if status != 200 || resp["project_id"] != nil {
		t.Errorf("unlink: %d %v", status, resp)
	}
	if status, resp := w.owner.do("DELETE", "/api/v1/tenants/alpha/devices/"+id3, nil); status != 204 {
		t.Errorf("delete: %d %v", status, resp)
	}
	status, resp = w.owner.do("GET", "/api/v1/tenants/alpha/devices/"+id3, nil)
	wantError(t, "deleted device", status, resp, 404)
}

// TestCommandsAcknowledged: restart to one device, to a tag and to a project; debug on; each
// reaches the simulated devices, which acknowledge, and the states are visible.
func TestCommandsAcknowledged(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	events := w.openEvents(t, w.owner, "alpha")
	proj := w.greenhouse(t)
	r1, b1 := w.create(t, map[string]any{"name": "one", "tags": []string{"lab"}, "project_id": proj.ID})
	r2, b2 := w.create(t, map[string]any{"name": "two", "tags": []string{"lab"}})
	r3, b3 := w.create(t, map[string]any{"name": "three", "project_id": proj.ID})
	id1, id2, id3 := r1["id"].(string), r2["id"].(string), r3["id"].(string)
	d1, d2 := w.start(t, b1), w.start(t, b2)
	w.start(t, b3)
	for _, id := range []string{id1, id2, id3} {
		w.waitOnline(t, id, true)
	}

	// One device: it acks, reboots and reports its boot metadata again with reset reason sw.
	cmds := w.send(t, map[string]any{"name": "restart", "params": map[string]any{"reason": "test"}, "target": map[string]any{"device_ids": []string{id1}}})
	if len(cmds) != 1 || cmds[0]["device_id"] != id1 || cmds[0]["name"] != "restart" || cmds[0]["params"].(map[string]any)["reason"] != "test" {
		t.Fatalf("commands: %v", cmds)
	}
	if s := cmds[0]["state"]; s != "delivered" && s != "succeeded" {
		t.Errorf("command to an online device is %v", s)
	}
	if cmds[0]["device_online"] != true || cmds[0]["queued_until_connected"] != false {
		t.Errorf("command to an online device = %v, want device_online and not queued_until_connected", cmds[0])
	}
	w.waitState(t, cmds[0], "succeeded")
	poll.Wait(t, "reboot", func() bool { return d1.Stats().Restarts == 1 && d1.Stats().Connects == 2 })
	poll.Wait(t, "metadata after reboot", func() bool {
		md, _ := w.device(t, id1)["metadata"].(map[string]any)
		return md != nil && md["reset_reason"] == "sw"
	})
	c := w.get(t, "/api/v1/tenants/alpha/devices/"+id1+"/commands/"+cmds[0]["id"].(string))
	if c["ack"].(map[string]any)["result"] != "ok" || c["completed_at"] == nil || c["delivered_at"] == nil {
		t.Errorf("acknowledged command: %v", c)
	}
	poll.Wait(t, "command event", func() bool {
		return events.find(eventIs(fleet.EventCommand, id1, func(d map[string]any) bool { return d["state"] == "succeeded" })) != nil
	})

	// A tag and a project.
	for _, tc := range []struct {
		target map[string]any
		want   []string
	}{
		{map[string]any{"tag": "lab"}, []string{id1, id2}},
		{map[string]any{"project_id": proj.ID}, []string{id1, id3}},
	} {
		cmds := w.send(t, map[string]any{"name": "restart", "target": tc.target})
		var got []string
		for _, c := range cmds {
			got = append(got, c["device_id"].(string))
			w.waitState(t, c, "succeeded")
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%v reached %v, want %v", tc.target, got, tc.want)
		}
	}

	// debug on: acked, then log batches flow (and are counted as unhandled: no log relay yet).
	cmds = w.send(t, map[string]any{"name": "debug", "params": map[string]any{"enabled": true, "level": "debug", "duration_s": 60}, "target": map[string]any{"device_ids": []string{id2}}})
	w.waitState(t, cmds[0], "succeeded")
	poll.Wait(t, "log batches", func() bool {
		return d2.Stats().LogBatches > 0 && testutil.ToFloat64(w.h.fleet.metrics.Unhandled.WithLabelValues("log")) > 0
	})
	cmds = w.send(t, map[string]any{"name": "debug", "params": map[string]any{"enabled": false}, "target": map[string]any{"device_ids": []string{id2}}})
	w.waitState(t, cmds[0], "succeeded")

	// The list shows every command of device 1, newest first.
	list := items(t, w.get(t, "/api/v1/tenants/alpha/devices/"+id1+"/commands"))
	if len(list) != 3 {
		t.Errorf("device 1 has %d commands", len(list))
	}
	if list := items(t, w.get(t, "/api/v1/tenants/alpha/devices/"+id1+"/commands?state=succeeded")); len(list) != 3 {
		t.Errorf("succeeded filter: %d", len(list))
	}
}

// TestCommandToOfflineDevice: queued while offline, delivered and acknowledged when the device
// connects; a command nobody picks up expires.
func TestCommandToOfflineDevice(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	events := w.openEvents(t, w.owner, "alpha")
	r1, b1 := w.create(t, map[string]any{"name": "sleepy"})
	r2, _ := w.create(t, map[string]any{"name": "gone"})
	id1, id2 := r1["id"].(string), r2["id"].(string)

	first := w.send(t, map[string]any{"name": "debug", "params": map[string]any{"enabled": false}, "target": map[string]any{"device_ids": []string{id1}}})[0]
	second := w.send(t, map[string]any{"name": "restart", "target": map[string]any{"device_ids": []string{id1}}})[0]
	if first["state"] != "queued" || second["state"] != "queued" {
		t.Fatalf("commands to an offline device: %v %v", first, second)
	}
	// The answer says they wait for the device, so the UI can say "queued until the device
	// connects".
	if first["queued_until_connected"] != true || first["device_online"] != false {
		t.Errorf("command to an offline device = %v, want queued_until_connected and device_online false", first)
	}
	d := w.start(t, b1)
	w.waitState(t, first, "succeeded")
	w.waitState(t, second, "succeeded")
	poll.Wait(t, "restart", func() bool { return d.Stats().Restarts == 1 })

	expiring := w.send(t, map[string]any{"name": "restart", "ttl_seconds": 10, "target": map[string]any{"device_ids": []string{id2}}})[0]
	w.h.fleet.clock.Advance(11 * time.Second)
	if _, err := w.h.fleet.commands.SweepOnce(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	if s := w.commandState(t, id2, expiring["id"].(string)); s != "expired" {
		t.Errorf("expired command is %s", s)
	}
	poll.Wait(t, "expiry event", func() bool {
		return events.find(func(ev map[string]any) bool { return ev["type"] == fleet.EventCommandsExpired }) != nil
	})
}

// TestDuplicateAckAppliesOnce: an ack sent again (or an unknown ID) changes nothing and is
// counted.
func TestDuplicateAckAppliesOnce(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	r, b := w.create(t, map[string]any{"name": "twice"})
	id := r["id"].(string)
	d := w.start(t, b)
	w.waitOnline(t, id, true)
	cmd := w.send(t, map[string]any{"name": "debug", "params": map[string]any{"enabled": false}, "target": map[string]any{"device_ids": []string{id}}})[0]
	w.waitState(t, cmd, "succeeded")
	before := w.get(t, "/api/v1/tenants/alpha/devices/"+id+"/commands/"+cmd["id"].(string))

	m := w.h.fleet.metrics
	dup, unknown := testutil.ToFloat64(m.Acks.WithLabelValues("duplicate")), testutil.ToFloat64(m.Acks.WithLabelValues("unknown"))
	ack := fmt.Sprintf(`{"v":1,"id":%q,"result":"error","message":"late"}`, cmd["id"])
	if err := d.PublishRaw(protocol.KindAck, []byte(ack)); err != nil {
		t.Fatal(err)
	}
	if err := d.PublishRaw(protocol.KindAck, []byte(`{"v":1,"id":"0000000000000000000000zzzz","result":"ok"}`)); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, "duplicate and unknown acks counted", func() bool {
		return testutil.ToFloat64(m.Acks.WithLabelValues("duplicate")) == dup+1 && testutil.ToFloat64(m.Acks.WithLabelValues("unknown")) == unknown+1
	})
	after := w.get(t, "/api/v1/tenants/alpha/devices/"+id+"/commands/"+cmd["id"].(string))
	if after["state"] != "succeeded" || after["completed_at"] != before["completed_at"] || after["error"] != nil {
		t.Errorf("duplicate ack changed the command: %v", after)
	}
}

// mqttConnect tries one MQTT connection as a device and returns the error.
func mqttConnect(addr, id, secret string) error {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetUsername(id).SetPassword(secret).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false))
	tok := c.Connect()
	tok.WaitTimeout(10 * time.Second)
	if err := tok.Error(); err != nil {
		return err
	}
	c.Disconnect(0)
	return nil
}

// TestRotateAndDisable: rotating kicks the live session and refuses the old secret while
// the new one works; disabling kicks and refuses until enabled.
func TestRotateAndDisable(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	r, b := w.create(t, map[string]any{"name": "rotating"})
	id, oldSecret := r["id"].(string), r["secret"].(string)
	d := w.start(t, b)
	poll.Wait(t, "connected", d.Connected)
	w.waitOnline(t, id, true)

	status, rot := w.owner.do("POST", "/api/v1/tenants/alpha/devices/"+id+"/rotate-credentials", nil)
	newSecret, _ := rot["secret"].(string)
	if status != 200 || newSecret == "" || newSecret == oldSecret || rot["provisioning"].(map[string]any)["secret"] != newSecret {
		t.Fatalf("rotate: %d %v", status, rot)
	}
	if rot["provisioning"].(map[string]any)["device_key"] == b.DeviceKey {
		t.Error("rotation kept the device key")
	}
	poll.Wait(t, "old session kicked and refused", func() bool { return d.Stats().Refused > 0 })
	if err := mqttConnect(w.h.fleet.mqttAddr, id, oldSecret); err == nil {
		t.Error("old secret still accepted")
	}
	d.SetSecret(newSecret)
	poll.Wait(t, "reconnected with the new secret", func() bool { return d.Stats().Connects == 2 && d.Connected() })
	w.waitOnline(t, id, true)

	status, resp := w.owner.do("POST", "/api/v1/tenants/alpha/devices/"+id+"/disable", nil)
	if status != 200 || resp["disabled"] != true {
		t.Fatalf("disable: %d %v", status, resp)
	}
	refused := d.Stats().Refused
	poll.Wait(t, "disabled device kicked and refused", func() bool { return !d.Connected() && d.Stats().Refused > refused })
	w.waitOnline(t, id, false)
	if status, resp := w.owner.do("POST", "/api/v1/tenants/alpha/devices/"+id+"/enable", nil); status != 200 || resp["disabled"] != false {
		t.Fatalf("enable: %d %v", status, resp)
	}
	poll.Wait(t, "enabled device back", d.Connected)
	w.waitOnline(t, id, true)

	for _, action := range []string{"device.rotate_credentials", "device.disable", "device.enable"} {
		if got := items(t, w.get(t, "/api/v1/tenants/alpha/audit?action="+action)); len(got) != 1 {
			t.Errorf("audit %s: %v", action, got)
		}
	}
}

// TestProvisioningBundle: the JSON bundle and the NVS CSV parse back to the same values; the
// secret is only there at creation and with rotate=true.
func TestProvisioningBundle(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	r, created := w.create(t, map[string]any{"name": "flash me"})
	id := r["id"].(string)
	base := "/api/v1/tenants/alpha/devices/" + id + "/provisioning"

	b := bundleOf(t, w.get(t, base))
	want := created
	want.Secret = ""
	if b != want {
		t.Errorf("bundle without secret:\n%+v\nwant\n%+v", b, want)
	}
	// The creation answer carries the same bundle as an NVS CSV, secret included, so the UI
	// can offer both files while the secret is shown; and it says when the bundle's
	// addresses (127.0.0.1 here) cannot be reached by devices.
	fromCSV, err := fleet.ParseNVSCSV([]byte(r["provisioning_nvs_csv"].(string)))
	if err != nil || fromCSV.Secret != created.Secret || fromCSV.DeviceID != id || fromCSV.MQTT.Host != created.MQTT.Host {
		t.Errorf("provisioning_nvs_csv = %+v (%v), want the created bundle", fromCSV, err)
	}
	if ws, _ := r["provisioning_warnings"].([]any); len(ws) != 2 || !strings.Contains(ws[0].(string), "--mqtt-public-host") {
		t.Errorf("provisioning_warnings = %v, want the loopback broker host and server URL named", r["provisioning_warnings"])
	}
	// The pages of those who create devices say it too.
	page, err := w.owner.http.Get(w.owner.base + "/t/alpha/devices")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(body), `data-notice="endpoint"`) || !strings.Contains(string(body), "--mqtt-public-host") {
		t.Errorf("the devices page does not warn about the loopback bundle host:\n%s", body)
	}

	req, _ := http.NewRequest("GET", w.owner.base+base+"?format=nvs-csv", nil)
	resp, err := w.owner.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("csv: %d %v", resp.StatusCode, resp.Header)
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rows[0]) != "[key type encoding value]" || fmt.Sprint(rows[1]) != "[espadmin namespace  ]" {
		t.Errorf("csv head: %v", rows[:2])
	}
	byKey := map[string][]string{}
	for _, row := range rows[2:] {
		byKey[row[0]] = row
		if len(row[0]) > 15 {
			t.Errorf("NVS key %q longer than 15", row[0])
		}
	}
	if fmt.Sprint(byKey["mqtt_port"]) != fmt.Sprintf("[mqtt_port data u16 %d]", want.MQTT.Port) ||
		fmt.Sprint(byKey["device_id"]) != "[device_id data string "+id+"]" || byKey["secret"] != nil {
		t.Errorf("csv rows: %v", rows)
	}
	var buf bytes.Buffer
	_ = csv.NewWriter(&buf).WriteAll(rows)
	parsed, err := fleet.ParseNVSCSV(buf.Bytes())
	if err != nil || parsed != b {
		t.Errorf("csv parses back to %+v (%v), want %+v", parsed, err, b)
	}
	// target=esp8266 checks the values fit the ESP8266 SDK's NVS format (they do here: no CA);
	// an unknown target is refused.
	if status, out := w.owner.do("GET", base+"?target=esp8266", nil); status != 200 || bundleOf(t, out) != b {
		t.Errorf("target=esp8266: %d %v", status, out)
	}
	if status, out := w.owner.do("GET", base+"?format=nvs-csv&target=esp99", nil); status != 422 {
		t.Errorf("target=esp99: %d %v", status, out)
	}

	// rotate=true from a session needs the CSRF header, like any change.
	status, out := w.owner.do("GET", base+"?rotate=true", nil)
	if status != 200 {
		t.Fatalf("rotate=true with CSRF: %d %v", status, out)
	}
	rotated := bundleOf(t, out)
	if rotated.Secret == "" || rotated.Secret == created.Secret {
		t.Errorf("rotated bundle secret %q", rotated.Secret)
	}
	noCSRF := *w.owner
	noCSRF.csrf = ""
	status, out = noCSRF.do("GET", base+"?rotate=true", nil)
	wantError(t, "rotate without CSRF", status, out, 403)
	d := w.start(t, rotated)
	w.waitOnline(t, id, true)
	if err := mqttConnect(w.h.fleet.mqttAddr, id, created.Secret); err == nil {
		t.Error("secret from before rotate=true still accepted")
	}
	d.Stop()

	for _, q := range []string{"?format=xml", "?rotate=yes"} {
		status, out := w.owner.do("GET", base+q, nil)
		wantError(t, q, status, out, 422)
	}
}

// TestDeviceBadInput: malformed and invalid requests get the error shape and write nothing.
func TestDeviceBadInput(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	r, _ := w.create(t, map[string]any{"name": "target"})
	id := r["id"].(string)
	tn := tenantID(t, w.h.st, "alpha")
	count := func() (int64, int) {
		n, err := w.h.st.CountDevices(t.Context(), tn, store.DeviceFilter{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := w.h.st.ListCommands(t.Context(), tn, store.CommandFilter{}, store.ListOptions{Limit: store.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		return n, len(p.Items)
	}
	devicesBefore, commandsBefore := count()
	big := `{"name":"` + strings.Repeat("x", DefaultBodyLimit) + `"}`
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"malformed JSON", "POST", "/devices", `{"name":`, 400, ""},
		{"unknown field", "POST", "/devices", map[string]any{"name": "x", "colour": "red"}, 400, "unknown_field"},
		{"no name", "POST", "/devices", map[string]any{"name": "  "}, 422, "validation_failed"},
		{"bad tag", "POST", "/devices", map[string]any{"name": "x", "tags": []string{"no spaces"}}, 422, "validation_failed"},
		{"unknown project", "POST", "/devices", map[string]any{"name": "x", "project_id": "nope"}, 422, "validation_failed"},
		{"oversized body", "POST", "/devices", big, 413, "payload_too_large"},
		{"unknown command", "POST", "/commands", map[string]any{"name": "selfdestruct", "target": map[string]any{"device_ids": []string{id}}}, 422, "unknown_command"},
		{"config through the API", "POST", "/commands", map[string]any{"name": "config", "target": map[string]any{"device_ids": []string{id}}}, 422, "unknown_command"},
		{"no target", "POST", "/commands", map[string]any{"name": "restart", "target": map[string]any{}}, 422, "validation_failed"},
		{"two targets", "POST", "/commands", map[string]any{"name": "restart", "target": map[string]any{"tag": "a", "device_ids": []string{id}}}, 422, "validation_failed"},
		{"unknown device", "POST", "/commands", map[string]any{"name": "restart", "target": map[string]any{"device_ids": []string{id, "0000000000000000000000none"}}}, 422, "validation_failed"},
		{"tag without devices", "POST", "/commands", map[string]any{"name": "restart", "target": map[string]any{"tag": "nobody"}}, 422, "validation_failed"},
		{"debug without enabled", "POST", "/commands", map[string]any{"name": "debug", "target": map[string]any{"device_ids": []string{id}}}, 422, "validation_failed"},
		{"debug bad level", "POST", "/commands", map[string]any{"name": "debug", "params": map[string]any{"enabled": true, "level": "loud"}, "target": map[string]any{"device_ids": []string{id}}}, 422, "validation_failed"},
		{"unknown param", "POST", "/commands", map[string]any{"name": "restart", "params": map[string]any{"force": true}, "target": map[string]any{"device_ids": []string{id}}}, 422, "validation_failed"},
		{"ttl too long", "POST", "/commands", map[string]any{"name": "restart", "ttl_seconds": 99999999, "target": map[string]any{"device_ids": []string{id}}}, 422, "validation_failed"},
		{"patch bad name", "PATCH", "/devices/" + id, map[string]any{"name": strings.Repeat("n", 200)}, 422, "validation_failed"},
		{"unknown device id", "GET", "/devices/NOT-A-DEVICE", nil, 404, "not_found"},
		{"unknown command id", "GET", "/devices/" + id + "/commands/0000000000000000000000none", nil, 404, "not_found"},
	}
	for _, tc := range cases {
		status, resp := w.owner.do(tc.method, "/api/v1/tenants/alpha"+tc.path, tc.body)
		wantError(t, tc.name, status, resp, tc.status)
		if tc.code != "" && errCode(t, resp) != tc.code {
			t.Errorf("%s: code %s, want %s", tc.name, errCode(t, resp), tc.code)
		}
	}
	if d, c := count(); d != devicesBefore || c != commandsBefore {
		t.Errorf("bad requests wrote data: devices %d→%d, commands %d→%d", devicesBefore, d, commandsBefore, c)
	}

	// Tenant B's device is invisible from A, also as a command target.
	bID := tenantID(t, w.h.st, "beta")
	p, err := w.h.fleet.devices.Create(t.Context(), bID, fleet.DeviceInput{Name: "theirs"})
	if err != nil {
		t.Fatal(err)
	}
	status, resp := w.owner.do("POST", "/api/v1/tenants/alpha/commands", map[string]any{"name": "restart", "target": map[string]any{"device_ids": []string{p.Device.ID}}})
	wantError(t, "B's device as a target", status, resp, 422)
	for _, path := range []string{"/devices/" + p.Device.ID, "/devices/" + p.Device.ID + "/commands", "/devices/" + p.Device.ID + "/provisioning"} {
		status, resp := w.owner.do("GET", "/api/v1/tenants/alpha"+path, nil)
		wantError(t, "B's device "+path, status, resp, 404)
	}
	if pb, _ := w.h.st.ListCommands(t.Context(), bID, store.CommandFilter{}, store.ListOptions{}); len(pb.Items) != 0 {
		t.Errorf("tenant B got commands: %v", pb.Items)
	}
	// The events route refuses a client that cannot read a stream.
	status, resp = w.owner.do("GET", "/api/v1/tenants/alpha/events", nil)
	wantError(t, "events without Accept", status, resp, 406)
}

// TestMalformedUplinks: bad payloads from one device are counted by class and dropped, while
// another device's reports keep flowing.
func TestMalformedUplinks(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	rBad, bBad := w.create(t, map[string]any{"name": "noisy"})
	rGood, bGood := w.create(t, map[string]any{"name": "quiet"})
	bad, good := w.start(t, bBad), w.start(t, bGood)
	w.waitOnline(t, rBad["id"].(string), true)
	w.waitOnline(t, rGood["id"].(string), true)

	m := w.h.fleet.metrics.Invalid
	cases := []struct{ kind, class, payload string }{
		{protocol.KindMetadata, "malformed", `{"v":1,"firmware_version":`},
		{protocol.KindStatus, "unsupported_version", `{"v":99,"online":true}`},
		{protocol.KindAck, "invalid_field", `{"v":1,"id":"x y","result":"ok"}`},
		{protocol.KindConfigRequest, "too_large", `{"v":1,"config_version":1,"pad":"` + strings.Repeat("p", 400) + `"}`},
	}
	before := make([]float64, len(cases))
	for i, tc := range cases {
		before[i] = testutil.ToFloat64(m.WithLabelValues(tc.kind, tc.class))
		if err := bad.PublishRaw(tc.kind, []byte(tc.payload)); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range cases {
		poll.Wait(t, tc.class+" counted", func() bool { return testutil.ToFloat64(m.WithLabelValues(tc.kind, tc.class)) == before[i]+1 })
	}
	md, _ := protocol.EncodeMetadata(protocol.Metadata{FirmwareVersion: "v-2.0.0", ChipModel: "esp32", IDFVersion: "v5.2.1",
		MAC: "24:0a:c4:00:00:01", FreeHeap: 1, UptimeMS: 1, ResetReason: "poweron", ProtocolVersion: 1})
	if err := good.PublishRaw(protocol.KindMetadata, md); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, "good device's metadata", func() bool {
		got, _ := w.device(t, rGood["id"].(string))["metadata"].(map[string]any)
		return got != nil && got["firmware_version"] == "v-2.0.0"
	})
	if !bad.Connected() || w.device(t, rBad["id"].(string))["online"] != true {
		t.Error("the noisy device lost its session or presence")
	}
}

// TestEventStreamEndsAtShutdown: an open event stream does not hold the server's shutdown
// until its deadline.
func TestEventStreamEndsAtShutdown(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", w.owner.base+"/api/v1/tenants/alpha/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{Jar: w.owner.http.Jar}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		defer resp.Body.Close()
		_, _ = bufio.NewReader(resp.Body).WriteTo(new(bytes.Buffer))
	}()
	poll.Wait(t, "subscription", func() bool { return w.h.fleet.hub.Subscribers() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := w.h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with an open stream: %v", err)
	}
	<-ended
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %s", d)
	}
}
