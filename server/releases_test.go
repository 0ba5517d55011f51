package server

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/cmd/espadmin/sim"
	"github.com/espadmin/espadmin/server/ota/otatest"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// otaWorld is a tenant with a signed project and devices linked to it.
type otaWorld struct {
	*deviceWorld
	project string
}

func newOTAWorld(t *testing.T, opts ...harnessOption) *otaWorld {
	t.Helper()
	w := newDeviceWorld(t, opts...)
	status, resp := w.owner.do("POST", "/api/v1/tenants/alpha/projects", map[string]any{"name": "thermostat"})
	if status != http.StatusCreated {
		t.Fatalf("create project: %d %v", status, resp)
	}
	if sg := resp["signing"].(map[string]any); sg["enabled"] != true || sg["public_key"] == "" {
		t.Fatalf("signing: %v", sg)
	}
	return &otaWorld{deviceWorld: w, project: resp["id"].(string)}
}

// device creates a device in the project and runs it with firmware v-1.0.0.
func (w *otaWorld) deviceRunning(t *testing.T) *sim.Device {
	t.Helper()
	_, b := w.create(t, map[string]any{"name": "d", "project_id": w.project})
	if b.OTAPublicKey == "" {
		t.Fatal("bundle without the project's public key")
	}
	d, err := sim.NewDevice(sim.Options{Bundle: b, BrokerURL: "tcp://" + w.h.fleet.mqttAddr, Firmware: "v-1.0.0", ReconnectDelay: 50e6})
	if err != nil {
		t.Fatal(err)
	}
	d.Start(t.Context())
	t.Cleanup(d.Stop)
	poll.Wait(t, "device online", d.Connected)
	return d
}

func (w *otaWorld) releasesPath() string {
	return "/api/v1/tenants/alpha/projects/" + w.project + "/releases"
}

func (w *otaWorld) rolloutState(t *testing.T, id string) map[string]any {
	t.Helper()
	return w.get(t, "/api/v1/tenants/alpha/rollouts/"+id)
}

func TestReleaseRolloutEndToEnd(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"local", "s3"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var opts []harnessOption
			if backend == "s3" {
				opts = append(opts, withS3Firmware())
			}
			w := newOTAWorld(t, opts...)
			devs := []*sim.Device{w.deviceRunning(t), w.deviceRunning(t)}
			img := otatest.Image(otatest.ImageOptions{Version: "v-1.1.0", ChipID: 0x0009, Size: 200 << 10})
			status, resp := w.owner.upload(w.releasesPath()+"?version=v-1.1.0&notes=fix&rollout=all", "application/octet-stream", bytes.NewReader(img))
			if status != http.StatusCreated {
				t.Fatalf("upload: %d %v", status, resp)
			}
			if resp["image"].(map[string]any)["chip"] != "esp32s3" || resp["size"] != float64(len(img)) {
				t.Errorf("release: %v", resp)
			}
			ro := resp["rollout"].(map[string]any)
			id := ro["id"].(string)
			poll.Wait(t, "rollout completed", func() bool {
				return w.rolloutState(t, id)["state"] == "completed"
			})
			for _, d := range devs {
				if d.Firmware() != "v-1.1.0" {
					t.Errorf("device %s runs %s", d.ID(), d.Firmware())
				}
			}
			totals := w.rolloutState(t, id)["totals"].(map[string]any)
			if totals["succeeded"] != float64(2) || totals["failed"] != float64(0) {
				t.Errorf("totals %v", totals)
			}
			hist := w.get(t, "/api/v1/tenants/alpha/devices/"+devs[0].ID()+"/updates")
			if items := hist["items"].([]any); len(items) != 1 || items[0].(map[string]any)["state"] != "succeeded" {
				t.Errorf("history %v", hist)
			}
			// A second rollout of the same version skips both devices and completes.
			status, resp = w.owner.do("POST", "/api/v1/tenants/alpha/rollouts", map[string]any{
				"release_id": ro["release_id"], "target": map[string]any{"kind": "all"}})
			if status != http.StatusCreated || resp["state"] != "completed" || resp["totals"].(map[string]any)["skipped"] != float64(2) {
				t.Errorf("rollout of the running version: %d %v", status, resp)
			}
		})
	}
}

func TestCorruptedImageFailsAndStagedRolloutPauses(t *testing.T) {
	t.Parallel()
	w := newOTAWorld(t)
	var devs []*sim.Device
	for range 4 {
		devs = append(devs, w.deviceRunning(t))
	}
	img := otatest.Image(otatest.ImageOptions{Version: "v-2.0.0"})
	status, resp := w.owner.upload(w.releasesPath()+"?version=v-2.0.0", "application/octet-stream", bytes.NewReader(img))
	if status != http.StatusCreated {
		t.Fatalf("upload: %d %v", status, resp)
	}
	// Serve other bytes than the release's hash: overwrite the stored binary.
	path := filepath.Join(w.h.fleet.ota.dir, "tenants", tenantID(t, w.h.st, "alpha"), "releases", resp["id"].(string)+".bin")
	bad := append([]byte(nil), img...)
	bad[100] ^= 0xFF
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	status, ro := w.owner.do("POST", "/api/v1/tenants/alpha/rollouts", map[string]any{
		"release_id": resp["id"], "target": map[string]any{"kind": "all"}, "stages": []int{25, 100}, "failure_threshold": 0.1})
	if status != http.StatusCreated {
		t.Fatalf("rollout: %d %v", status, ro)
	}
	id := ro["id"].(string)
	poll.Wait(t, "rollout paused", func() bool { return w.rolloutState(t, id)["state"] == "paused" })
	got := w.rolloutState(t, id)
	if got["current_stage"] != float64(0) || got["pause_reason"] == "" {
		t.Errorf("paused rollout: %v", got)
	}
	page := w.get(t, "/api/v1/tenants/alpha/rollouts/"+id+"/devices")
	items := page["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["state"] != "failed" || items[0].(map[string]any)["reason"] != "hash_mismatch" {
		t.Fatalf("devices: %v", items)
	}
	for _, d := range devs {
		if d.Firmware() != "v-1.0.0" {
			t.Errorf("device %s runs %s after a corrupt image", d.ID(), d.Firmware())
		}
	}
	// Resume is allowed; abort ends it.
	if status, resp := w.owner.do("POST", "/api/v1/tenants/alpha/rollouts/"+id+"/abort", nil); status != 200 || resp["state"] != "aborted" {
		t.Errorf("abort: %d %v", status, resp)
	}
	if status, _ := w.owner.do("POST", "/api/v1/tenants/alpha/rollouts/"+id+"/resume", nil); status != http.StatusConflict {
		t.Errorf("resume after abort: %d", status)
	}
}

func TestReleaseUploadRefusals(t *testing.T) {
	t.Parallel()
	w := newOTAWorld(t)
	good := otatest.Image(otatest.ImageOptions{Version: "v-1.0.0"})
	up := func(query string, body []byte) (int, map[string]any) {
		return w.owner.upload(w.releasesPath()+query, "application/octet-stream", bytes.NewReader(body))
	}
	if status, resp := up("?version=v-1.0.0", good); status != http.StatusCreated {
		t.Fatalf("first upload: %d %v", status, resp)
	}
	tooBig := otatest.Image(otatest.ImageOptions{Version: "v-1.0.9", Size: 3 << 20})
	for _, tc := range []struct {
		name, query string
		body        []byte
		status      int
	}{
		{"malformed version", "?version=1.2.3", good, 422},
		{"duplicate version", "?version=v-1.0.0", good, 409},
		{"not an image", "?version=v-1.0.1", []byte("#!/bin/sh\necho not firmware\n"), 422},
		{"truncated", "?version=v-1.0.2", good[:len(good)-40], 422},
		{"wrong chip", "?version=v-1.0.3", otatest.Image(otatest.ImageOptions{Version: "v-1.0.3", ChipID: 0x0005}), 422},
		{"oversized", "?version=v-1.0.9", tooBig, 413},
	} {
		status, resp := up(tc.query, tc.body)
		if status != tc.status {
			t.Errorf("%s: %d %v, want %d", tc.name, status, resp, tc.status)
			continue
		}
		errCode(t, resp)
	}
	list := w.get(t, w.releasesPath())
	if items := list["items"].([]any); len(items) != 1 {
		t.Errorf("releases listed: %v", items)
	}
	if keys := w.h.fleet.ota.blobKeys(t); len(keys) != 1 {
		t.Errorf("blob storage holds %v, want only the first release", keys)
	}
	// A version mismatch is a warning by default.
	status, resp := up("?version=v-3.0.0", good)
	if status != http.StatusCreated || len(resp["warnings"].([]any)) != 1 {
		t.Errorf("mismatch: %d %v", status, resp)
	}
	// Signed download URL: works, honours Range, refuses a tampered signature.
	dl := w.get(t, w.releasesPath()+"/"+resp["id"].(string)+"/download")
	req, _ := http.NewRequestWithContext(t.Context(), "GET", dl["url"].(string), nil)
	req.Header.Set("Range", "bytes=10-19")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	_, _ = got.ReadFrom(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusPartialContent || !bytes.Equal(got.Bytes(), good[10:20]) {
		t.Errorf("range: %d %x", r.StatusCode, got.Bytes())
	}
	r, err = http.Get(dl["url"].(string) + "x")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode < 400 {
		t.Errorf("tampered URL served: %d", r.StatusCode)
	}
}

// TestRolloutListNewestFirstAndStageWaits: the rollout list pages newest first (the rollout
// just started is on the first page however many came before); a rollout carries its soak
// time and approval; a release keeps its upload's warnings.
func TestRolloutListNewestFirstAndStageWaits(t *testing.T) {
	t.Parallel()
	w := newOTAWorld(t)
	w.create(t, map[string]any{"name": "offline", "project_id": w.project}) // never connects: rollouts stay active
	// The image says v-0.9.0 but is uploaded as v-1.0.0: stored with a warning.
	img := otatest.Image(otatest.ImageOptions{Version: "v-0.9.0"})
	status, rel := w.owner.upload(w.releasesPath()+"?version=v-1.0.0", "application/octet-stream", bytes.NewReader(img))
	if status != http.StatusCreated || len(rel["warnings"].([]any)) != 1 {
		t.Fatalf("upload: %d %v", status, rel)
	}
	list := w.get(t, w.releasesPath())["items"].([]any)
	if ws := list[0].(map[string]any)["warnings"].([]any); len(ws) != 1 || !strings.Contains(ws[0].(string), `"v-0.9.0"`) {
		t.Errorf("listed release warnings = %v, want the version mismatch", ws)
	}

	// The preview counts without starting anything.
	status, pv := w.owner.do("POST", "/api/v1/tenants/alpha/rollouts/preview", map[string]any{
		"release_id": rel["id"], "target": map[string]any{"kind": "all"}, "stages": []int{50, 100}})
	if status != http.StatusOK || pv["devices"] != float64(1) || pv["first_stage"] != float64(1) || pv["version"] != "v-1.0.0" {
		t.Errorf("preview: %d %v", status, pv)
	}
	status, pv = w.owner.do("POST", "/api/v1/tenants/alpha/rollouts/preview", map[string]any{
		"release_id": rel["id"], "target": map[string]any{"kind": "tag", "tag": ""}})
	if status != http.StatusUnprocessableEntity {
		t.Errorf("preview with an empty tag: %d %v, want 422", status, pv)
	}
	var ids []string
	for i := range 3 {
		body := map[string]any{"release_id": rel["id"], "target": map[string]any{"kind": "all"}}
		if i == 2 {
			body["stages"] = []int{50, 100}
			body["stage_soak_seconds"] = 600
			body["require_approval"] = true
		}
		status, ro := w.owner.do("POST", "/api/v1/tenants/alpha/rollouts", body)
		if status != http.StatusCreated {
			t.Fatalf("rollout %d: %d %v", i, status, ro)
		}
		ids = append(ids, ro["id"].(string))
		if i == 2 && (ro["stage_soak_seconds"] != float64(600) || ro["require_approval"] != true || ro["failure_threshold"] == nil) {
			t.Errorf("rollout with waits: %v", ro)
		}
	}
	first := w.get(t, "/api/v1/tenants/alpha/rollouts?project="+w.project+"&limit=2")
	items := first["items"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["id"] != ids[2] || items[1].(map[string]any)["id"] != ids[1] || first["next_cursor"] == "" {
		t.Fatalf("first page = %v, want the two newest, newest first, and a cursor", first)
	}
	second := w.get(t, "/api/v1/tenants/alpha/rollouts?project="+w.project+"&limit=2&cursor="+first["next_cursor"].(string))
	if items := second["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != ids[0] || second["next_cursor"] != "" {
		t.Errorf("second page = %v, want the oldest and no cursor", second)
	}

	// Bad input: a soak out of range is a field error, and nothing is started.
	for _, soak := range []int{-1, 604801} {
		status, resp := w.owner.do("POST", "/api/v1/tenants/alpha/rollouts", map[string]any{
			"release_id": rel["id"], "target": map[string]any{"kind": "all"}, "stage_soak_seconds": soak})
		fields, _ := resp["error"].(map[string]any)["fields"].(map[string]any)
		if status != http.StatusUnprocessableEntity || fields["rollout.stage_soak_seconds"] == nil {
			t.Errorf("soak %d: %d %v, want 422 naming rollout.stage_soak_seconds", soak, status, resp)
		}
	}
	status, resp := w.owner.upload(w.releasesPath()+"?version=v-1.0.1&rollout=all&require_approval=maybe", "application/octet-stream",
		bytes.NewReader(otatest.Image(otatest.ImageOptions{Version: "v-1.0.1"})))
	if fields, _ := resp["error"].(map[string]any)["fields"].(map[string]any); status != http.StatusUnprocessableEntity || fields["require_approval"] == nil {
		t.Errorf("upload with require_approval=maybe: %d %v, want 422 naming require_approval", status, resp)
	}
	all := w.get(t, "/api/v1/tenants/alpha/rollouts?project="+w.project)["items"].([]any)
	if len(all) != 3 {
		t.Errorf("%d rollouts after the refused requests, want 3", len(all))
	}
}
