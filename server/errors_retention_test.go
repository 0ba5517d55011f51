package server

import (
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/store"
)

// TestErrorRetentionSweepsReportsAndCoreDumps runs the error reports' retention sweep (as
// espadmin serve does) on the server's store and firmware storage: the report received past
// errors.retention is gone with its uploaded core dump, while its group keeps counting it and
// the recent report keeps its core dump, as the API shows.
func TestErrorRetentionSweepsReportsAndCoreDumps(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createUser(t, "owner@alpha.test", "alpha", store.RoleOwner)
	owner := h.login(t, "owner@alpha.test")
	tenant := tenantID(t, h.st, "alpha")
	ctx := t.Context()
	now := time.Now()
	const day = 24 * time.Hour
	record := func(age time.Duration) store.ErrorReport {
		t.Helper()
		rep := store.ErrorReport{TenantID: tenant, DeviceID: "dev-1", Type: "panic", Message: "LoadProhibited",
			Severity: "error", FirmwareVersion: "v-1.0.0", Fingerprint: "fp", CoreDump: `{"task":"main","size":4}`,
			ReceivedAt: now.Add(-age)}
		if _, err := h.st.RecordError(ctx, &rep); err != nil {
			t.Fatal(err)
		}
		if _, err := h.fleet.ota.blobs.Put(ctx, devicerrors.CoreDumpBlobKey(tenant, rep.ID), strings.NewReader("core"), 4); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	old := record(devicerrors.DefaultRetention + day)
	recent := record(day)

	sweep := devicerrors.NewRetention(devicerrors.RetentionOptions{Store: h.st, Blobs: h.fleet.ota.blobs})
	p, err := sweep.Once(ctx)
	if err != nil || p != (devicerrors.Pruned{Reports: 1, CoreDumps: 1}) {
		t.Fatalf("sweep: %+v, %v; want one report and its core dump", p, err)
	}

	groupPath := "/api/v1/tenants/alpha/errors/" + old.GroupID
	st, detail := owner.do("GET", groupPath, nil)
	if st != http.StatusOK {
		t.Fatalf("GET the group after the sweep: %d %v", st, detail)
	}
	firstSeen, _ := time.Parse(time.RFC3339Nano, detail["first_seen"].(string))
	if detail["count"] != 2.0 || firstSeen.Sub(old.ReceivedAt).Abs() >= time.Millisecond {
		t.Errorf("group after the sweep: count %v, first seen %v; want 2 since %v", detail["count"], detail["first_seen"], old.ReceivedAt.UTC())
	}
	if devs := detail["devices"].([]any); len(devs) != 1 || devs[0].(map[string]any)["count"] != 2.0 {
		t.Errorf("group's devices after the sweep: %v, want dev-1 counted twice", devs)
	}
	var kept []string
	for _, r := range detail["recent_reports"].([]any) {
		rep := r.(map[string]any)
		kept = append(kept, rep["id"].(string))
		if rep["core_dump_uploaded"] != true {
			t.Errorf("kept report %v lost its core dump", rep["id"])
		}
	}
	if !slices.Equal(kept, []string{recent.ID}) {
		t.Errorf("reports after the sweep: %v, want only the recent %s", kept, recent.ID)
	}
	coreDump := func(rep store.ErrorReport) int {
		st, _ := owner.do("GET", groupPath+"/reports/"+rep.ID+"/coredump", nil)
		return st
	}
	if st := coreDump(old); st != http.StatusNotFound {
		t.Errorf("the swept report's core dump: %d, want 404", st)
	}
	if st := coreDump(recent); st != http.StatusOK {
		t.Errorf("the recent report's core dump: %d, want 200", st)
	}
	// blobKeys names local files by path.
	if keys, want := h.fleet.ota.blobKeys(t), devicerrors.CoreDumpBlobKey(tenant, recent.ID); len(keys) != 1 || !strings.HasSuffix(filepath.ToSlash(keys[0]), want) {
		t.Errorf("blob storage holds %v after the sweep, want only %s", keys, want)
	}
}
