package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/server/ota"
	"github.com/espadmin/espadmin/server/ota/otatest"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/blob"
)

// testOTA is the update service of one harness server, with firmware storage in a temp
// folder served by the server at /blobs/ (or in gofakes3 with withS3Firmware).
type testOTA struct {
	t     *testing.T
	svc   *ota.Service
	dir   string
	local *blob.Local
	s3    *s3mem.Backend
	blobs blob.Store
}

// withS3Firmware keeps firmware in gofakes3 over real HTTP, through minio-go, instead of a
// local folder.
func withS3Firmware() harnessOption {
	return func(o *harnessOptions) { o.s3Firmware = true }
}

// startOTA builds the update service on st with the fleet's command service and hub, and its
// firmware storage for a server at publicURL. Its engine is driven by the tests (Tick), not
// by a timer.
func (h *harness) startOTA(st store.Store, fl *testFleet, publicURL string) *testOTA {
	h.t.Helper()
	o := &testOTA{t: h.t, dir: h.t.TempDir()}
	var blobs blob.Store
	if h.opts.s3Firmware {
		blobs = o.openS3(h.t)
	} else {
		l, err := blob.NewLocal(o.dir, bytes.Repeat([]byte{9}, 32), publicURL)
		if err != nil {
			h.t.Fatal(err)
		}
		o.local, blobs = l, l
	}
	o.blobs = blobs
	o.svc = ota.New(ota.Options{
		Store: st, Blobs: blobs, Keyring: h.keyring, Commands: fl.commands, Hub: fl.hub, Now: fl.clock.Now,
		MaxImageSize: 2 << 20, Interval: time.Hour,
	})
	return o
}

// mounts are the handlers the server serves for the firmware storage: the local folder's
// signed downloads, none for S3.
func (o *testOTA) mounts() map[string]http.Handler {
	if o.local == nil {
		return nil
	}
	return map[string]http.Handler{blob.LocalMountPath: o.local.Handler()}
}

// openS3 starts gofakes3 over real HTTP and opens it through minio-go.
func (o *testOTA) openS3(t *testing.T) blob.Store {
	t.Helper()
	o.s3 = s3mem.New()
	if err := o.s3.CreateBucket("firmware"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(o.s3).Server())
	t.Cleanup(srv.Close)
	s3, err := blob.NewS3(t.Context(), blob.S3Config{
		Endpoint: srv.Listener.Addr().String(), Bucket: "firmware", Prefix: "espadmin", Region: "us-east-1",
		AccessKeyID: "AKIDTEST", SecretAccessKey: "secret-test-key", PathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s3
}

// blobKeys lists what firmware storage holds (local folder or S3).
func (o *testOTA) blobKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	if o.s3 != nil {
		objs, err := o.s3.ListBucket("firmware", nil, gofakes3.ListBucketPage{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range objs.Contents {
			keys = append(keys, c.Key)
		}
		return keys
	}
	// filepath.Glob's * matches names starting with a dot too, so in-flight uploads
	// (.upload-*) are listed once.
	matches, _ := filepath.Glob(filepath.Join(o.dir, "tenants", "*", "releases", "*"))
	cores, _ := filepath.Glob(filepath.Join(o.dir, "tenants", "*", "coredumps", "*"))
	return append(matches, cores...)
}

// populateOTA gives a project of a tenant of the world one release and an active rollout
// (stored directly, so no command is sent), for the route matrix.
func (w *tenantWorld) populateOTA(t *testing.T, tenantID, projectID string) (releaseID, rolloutID string) {
	t.Helper()
	p, err := w.h.st.Project(t.Context(), tenantID, projectID)
	if err != nil {
		t.Fatal(err)
	}
	up, err := w.h.fleet.ota.svc.Upload(t.Context(), p, ota.ReleaseInput{Version: "v-1.0.0", Body: bytes.NewReader(otatest.Image(otatest.ImageOptions{Version: "v-1.0.0"}))})
	if err != nil {
		t.Fatal(err)
	}
	r := store.Rollout{ID: store.NewID(), TenantID: tenantID, ProjectID: p.ID, ReleaseID: up.Release.ID,
		Target: store.RolloutTarget{Kind: store.TargetAll}, Stages: []int{100}, FailureThreshold: 0.2,
		State: store.RolloutActive, CreatedAt: store.Now(), UpdatedAt: store.Now()}
	if err := w.h.st.CreateRollout(t.Context(), &r); err != nil {
		t.Fatal(err)
	}
	return up.Release.ID, r.ID
}

// upload posts an image as a raw body and decodes the JSON answer.
func (c *apiClient) upload(path, contentType string, body io.Reader) (int, map[string]any) {
	c.t.Helper()
	return c.send(http.MethodPost, path, contentType, body)
}

// send sends a raw body with method and decodes the JSON answer.
func (c *apiClient) send(method, path, contentType string, body io.Reader) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if c.csrf != "" {
		req.Header.Set(csrfHeader, c.csrf)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			c.t.Fatalf("upload: status %d, body %q", resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

var _ fleet.OTAReporter = (*ota.Service)(nil)
