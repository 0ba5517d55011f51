package devicerrors

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/devicerrors/bugsnagtest"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
	"github.com/espadmin/espadmin/store/sqlstore"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

const (
	tenantKey  = "0123456789abcdef0123456789abcdef"
	projectKey = "fedcba9876543210fedcba9876543210"
)

// world is a store with one tenant, one project and two devices (one in the project).
type world struct {
	st                        store.Store
	kr                        *seal.Keyring
	tenant, project           string
	inProject, withoutProject string
}

func newWorld(t *testing.T, notifyURL string) *world {
	t.Helper()
	ctx := t.Context()
	st, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.ToSlash(filepath.Join(t.TempDir(), "e.db")), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(bytes.Repeat([]byte{3}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{st: st, kr: kr}
	tn := store.Tenant{Slug: "acme", Name: "Acme"}
	if err := st.CreateTenant(ctx, &tn); err != nil {
		t.Fatal(err)
	}
	w.tenant = tn.ID
	p := store.Project{TenantID: tn.ID, Name: "thermostat", VersionMismatch: store.MismatchWarn}
	if err := st.CreateProject(ctx, &p); err != nil {
		t.Fatal(err)
	}
	w.project = p.ID
	for i, proj := range []string{p.ID, ""} {
		d := store.Device{TenantID: tn.ID, Name: []string{"kitchen", "garage"}[i], ProjectID: proj, Tags: []string{"floor-1"},
			SecretHash: bytes.Repeat([]byte{1}, 32), KeySealed: []byte("k")}
		if err := st.CreateDevice(ctx, &d); err != nil {
			t.Fatal(err)
		}
		if err := st.SetDeviceMetadata(ctx, tn.ID, d.ID, store.DeviceMetadata{FirmwareVersion: "v-1.2.0", ChipModel: "esp32s3",
			IDFVersion: "v5.2.1", MAC: "aa:bb:cc:dd:ee:ff", UpdatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			w.inProject = d.ID
		} else {
			w.withoutProject = d.ID
		}
	}
	sealed, err := kr.Seal([]byte(tenantKey), TenantKeyAD(tn.ID))
	if err != nil {
		t.Fatal(err)
	}
	settings := store.TenantSettings{TenantID: tn.ID, Bugsnag: store.BugsnagSettings{APIKeySealed: sealed, NotifyURL: notifyURL, ReleaseStage: "field"}}
	if err := st.PutTenantSettings(ctx, &settings); err != nil {
		t.Fatal(err)
	}
	return w
}

// setProjectKey gives the project its own key and release stage.
func (w *world) setProjectKey(t *testing.T) {
	t.Helper()
	p, err := w.st.Project(t.Context(), w.tenant, w.project)
	if err != nil {
		t.Fatal(err)
	}
	p.BugsnagAPIKeySealed, err = w.kr.Seal([]byte(projectKey), ProjectKeyAD(w.tenant, w.project))
	if err != nil {
		t.Fatal(err)
	}
	p.BugsnagReleaseStage = "beta"
	if err := w.st.UpdateProject(t.Context(), &p); err != nil {
		t.Fatal(err)
	}
}

func runService(t *testing.T, o Options) *Service {
	t.Helper()
	s := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func report(fw string) protocol.ErrorReport {
	return protocol.ErrorReport{
		Message: "LoadProhibited", Type: "panic", Code: "0x1c", Severity: "error", ResetReason: "panic", FirmwareVersion: fw,
		UptimeMS: 5000, FreeHeap: 120000,
		Backtrace: []protocol.Frame{
			{PC: "0x400d1a2b", Func: "app_main", File: "main/main.c", Line: 42},
			{PC: "0x400d3c4d"},
		},
		CoreDump: &protocol.CoreDump{Task: "main", Cause: "LoadProhibited", Summary: "exccause 0x1c"},
	}
}

func counter(c *prometheus.CounterVec, label string) float64 {
	return testutil.ToFloat64(c.WithLabelValues(label))
}

// TestForwardPayload: bugsnag-go's real payload carries the key (tenant's, or the project's
// which overrides it), the firmware as app version, the release stage, the device as user
// and hostname, the device metadata and report details as tabs, and the backtrace as frames.
func TestForwardPayload(t *testing.T) {
	t.Parallel()
	bs := bugsnagtest.New(t)
	w := newWorld(t, bs.URL)
	s := runService(t, Options{Store: w.st, Keyring: w.kr})
	ctx := t.Context()

	if err := s.ErrorReport(ctx, fleet.DeviceRef{TenantID: w.tenant, DeviceID: w.withoutProject}, report("v-1.2.0")); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, "first payload", func() bool { return len(bs.Received()) == 1 })
	p := bs.Received()[0]
	if p.APIKey != tenantKey || len(p.Events) != 1 {
		t.Fatalf("payload %+v", p)
	}
	ev := p.Events[0]
	if ev.App.Version != "v-1.2.0" || ev.App.ReleaseStage != "field" || ev.App.Type != "esp32" {
		t.Errorf("app %+v", ev.App)
	}
	if ev.User.ID != w.withoutProject || ev.User.Name != "garage" || ev.Device.Hostname != w.withoutProject {
		t.Errorf("user %+v device %+v", ev.User, ev.Device)
	}
	if ev.Severity != "error" || ev.Context != "panic" {
		t.Errorf("severity %q context %q", ev.Severity, ev.Context)
	}
	ex := ev.Exceptions[0]
	if ex.ErrorClass != "panic" || ex.Message != "LoadProhibited" {
		t.Errorf("exception %+v", ex)
	}
	if len(ex.Stacktrace) != 2 || ex.Stacktrace[0].Method != "app_main" || ex.Stacktrace[0].File != "main/main.c" ||
		ex.Stacktrace[0].LineNumber != 42 || ex.Stacktrace[1].Method != "0x400d3c4d" {
		t.Errorf("stack %+v", ex.Stacktrace)
	}
	md := ev.Metadata
	if md["device"]["id"] != w.withoutProject || md["metadata"]["chip_model"] != "esp32s3" || md["metadata"]["idf_version"] != "v5.2.1" ||
		md["error"]["code"] != "0x1c" || md["error"]["reset_reason"] != "panic" || md["core_dump"]["task"] != "main" {
		t.Errorf("metadata %v", md)
	}
	if h := bs.Header(0).Get("Bugsnag-Api-Key"); h != tenantKey {
		t.Errorf("header Bugsnag-Api-Key %q", h)
	}

	w.setProjectKey(t)
	if err := s.ErrorReport(ctx, fleet.DeviceRef{TenantID: w.tenant, DeviceID: w.inProject}, report("v-1.2.0")); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, "project payload", func() bool { return len(bs.Received()) == 2 })
	p = bs.Received()[1]
	if p.APIKey != projectKey || p.Events[0].App.ReleaseStage != "beta" || p.Events[0].Metadata["device"]["project_id"] != w.project {
		t.Errorf("project payload key %q stage %q", p.APIKey, p.Events[0].App.ReleaseStage)
	}
}

// TestGroupingAndReopen: reports group by type, message and firmware, with counts per
// device; a resolved group stays resolved on the same firmware and reopens when the error
// comes back on a newer one.
func TestGroupingAndReopen(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "http://127.0.0.1:1/unused")
	s := New(Options{Store: w.st, Keyring: w.kr})
	ctx := t.Context()
	dev := fleet.DeviceRef{TenantID: w.tenant, DeviceID: w.inProject}
	other := fleet.DeviceRef{TenantID: w.tenant, DeviceID: w.withoutProject}
	for _, d := range []fleet.DeviceRef{dev, dev, other} {
		if err := s.ErrorReport(ctx, d, report("v-1.2.0")); err != nil {
			t.Fatal(err)
		}
	}
	groups, err := w.st.ListErrorGroups(ctx, w.tenant, store.ErrorGroupFilter{}, store.ListOptions{})
	if err != nil || len(groups.Items) != 1 || groups.Items[0].Count != 3 {
		t.Fatalf("groups %+v %v", groups.Items, err)
	}
	g := groups.Items[0]
	devs, _ := w.st.ErrorGroupDevices(ctx, w.tenant, g.ID)
	counts := map[string]int64{}
	for _, d := range devs {
		counts[d.DeviceID] = d.Count
	}
	if counts[w.inProject] != 2 || counts[w.withoutProject] != 1 {
		t.Errorf("device counts %v", counts)
	}
	if err := w.st.SetErrorGroupResolved(ctx, w.tenant, g.ID, true, "user", time.Now()); err != nil {
		t.Fatal(err)
	}
	// Same firmware: stays resolved.
	if err := s.ErrorReport(ctx, other, report("v-1.2.0")); err != nil {
		t.Fatal(err)
	}
	if g, _ = w.st.ErrorGroup(ctx, w.tenant, g.ID); !g.Resolved || g.Count != 4 {
		t.Errorf("after same-firmware report: %+v", g)
	}
	// An older firmware does not reopen it either.
	if err := s.ErrorReport(ctx, other, report("v-1.1.0")); err != nil {
		t.Fatal(err)
	}
	if g, _ = w.st.ErrorGroup(ctx, w.tenant, g.ID); !g.Resolved {
		t.Error("older firmware reopened the group")
	}
	// A newer firmware: regression.
	if err := s.ErrorReport(ctx, other, report("v-1.3.0")); err != nil {
		t.Fatal(err)
	}
	if g, _ = w.st.ErrorGroup(ctx, w.tenant, g.ID); g.Resolved {
		t.Error("newer firmware did not reopen the group")
	}
	all, _ := w.st.ListErrorGroups(ctx, w.tenant, store.ErrorGroupFilter{}, store.ListOptions{})
	if len(all.Items) != 3 {
		t.Errorf("want a group per firmware, got %d", len(all.Items))
	}
}

// TestBugsnagDownOrSlow: with a Bugsnag endpoint that hangs, or that fails, ingestion is not
// delayed: reports are stored at once, forwarding retries in the background, and what does
// not fit the queue is dropped and counted.
func TestBugsnagDownOrSlow(t *testing.T) {
	t.Parallel()
	t.Run("slow", func(t *testing.T) {
		t.Parallel()
		bs := bugsnagtest.New(t)
		bs.Hang()
		w := newWorld(t, bs.URL)
		s := runService(t, Options{Store: w.st, Keyring: w.kr, QueueSize: 2, Workers: 1, ForwardBurst: 100, Timeout: time.Minute})
		start := time.Now()
		for i := range 20 {
			if err := s.ErrorReport(t.Context(), fleet.DeviceRef{TenantID: w.tenant, DeviceID: w.inProject}, report("v-1.2.0")); err != nil {
				t.Fatalf("report %d: %v", i, err)
			}
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("20 reports took %v with Bugsnag hanging", took)
		}
		g, _ := w.st.ListErrorGroups(t.Context(), w.tenant, store.ErrorGroupFilter{}, store.ListOptions{})
		if len(g.Items) != 1 || g.Items[0].Count != 20 {
			t.Errorf("stored %+v", g.Items)
		}
		poll.Wait(t, "one request in flight", func() bool { return bs.Requests() >= 1 })
		// One in flight, two queued, the rest dropped.
		if n := counter(s.Metrics().Forward, "queue_full"); n < 17 {
			t.Errorf("queue_full %v", n)
		}
	})
	t.Run("down", func(t *testing.T) {
		t.Parallel()
		bs := bugsnagtest.New(t)
		bs.SetStatus(http.StatusServiceUnavailable)
		w := newWorld(t, bs.URL)
		s := runService(t, Options{Store: w.st, Keyring: w.kr, Attempts: 3, Backoff: time.Millisecond})
		if err := s.ErrorReport(t.Context(), fleet.DeviceRef{TenantID: w.tenant, DeviceID: w.inProject}, report("v-1.2.0")); err != nil {
			t.Fatal(err)
		}
		poll.Wait(t, "failed after retries", func() bool { return counter(s.Metrics().Forward, "failed") == 1 })
		if n := bs.Requests(); n != 3 {
			t.Errorf("attempts %d, want 3", n)
		}
		if n := counter(s.Metrics().Forward, "retried"); n != 2 {
			t.Errorf("retried %v", n)
		}
	})
}

// TestRateLimits: a device reporting in a loop is forwarded up to its burst, stored up to a
// higher one, and the rest is counted.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	bs := bugsnagtest.New(t)
	w := newWorld(t, bs.URL)
	now := time.Now()
	s := runService(t, Options{Store: w.st, Keyring: w.kr, ForwardBurst: 3, StoreBurst: 10, Now: func() time.Time { return now }})
	loop := fleet.DeviceRef{TenantID: w.tenant, DeviceID: w.inProject}
	for range 25 {
		if err := s.ErrorReport(t.Context(), loop, report("v-1.2.0")); err != nil {
			t.Fatal(err)
		}
	}
	// The other device is not affected by the looping one.
	if err := s.ErrorReport(t.Context(), fleet.DeviceRef{TenantID: w.tenant, DeviceID: w.withoutProject}, report("v-1.2.0")); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, "forwarded", func() bool { return len(bs.Received()) == 4 })
	if n := counter(s.Metrics().Forward, "rate_limited"); n != 7 {
		t.Errorf("forward rate_limited %v, want 7", n)
	}
	if n := counter(s.Metrics().Reports, "rate_limited"); n != 15 {
		t.Errorf("store rate_limited %v, want 15", n)
	}
	if n := counter(s.Metrics().Reports, "stored"); n != 11 {
		t.Errorf("stored %v, want 11", n)
	}
}
