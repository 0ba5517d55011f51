package server

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/cmd/espadmin/sim"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// TestConfigRespectsDeviceLimits: a device built with the agent's small-memory profile
// declares its limits in its metadata; a config it would refuse is refused when it is written
// (422 naming the device's limit, nothing stored), on the device and on its project, while a
// device with the default profile takes the same config, and a config within the limit
// reaches the small device.
func TestConfigRespectsDeviceLimits(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	h := w.h
	_, small := w.create(t, map[string]any{"name": "esp8266"})
	_, big := w.create(t, map[string]any{"name": "esp32"})
	project := configProject(t, h, small.DeviceID, big.DeviceID)
	d, err := sim.NewDevice(sim.Options{Bundle: small, BrokerURL: "tcp://" + h.fleet.mqttAddr, Profile: sim.ProfileESP8266})
	if err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background())
	t.Cleanup(d.Stop)
	base := "/api/v1/tenants/alpha"
	poll.Wait(t, "the small device's limits in its metadata", func() bool {
		m, _ := w.device(t, small.DeviceID)["metadata"].(map[string]any)
		l, _ := m["limits"].(map[string]any)
		return l["command_bytes"] == float64(4608) && l["config_bytes"] == float64(4096)
	})

	// 2 × 2,100 bytes of strings: fits a 16 KiB command, not the small device's 4,096 bytes
	over := map[string]any{"entries": []map[string]any{
		{"key": "a", "type": "string", "value": strings.Repeat("a", 2100), "version": 0},
		{"key": "b", "type": "string", "value": strings.Repeat("b", 2100), "version": 0},
	}}
	for _, path := range []string{"/devices/" + small.DeviceID + "/config", "/projects/" + project + "/config"} {
		status, resp := w.owner.do("PUT", base+path, over)
		if status != http.StatusUnprocessableEntity {
			t.Fatalf("PUT %s over the device's limit: %d %v", path, status, resp)
		}
		errCode(t, resp)
		fields, _ := resp["error"].(map[string]any)["fields"].(map[string]any)
		msg, _ := fields["entries"].(string)
		if !strings.Contains(msg, small.DeviceID) || !strings.Contains(msg, "at most 4096 bytes") {
			t.Errorf("PUT %s: the error does not name the device and its limit: %v", path, resp)
		}
		if list, _ := w.get(t, base+path)["entries"].([]any); len(list) != 0 {
			t.Errorf("PUT %s refused but stored %v", path, list)
		}
	}
	// the device with the default profile takes it
	if status, resp := w.owner.do("PUT", base+"/devices/"+big.DeviceID+"/config", over); status != http.StatusOK {
		t.Fatalf("default profile refused a config within 16 KiB: %d %v", status, resp)
	}
	// within the limit: stored and applied by the small device
	within := map[string]any{"entries": []map[string]any{
		{"key": "a", "type": "string", "value": strings.Repeat("a", 2000), "version": 0},
		{"key": "b", "type": "string", "value": strings.Repeat("b", 2000), "version": 0},
	}}
	if status, resp := w.owner.do("PUT", base+"/devices/"+small.DeviceID+"/config", within); status != http.StatusOK {
		t.Fatalf("config within the limit: %d %v", status, resp)
	}
	poll.Wait(t, "the config reaches the small device", func() bool {
		return string(d.Config()["b"]) == `"`+strings.Repeat("b", 2000)+`"`
	})
}
