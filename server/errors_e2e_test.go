package server

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/espadmin/espadmin/broker/brokertest"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/cmd/espadmin/sim"
	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/server/devicerrors/bugsnagtest"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// e2eBugsnagKey is the tenant's Bugsnag API key in the end-to-end error tests.
const e2eBugsnagKey = "00112233445566778899aabbccddeeff"

// errorRig is the whole error path on the harness's store: the real embedded broker on
// 127.0.0.1:0, ingestion with the device error service as its ErrorReporter (as serve.go
// wires it), and the API of the harness server.
type errorRig struct {
	h        *harness
	reg      *prometheus.Registry
	addr     string
	errs     *devicerrors.Service
	owner    *apiClient
	tenantID string
}

func newErrorRig(t *testing.T, eo devicerrors.Options) *errorRig {
	t.Helper()
	h := newHarness(t)
	h.createUser(t, "owner@alpha.test", "alpha", store.RoleOwner)
	r := &errorRig{h: h, reg: prometheus.NewRegistry(), tenantID: tenantID(t, h.st, "alpha")}
	r.owner = h.login(t, "owner@alpha.test")

	b := brokertest.Start(t, brokertest.Options{Devices: h.st, Registerer: r.reg})
	r.addr = b.Addr("tcp")
	metrics := fleet.NewMetrics(r.reg)
	hub := fleet.NewHub(func(int) {})
	commands := fleet.NewCommands(fleet.CommandsOptions{Store: h.st, Bus: b, Root: protocol.DefaultRoot, Hub: hub, Metrics: metrics})
	eo.Store, eo.Keyring, eo.Registerer, eo.Symbols = h.st, h.keyring, r.reg, h.fleet.ota.svc
	// Core dumps are asked for through this rig's commands (its broker reaches the devices)
	// and uploaded to the harness server, which checks the same key.
	eo.CoreDumps = devicerrors.NewCoreDumps(devicerrors.CoreDumpOptions{
		Blobs: h.fleet.ota.blobs, Commands: commands, Key: testCoreDumpKey, PublicURL: h.url,
	})
	r.errs = devicerrors.New(eo)
	ingest := fleet.NewIngest(fleet.IngestOptions{
		Bus: b, Store: h.st, Commands: commands, Hub: hub, Metrics: metrics, Root: protocol.DefaultRoot,
		Workers: 2, PresenceDelay: 200 * time.Millisecond, TouchInterval: 50 * time.Millisecond, Errors: r.errs,
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = r.errs.Run(ctx) }()
	go func() {
		defer wg.Done()
		if err := ingest.Run(ctx); err != nil {
			t.Errorf("ingest: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return r
}

// setBugsnag points the tenant's Bugsnag settings at endpoint through the API.
func (r *errorRig) setBugsnag(t *testing.T, endpoint string) {
	t.Helper()
	st, resp := r.owner.do("PUT", "/api/v1/tenants/alpha/settings/bugsnag",
		map[string]any{"api_key": e2eBugsnagKey, "notify_url": endpoint, "release_stage": "field"})
	if st != http.StatusOK || resp["api_key_set"] != true || resp["notify_url"] != endpoint {
		t.Fatalf("PUT settings/bugsnag: %d %v", st, resp)
	}
}

// device provisions a device named name and runs it as a simulated ESP32 on firmware,
// returning once ingestion has stored its boot metadata.
func (r *errorRig) device(t *testing.T, name, firmware string) *sim.Device {
	t.Helper()
	return r.deviceIn(t, fleet.DeviceInput{Name: name}, firmware)
}

// deviceIn is device with the device's project and tags.
func (r *errorRig) deviceIn(t *testing.T, in fleet.DeviceInput, firmware string) *sim.Device {
	t.Helper()
	name := in.Name
	p, err := r.h.fleet.devices.Create(t.Context(), r.tenantID, in)
	if err != nil {
		t.Fatal(err)
	}
	d, err := sim.NewDevice(sim.Options{Bundle: p.Bundle, BrokerURL: "tcp://" + r.addr, Firmware: firmware, ReconnectDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background())
	t.Cleanup(d.Stop)
	poll.Wait(t, name+" metadata stored", func() bool {
		dev, err := r.h.st.Device(t.Context(), r.tenantID, d.ID())
		return err == nil && dev.Metadata.FirmwareVersion == firmware
	})
	return d
}

// groups lists the tenant's error groups through the API.
func (r *errorRig) groups(t *testing.T, query string) []map[string]any {
	t.Helper()
	st, resp := r.owner.do("GET", "/api/v1/tenants/alpha/errors"+query, nil)
	if st != http.StatusOK {
		t.Fatalf("GET errors%s: %d %v", query, st, resp)
	}
	return items(t, resp)
}

// groupCount is the count of the group with message msg, 0 when there is none.
func (r *errorRig) groupCount(t *testing.T, msg string) int64 {
	t.Helper()
	for _, g := range r.groups(t, "?limit=100") {
		if g["message"] == msg {
			return int64(g["count"].(float64))
		}
	}
	return 0
}

// e2eReport is a crash report as the firmware sends it at the boot after a panic. Crash
// reports are grouped by their top frames, so each message crashes at its own address.
func e2eReport(firmware, message string) protocol.ErrorReport {
	h := fnv.New32a()
	h.Write([]byte(message))
	return protocol.ErrorReport{
		Message: message, Type: "panic", Code: "0x1c", Severity: protocol.SeverityError,
		Backtrace: []protocol.Frame{
			{PC: fmt.Sprintf("0x400d%04x", h.Sum32()&0xfffc), SP: "0x3ffb5e30", Func: "sensor_read", File: "main/sensor.c", Line: 87},
			{PC: "0x400d3c4d"},
		},
		ResetReason: "panic", FirmwareVersion: firmware, UptimeMS: 123456, FreeHeap: 91234,
		CoreDump: &protocol.CoreDump{Task: "sensor", Cause: "LoadProhibited", Summary: "PC 0x400d1a2b"},
	}
}

// publishReport sends an error report on d's uplink through the broker.
func publishReport(t *testing.T, d *sim.Device, r protocol.ErrorReport) {
	t.Helper()
	payload, err := protocol.EncodeErrorReport(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.PublishRaw(protocol.KindError, payload); err != nil {
		t.Fatal(err)
	}
}

// within polls cond until it holds, failing after d: for "promptly" assertions, tighter
// than waitFor's deadline.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, d, what, cond)
}

// gathered returns the value of the counter or gauge name whose labels include want
// (summed over the series that match), read from reg as /metrics would serve it.
func gathered(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			} else if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
		}
	}
	return sum
}

// TestErrorsEndToEnd: a simulated device's error reports travel device → embedded
// broker → ingestion → devicerrors → the Bugsnag endpoint set through the API, which
// receives bugsnag-go's real payload: the tenant's key, the firmware as app version, the
// device as user and hostname, its stored boot metadata and the report as tabs, and the
// backtrace as stack frames. The group is listed by the API with its count.
func TestErrorsEndToEnd(t *testing.T) {
	t.Parallel()
	bs := bugsnagtest.New(t)
	r := newErrorRig(t, devicerrors.Options{Backoff: 20 * time.Millisecond})
	r.setBugsnag(t, bs.URL+"/notify")
	d := r.device(t, "boiler", "v-2.3.4")

	for range 3 {
		publishReport(t, d, e2eReport("v-2.3.4", "LoadProhibited"))
	}
	poll.Wait(t, "three notifications", func() bool { return len(bs.Received()) == 3 })
	p := bs.Received()[0]
	if hdr := bs.Header(0).Get("Bugsnag-Api-Key"); p.APIKey != e2eBugsnagKey || len(p.Events) != 1 || hdr != e2eBugsnagKey {
		t.Fatalf("key %q header %q events %d", p.APIKey, hdr, len(p.Events))
	}
	ev := p.Events[0]
	if ev.App.Version != "v-2.3.4" || ev.App.ReleaseStage != "field" || ev.App.Type != "esp32" {
		t.Errorf("app %+v", ev.App)
	}
	if ev.User.ID != d.ID() || ev.User.Name != "boiler" || ev.Device.Hostname != d.ID() {
		t.Errorf("user %+v, hostname %q; want device %s", ev.User, ev.Device.Hostname, d.ID())
	}
	if ev.Severity != "error" || ev.Context != "panic" || len(ev.Exceptions) != 1 {
		t.Fatalf("severity %q context %q exceptions %+v", ev.Severity, ev.Context, ev.Exceptions)
	}
	ex := ev.Exceptions[0]
	if ex.ErrorClass != "panic" || ex.Message != "LoadProhibited" {
		t.Errorf("exception %s: %s", ex.ErrorClass, ex.Message)
	}
	if len(ex.Stacktrace) != 2 || ex.Stacktrace[0].Method != "sensor_read" || ex.Stacktrace[0].File != "main/sensor.c" ||
		ex.Stacktrace[0].LineNumber != 87 || ex.Stacktrace[1].Method != "0x400d3c4d" || ex.Stacktrace[1].File != "0x400d3c4d" {
		t.Errorf("stack %+v", ex.Stacktrace)
	}
	// The metadata tab is what the simulated device sent at boot and ingestion stored.
	dev, err := r.h.st.Device(t.Context(), r.tenantID, d.ID())
	if err != nil {
		t.Fatal(err)
	}
	md := ev.Metadata
	for _, c := range []struct {
		tab, key string
		want     any
	}{
		{"device", "id", d.ID()},
		{"device", "name", "boiler"},
		{"metadata", "firmware_version", "v-2.3.4"},
		{"metadata", "chip_model", sim.DefaultChip},
		{"metadata", "idf_version", sim.DefaultIDFVersion},
		{"metadata", "mac", dev.Metadata.MAC},
		{"metadata", "ip", dev.Metadata.IP},
		{"error", "type", "panic"},
		{"error", "code", "0x1c"},
		{"error", "reset_reason", "panic"},
		{"core_dump", "task", "sensor"},
		{"core_dump", "cause", "LoadProhibited"},
	} {
		if got := md[c.tab][c.key]; got != c.want {
			t.Errorf("metaData.%s.%s = %v, want %v", c.tab, c.key, got, c.want)
		}
	}
	if dev.Metadata.MAC == "" {
		t.Errorf("device metadata not stored: %+v", dev.Metadata)
	}

	groups := r.groups(t, "")
	if len(groups) != 1 {
		t.Fatalf("groups %v", groups)
	}
	g := groups[0]
	if g["count"] != 3.0 || g["type"] != "panic" || g["message"] != "LoadProhibited" || g["firmware_version"] != "v-2.3.4" || g["resolved"] != false {
		t.Errorf("group %v", g)
	}
	if devErrs := r.get(t, "/api/v1/tenants/alpha/devices/"+d.ID()+"/errors"); len(items(t, devErrs)) != 1 {
		t.Errorf("device errors %v", devErrs)
	}
	detail := r.get(t, fmt.Sprintf("/api/v1/tenants/alpha/errors/%s", g["id"]))
	if devs := detail["devices"].([]any); len(devs) != 1 || devs[0].(map[string]any)["device_id"] != d.ID() || devs[0].(map[string]any)["count"] != 3.0 {
		t.Errorf("group devices %v", detail["devices"])
	}
	// Counted as sent once the endpoint's response is back, which may follow its record.
	poll.Wait(t, "three notifications counted as sent", func() bool {
		return gathered(t, r.reg, "espadmin_bugsnag_forward_total", map[string]string{"outcome": "sent"}) == 3
	})
}

func (r *errorRig) get(t *testing.T, path string) map[string]any {
	t.Helper()
	st, resp := r.owner.do("GET", path, nil)
	if st != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, st, resp)
	}
	return resp
}

// TestErrorsBugsnagHangs: with the Bugsnag endpoint hanging (every request held
// open, both workers stuck in it), the device's next reports and a metadata update are
// still stored within a second or two: ingestion only stores and enqueues. Once the
// endpoint answers again, the held reports are delivered.
func TestErrorsBugsnagHangs(t *testing.T) {
	t.Parallel()
	bs := bugsnagtest.New(t)
	bs.Hang()
	r := newErrorRig(t, devicerrors.Options{Timeout: time.Minute, Workers: 1, Attempts: 1})
	r.setBugsnag(t, bs.URL)
	d := r.device(t, "pump", "v-1.4.0")

	publishReport(t, d, e2eReport("v-1.4.0", "StoreProhibited"))
	poll.Wait(t, "the first notification to hang", func() bool { return bs.Requests() == 1 })

	start := time.Now()
	for range 4 {
		publishReport(t, d, e2eReport("v-1.4.0", "StoreProhibited"))
	}
	md := protocol.Metadata{FirmwareVersion: "v-1.4.0", ChipModel: sim.DefaultChip, ChipRevision: 2, IDFVersion: sim.DefaultIDFVersion,
		MAC: "24:0a:c4:00:00:01", FreeHeap: 4242, UptimeMS: 5000, ResetReason: "panic", ProtocolVersion: protocol.Version}
	_, payload, err := protocol.EncodeUplink(md)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.PublishRaw(protocol.KindMetadata, payload); err != nil {
		t.Fatal(err)
	}
	within(t, 2*time.Second, "reports stored while Bugsnag hangs", func() bool { return r.groupCount(t, "StoreProhibited") == 5 })
	within(t, 2*time.Second, "metadata stored while Bugsnag hangs", func() bool {
		dev, err := r.h.st.Device(t.Context(), r.tenantID, d.ID())
		return err == nil && dev.Metadata.FreeHeap == 4242
	})
	t.Logf("4 reports and metadata stored %v after the hang began", time.Since(start).Round(time.Millisecond))
	if n := len(bs.Received()); n != 0 {
		t.Fatalf("%d notifications completed while the endpoint hangs", n)
	}

	bs.Release()
	poll.Wait(t, "held reports delivered", func() bool { return len(bs.Received()) == 5 })
	// The endpoint records a notification before its response reaches the forwarder, which
	// counts it as sent only then.
	poll.Wait(t, "five notifications counted as sent", func() bool {
		return gathered(t, r.reg, "espadmin_bugsnag_forward_total", map[string]string{"outcome": "sent"}) == 5
	})
}

// TestErrorsBadInputAndFlood: one device sends a malformed, an oversized and an
// invalid report, then floods 200 valid ones; another device's reports are meanwhile all
// stored and forwarded. Every bad report is counted by ingestion and dropped; every flood
// report is accounted for — stored, or counted as dropped by the broker's or the error
// service's per-device limit; forwarding to Bugsnag stops at the forward limit.
func TestErrorsBadInputAndFlood(t *testing.T) {
	t.Parallel()
	bs := bugsnagtest.New(t)
	r := newErrorRig(t, devicerrors.Options{})
	r.setBugsnag(t, bs.URL)
	bad := r.device(t, "flood", "v-1.0.0")
	good := r.device(t, "calm", "v-1.0.0")

	huge := e2eReport("v-1.0.0", strings.Repeat("x", 100))
	huge.CoreDump.Summary = strings.Repeat("y", 20<<10) // over protocol.MaxErrorSize once encoded
	hugePayload, _ := json.Marshal(huge)
	inputs := []struct {
		name, class string
		payload     []byte
	}{
		{"malformed", "malformed", []byte(`{"message": "half`)},
		{"oversized", "too_large", hugePayload},
		{"missing type", "invalid_field", []byte(`{"v":1,"message":"m","firmware_version":"v-1.0.0"}`)},
	}
	for _, in := range inputs {
		if err := bad.PublishRaw(protocol.KindError, in.payload); err != nil {
			t.Fatalf("%s: %v", in.name, err)
		}
	}
	for _, in := range inputs {
		poll.Wait(t, in.name+" counted", func() bool {
			return gathered(t, r.reg, "espadmin_ingest_invalid_total", map[string]string{"kind": "error", "class": in.class}) == 1
		})
	}

	const flood = 200
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 5 {
			payload, err := protocol.EncodeErrorReport(e2eReport("v-1.0.0", fmt.Sprintf("calm %d", i)))
			if err == nil {
				err = good.PublishRaw(protocol.KindError, payload)
			}
			if err != nil {
				t.Errorf("calm device: %v", err)
			}
		}
	}()
	for range flood {
		publishReport(t, bad, e2eReport("v-1.0.0", "looping"))
	}
	wg.Wait()

	var stored, limited, brokerDropped float64
	poll.Wait(t, "every flood report accounted for", func() bool {
		stored = float64(r.groupCount(t, "looping"))
		limited = gathered(t, r.reg, "espadmin_device_errors_total", map[string]string{"outcome": "rate_limited"})
		brokerDropped = gathered(t, r.reg, "espadmin_mqtt_messages_dropped_total", map[string]string{"reason": "rate_limited"})
		return stored+limited+brokerDropped == flood
	})
	t.Logf("flood of %d: %v stored, %v dropped by the error service, %v by the broker", flood, stored, limited, brokerDropped)
	if stored > devicerrors.DefaultStoreBurst+5 || limited+brokerDropped == 0 {
		t.Errorf("flood not limited: %v stored", stored)
	}
	for i := range 5 {
		msg := fmt.Sprintf("calm %d", i)
		poll.Wait(t, msg+" stored", func() bool { return r.groupCount(t, msg) == 1 })
	}
	if n := len(r.groups(t, "?limit=100")); n != 6 {
		t.Errorf("%d groups, want 6 (the flood's and the calm device's five)", n)
	}

	// Forwarding: the calm device's five, and the flood's up to the forward burst.
	poll.Wait(t, "forwarding settles", func() bool {
		return gathered(t, r.reg, "espadmin_bugsnag_forward_total", map[string]string{"outcome": "sent"}) ==
			gathered(t, r.reg, "espadmin_bugsnag_forward_total", map[string]string{"outcome": "queued"})
	})
	perDevice := map[string]int{}
	for _, p := range bs.Received() {
		perDevice[p.Events[0].User.ID]++
	}
	if perDevice[good.ID()] != 5 || perDevice[bad.ID()] > devicerrors.DefaultForwardBurst+2 {
		t.Errorf("forwarded per device %v; want 5 for %s and at most the burst for %s", perDevice, good.ID(), bad.ID())
	}
	if got := gathered(t, r.reg, "espadmin_bugsnag_forward_total", map[string]string{"outcome": "rate_limited"}); got == 0 {
		t.Errorf("no forward rate_limited counted")
	}
	if !good.Connected() || !bad.Connected() {
		t.Errorf("a device lost its connection: calm %v, flood %v", good.Connected(), bad.Connected())
	}
}
