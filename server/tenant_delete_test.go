package server

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/cmd/espadmin/sim"
	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/server/ota/otatest"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// TestDeleteTenantCutsDevicesAndFirmware deletes a tenant whose device is connected and
// whose release has a signed download URL out: at once the device is disconnected and
// refused (no cached credentials), the URL stops serving, and the binary and the uploaded core
// dumps leave blob storage.
func TestDeleteTenantCutsDevicesAndFirmware(t *testing.T) {
	t.Parallel()
	w := newOTAWorld(t)
	r, b := w.create(t, map[string]any{"name": "gone", "project_id": w.project})
	id, secret := r["id"].(string), r["secret"].(string)
	d, err := sim.NewDevice(sim.Options{Bundle: b, BrokerURL: "tcp://" + w.h.fleet.mqttAddr, Firmware: "v-1.0.0", ReconnectDelay: 50e6})
	if err != nil {
		t.Fatal(err)
	}
	d.Start(t.Context())
	t.Cleanup(d.Stop)
	poll.Wait(t, "device connected", d.Connected)
	w.waitOnline(t, id, true)

	img := otatest.Image(otatest.ImageOptions{Version: "v-2.0.0"})
	status, rel := w.owner.upload(w.releasesPath()+"?version=v-2.0.0", "application/octet-stream", bytes.NewReader(img))
	if status != http.StatusCreated {
		t.Fatalf("upload: %d %v", status, rel)
	}
	url := w.get(t, w.releasesPath()+"/"+rel["id"].(string)+"/download")["url"].(string)
	if got := httpStatus(t, url); got != http.StatusOK {
		t.Fatalf("signed URL before the deletion: %d", got)
	}
	// A crash report whose core dump was uploaded shares the firmware storage.
	rep := store.ErrorReport{TenantID: tenantID(t, w.h.st, "alpha"), DeviceID: id, Type: "panic", Message: "m",
		Severity: "error", FirmwareVersion: "v-1.0.0", Fingerprint: "f", CoreDump: `{"size":4}`, ReceivedAt: time.Now()}
	if _, err := w.h.st.RecordError(t.Context(), &rep); err != nil {
		t.Fatal(err)
	}
	if _, err := w.h.fleet.ota.blobs.Put(t.Context(), devicerrors.CoreDumpBlobKey(rep.TenantID, rep.ID), strings.NewReader("core"), 4); err != nil {
		t.Fatal(err)
	}
	if keys := w.h.fleet.ota.blobKeys(t); len(keys) != 2 {
		t.Fatalf("blob storage holds %v, want the release and the core dump", keys)
	}

	if status, resp := w.owner.do("DELETE", "/api/v1/tenants/alpha", map[string]any{"confirm": "alpha"}); status != http.StatusNoContent {
		t.Fatalf("delete tenant: %d %v", status, resp)
	}
	poll.Wait(t, "the device's connection closed and its reconnects refused", func() bool {
		return !d.Connected() && d.Stats().Refused > 0
	})
	if err := mqttConnect(w.h.fleet.mqttAddr, id, secret); err == nil {
		t.Error("a deleted tenant's device connected")
	}
	if got := httpStatus(t, url); got != http.StatusNotFound {
		t.Errorf("signed URL after the deletion: %d, want 404", got)
	}
	if keys := w.h.fleet.ota.blobKeys(t); len(keys) != 0 {
		t.Errorf("blob storage still holds %v", keys)
	}
}

// httpStatus GETs url and returns the status.
func httpStatus(t *testing.T, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
