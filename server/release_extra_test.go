package server

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/cmd/espadmin/sim"
	"github.com/espadmin/espadmin/server/ota/otatest"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// TestInterruptedUploadStoresNothing sends half of an image and hangs up: the upload was
// streaming into a temp file (seen in the blob folder), and once the connection is gone the
// temp file is removed, no release is listed and the same version can be uploaded again.
func TestInterruptedUploadStoresNothing(t *testing.T) {
	t.Parallel()
	w := newOTAWorld(t)
	token := w.h.apiToken(t, memberEmail("alpha", store.RoleOwner), "alpha", store.ScopeDevicesRead, store.ScopeReleasesWrite)
	img := otatest.Image(otatest.ImageOptions{Version: "v-1.1.0", Size: 1536 << 10})

	conn, err := net.Dial("tcp", strings.TrimPrefix(w.h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s?version=v-1.1.0 HTTP/1.1\r\nHost: espadmin\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", w.releasesPath(), token, len(img))
	if _, err := conn.Write(img[:len(img)/2]); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, "the upload to stream into a temp file", func() bool { return len(w.h.fleet.ota.blobKeys(t)) == 1 })
	conn.Close()
	poll.Wait(t, "the temp file to go", func() bool { return len(w.h.fleet.ota.blobKeys(t)) == 0 })
	poll.Wait(t, "the request to end", func() bool {
		return strings.Contains(w.h.logs.String(), `"method":"POST","path":"`+w.releasesPath()+`"`)
	})

	if items := w.get(t, w.releasesPath())["items"].([]any); len(items) != 0 {
		t.Errorf("releases listed after an interrupted upload: %v", items)
	}
	if keys := w.h.fleet.ota.blobKeys(t); len(keys) != 0 {
		t.Errorf("blob folder holds %v", keys)
	}
	status, resp := w.owner.upload(w.releasesPath()+"?version=v-1.1.0", "application/octet-stream", bytes.NewReader(img))
	if status != http.StatusCreated || resp["size"] != float64(len(img)) {
		t.Fatalf("upload after the interrupted one: %d %v", status, resp)
	}
	if keys := w.h.fleet.ota.blobKeys(t); len(keys) != 1 || filepath.Base(keys[0]) != resp["id"].(string)+".bin" {
		t.Errorf("blob folder holds %v", keys)
	}
}

// TestExpiredDownloadURLRefused signs a URL with the shortest TTL the blob store gives: it
// serves the image until it expires and is refused (403) after; moving its expiry forward
// by hand breaks the signature.
func TestExpiredDownloadURLRefused(t *testing.T) {
	t.Parallel()
	w := newOTAWorld(t)
	img := otatest.Image(otatest.ImageOptions{Version: "v-1.1.0"})
	status, resp := w.owner.upload(w.releasesPath()+"?version=v-1.1.0", "application/octet-stream", bytes.NewReader(img))
	if status != http.StatusCreated {
		t.Fatalf("upload: %d %v", status, resp)
	}
	rel, err := w.h.st.Release(t.Context(), tenantID(t, w.h.st, "alpha"), resp["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(u string) (int, []byte) {
		t.Helper()
		r, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, b
	}

	signed, expires, err := w.h.fleet.ota.svc.DownloadURL(t.Context(), rel, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d := expires.Sub(w.h.fleet.clock.Now()); d <= 0 || d > time.Second {
		t.Errorf("stated expiry %s from now, want within the TTL", d)
	}
	if status, body := fetch(signed); status != http.StatusOK || !bytes.Equal(body, img) {
		t.Fatalf("fresh URL: %d, %d bytes", status, len(body))
	}
	u := mustURL(t, signed)
	q := u.Query()
	exp, _ := strconv.ParseInt(q.Get("expires"), 10, 64)
	q.Set("expires", strconv.FormatInt(exp+3600, 10))
	u.RawQuery = q.Encode()
	if status, _ := fetch(u.String()); status != http.StatusForbidden {
		t.Errorf("URL with its expiry moved forward: %d, want 403", status)
	}
	poll.Wait(t, "the URL to expire", func() bool {
		status, _ := fetch(signed)
		return status == http.StatusForbidden
	})
	if time.Now().Unix() <= exp {
		t.Errorf("refused at %d, before its expiry %d", time.Now().Unix(), exp)
	}
	// The API hands out a new one.
	dl := w.get(t, w.releasesPath()+"/"+rel.ID+"/download")
	if status, body := fetch(dl["url"].(string)); status != http.StatusOK || !bytes.Equal(body, img) {
		t.Errorf("new URL: %d, %d bytes", status, len(body))
	}
}

// TestPauseAndResumeWithLiveDevices runs a rollout to one online and one offline device:
// the online one updates; pausing withdraws the offline one's queued command, so it stays on
// its version when it connects; resuming sends it a fresh command and the rollout completes.
func TestPauseAndResumeWithLiveDevices(t *testing.T) {
	t.Parallel()
	w := newOTAWorld(t)
	online := w.deviceRunning(t)
	created, bundle := w.create(t, map[string]any{"name": "offline", "project_id": w.project})
	offlineID := created["id"].(string)

	img := otatest.Image(otatest.ImageOptions{Version: "v-1.1.0"})
	status, resp := w.owner.upload(w.releasesPath()+"?version=v-1.1.0&rollout=all", "application/octet-stream", bytes.NewReader(img))
	if status != http.StatusCreated {
		t.Fatalf("upload: %d %v", status, resp)
	}
	id := resp["rollout"].(map[string]any)["id"].(string)
	rolloutPath := "/api/v1/tenants/alpha/rollouts/" + id
	totals := func() map[string]any { return w.rolloutState(t, id)["totals"].(map[string]any) }
	poll.Wait(t, "the online device to update", func() bool {
		return online.Firmware() == "v-1.1.0" && totals()["succeeded"] == float64(1)
	})
	if got := w.rolloutState(t, id); got["state"] != "active" || got["totals"].(map[string]any)["pending"] != float64(1) {
		t.Fatalf("rollout with an offline device: %v", got)
	}
	updateCommand := func() map[string]any {
		t.Helper()
		page := w.get(t, rolloutPath+"/devices")
		for _, it := range page["items"].([]any) {
			if d := it.(map[string]any); d["device_id"] == offlineID {
				return w.get(t, "/api/v1/tenants/alpha/devices/"+offlineID+"/commands/"+d["command_id"].(string))
			}
		}
		t.Fatalf("the offline device is not in the rollout: %v", page)
		return nil
	}
	queued := updateCommand()
	if queued["state"] != "queued" {
		t.Fatalf("offline device's command: %v", queued)
	}

	if status, resp := w.owner.do("POST", rolloutPath+"/resume", nil); status != http.StatusConflict {
		t.Errorf("resume while active: %d %v", status, resp)
	}
	status, resp = w.owner.do("POST", rolloutPath+"/pause", nil)
	if status != http.StatusOK || resp["state"] != "paused" || resp["pause_reason"] == "" {
		t.Fatalf("pause: %d %v", status, resp)
	}
	if status, _ := w.owner.do("POST", rolloutPath+"/pause", nil); status != http.StatusConflict {
		t.Errorf("pause while paused: %d", status)
	}
	if c := updateCommand(); c["id"] != queued["id"] || c["state"] != "expired" {
		t.Errorf("queued command after pause: %v", c)
	}

	// The device comes back while the rollout is paused: nothing reaches it.
	dev, err := sim.NewDevice(sim.Options{Bundle: bundle, BrokerURL: "tcp://" + w.h.fleet.mqttAddr, Firmware: "v-1.0.0", ReconnectDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dev.Start(t.Context())
	t.Cleanup(dev.Stop)
	w.waitOnline(t, offlineID, true)
	if got := w.rolloutState(t, id); got["state"] != "paused" || dev.Firmware() != "v-1.0.0" || got["totals"].(map[string]any)["pending"] != float64(1) {
		t.Errorf("paused rollout after the device returned: %v, device on %s", got, dev.Firmware())
	}

	status, resp = w.owner.do("POST", rolloutPath+"/resume", nil)
	if status != http.StatusOK || resp["state"] == "paused" {
		t.Fatalf("resume: %d %v", status, resp)
	}
	poll.Wait(t, "the rollout to complete", func() bool { return w.rolloutState(t, id)["state"] == "completed" })
	if dev.Firmware() != "v-1.1.0" {
		t.Errorf("returned device runs %s", dev.Firmware())
	}
	if c := updateCommand(); c["id"] == queued["id"] || c["state"] != "succeeded" {
		t.Errorf("command after resume: %v (the withdrawn one was %v)", c, queued["id"])
	}
	if tt := totals(); tt["succeeded"] != float64(2) || tt["pending"] != float64(0) {
		t.Errorf("totals %v", tt)
	}
}

// TestPublicDownloadOnlyWhenEnabled checks the stable public URL: 404 (and no public_url)
// until the project enables public downloads, then a no-store redirect to a signed URL that
// serves the image, and 404 again once it is turned off.
func TestPublicDownloadOnlyWhenEnabled(t *testing.T) {
	t.Parallel()
	w := newOTAWorld(t)
	img := otatest.Image(otatest.ImageOptions{Version: "v-1.1.0"})
	status, resp := w.owner.upload(w.releasesPath()+"?version=v-1.1.0", "application/octet-stream", bytes.NewReader(img))
	if status != http.StatusCreated {
		t.Fatalf("upload: %d %v", status, resp)
	}
	relID := resp["id"].(string)
	if _, ok := resp["public_url"]; ok {
		t.Errorf("public_url while public downloads are off: %v", resp)
	}
	publicPath := "/api/v1/public/tenants/" + tenantID(t, w.h.st, "alpha") + "/releases/" + relID + "/firmware.bin"
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	public := func(path string) *http.Response {
		t.Helper()
		r, err := noFollow.Get(w.h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r
	}
	if r := public(publicPath); r.StatusCode != http.StatusNotFound {
		t.Errorf("public download while off: %d", r.StatusCode)
	}

	setPublic := func(on bool) {
		t.Helper()
		status, resp := w.owner.do("PATCH", "/api/v1/tenants/alpha/projects/"+w.project, map[string]any{"public_downloads": on})
		if status != http.StatusOK || resp["public_downloads"] != on {
			t.Fatalf("set public downloads %v: %d %v", on, status, resp)
		}
	}
	setPublic(true)
	rel := w.get(t, w.releasesPath()+"/"+relID)
	if rel["public_url"] != w.h.url+publicPath {
		t.Errorf("public_url %v, want %s", rel["public_url"], w.h.url+publicPath)
	}
	r := public(publicPath)
	if r.StatusCode != http.StatusFound || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("public download: %d %v", r.StatusCode, r.Header)
	}
	loc := mustURL(t, r.Header.Get("Location"))
	if loc.Query().Get("sig") == "" || loc.Query().Get("expires") == "" {
		t.Errorf("redirect to an unsigned URL: %s", loc)
	}
	got, err := http.Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if got.StatusCode != http.StatusOK || !bytes.Equal(body, img) {
		t.Errorf("signed URL from the redirect: %d, %d bytes", got.StatusCode, len(body))
	}
	for _, path := range []string{
		"/api/v1/public/tenants/" + tenantID(t, w.h.st, "alpha") + "/releases/" + store.NewID() + "/firmware.bin",
		"/api/v1/public/tenants/" + tenantID(t, w.h.st, "beta") + "/releases/" + relID + "/firmware.bin",
		"/api/v1/public/tenants/" + url.PathEscape(strings.Repeat("x", 80)) + "/releases/" + relID + "/firmware.bin",
	} {
		if r := public(path); r.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, r.StatusCode)
		}
	}

	setPublic(false)
	if r := public(publicPath); r.StatusCode != http.StatusNotFound {
		t.Errorf("public download after turning it off: %d", r.StatusCode)
	}
	if rel := w.get(t, w.releasesPath()+"/"+relID); rel["public_url"] != nil {
		t.Errorf("public_url after turning it off: %v", rel["public_url"])
	}
}
