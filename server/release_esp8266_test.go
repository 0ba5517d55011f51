package server

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/cmd/espadmin/sim"
	"github.com/espadmin/espadmin/server/ota/otatest"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// TestESP8266ReleaseRollout: an ESP8266_RTOS_SDK image is validated, fixes the project's chip,
// and is rolled out to an ESP8266 device (the agent's small profile, simulated); an ESP32
// image is then refused for that project with a message naming both chips.
func TestESP8266ReleaseRollout(t *testing.T) {
	t.Parallel()
	w := newOTAWorld(t)
	_, b := w.create(t, map[string]any{"name": "meter", "project_id": w.project})
	d, err := sim.NewDevice(sim.Options{Bundle: b, BrokerURL: "tcp://" + w.h.fleet.mqttAddr, Firmware: "v-1.0.0",
		ReconnectDelay: 50e6, Profile: sim.ProfileESP8266})
	if err != nil {
		t.Fatal(err)
	}
	d.Start(t.Context())
	t.Cleanup(d.Stop)
	poll.Wait(t, "device online", d.Connected)

	img := otatest.ESP8266Image(otatest.ESP8266Options{Version: "v-1.1.0", Size: 300 << 10})
	status, resp := w.owner.upload(w.releasesPath()+"?version=v-1.1.0&rollout=all", "application/octet-stream", bytes.NewReader(img))
	if status != http.StatusCreated {
		t.Fatalf("upload: %d %v", status, resp)
	}
	if im := resp["image"].(map[string]any); im["chip"] != "esp8266" || im["idf_version"] != "v3.4" || resp["size"] != float64(len(img)) {
		t.Errorf("release: %v", resp)
	}
	id := resp["rollout"].(map[string]any)["id"].(string)
	poll.Wait(t, "rollout completed", func() bool { return w.rolloutState(t, id)["state"] == "completed" })
	if d.Firmware() != "v-1.1.0" {
		t.Errorf("device runs %s", d.Firmware())
	}
	if totals := w.rolloutState(t, id)["totals"].(map[string]any); totals["succeeded"] != float64(1) {
		t.Errorf("totals %v", totals)
	}

	esp32 := otatest.Image(otatest.ImageOptions{Version: "v-1.2.0", ChipID: 0x0009})
	status, resp = w.owner.upload(w.releasesPath()+"?version=v-1.2.0", "application/octet-stream", bytes.NewReader(esp32))
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("ESP32 image in an ESP8266 project: %d %v", status, resp)
	}
	if msg := errCode(t, resp); !strings.Contains(resp["error"].(map[string]any)["message"].(string), "built for esp32s3 but this project's releases are for esp8266") {
		t.Errorf("refusal does not name the chips: %s %v", msg, resp)
	}
}
