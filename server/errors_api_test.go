package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/store"
)

// populateErrors records one error report of deviceID, for the route matrix.
func (w *tenantWorld) populateErrors(t *testing.T, tenantID, deviceID string) (groupID, reportID string) {
	t.Helper()
	r := store.ErrorReport{TenantID: tenantID, DeviceID: deviceID, Type: "panic", Message: "LoadProhibited",
		Severity: "error", FirmwareVersion: "v-1.0.0", Fingerprint: devicerrors.Fingerprint("panic", "LoadProhibited", "v-1.0.0"),
		Stack: `[{"pc":"0x400d1a2b"}]`, CoreDump: `{"size":4}`, ReceivedAt: time.Now()}
	g, err := w.h.st.RecordError(t.Context(), &r)
	if err != nil {
		t.Fatal(err)
	}
	// The report's uploaded core dump, in the firmware storage.
	if _, err := w.h.fleet.ota.blobs.Put(t.Context(), devicerrors.CoreDumpBlobKey(tenantID, r.ID), strings.NewReader("core"), 4); err != nil {
		t.Fatal(err)
	}
	return g.ID, r.ID
}

// TestErrorAPI: list with filters, detail with devices and recent reports, resolve and
// reopen (audited), Bugsnag settings write-only and audited without the key.
func TestErrorAPI(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	admin := w.session(t, "alpha", store.RoleAdmin)
	base := "/api/v1/tenants/alpha"
	st, resp := admin.do("GET", base+"/errors", nil)
	if st != 200 || len(items(t, resp)) != 1 || items(t, resp)[0]["id"] != w.a["group"] || items(t, resp)[0]["count"] != 1.0 {
		t.Fatalf("list: %d %v", st, resp)
	}
	st, resp = admin.do("GET", base+"/errors/"+w.a["group"], nil)
	if st != 200 || resp["type"] != "panic" || len(resp["devices"].([]any)) != 1 || len(resp["recent_reports"].([]any)) != 1 {
		t.Fatalf("detail: %d %v", st, resp)
	}
	rep := resp["recent_reports"].([]any)[0].(map[string]any)
	if bt := rep["backtrace"].([]any); bt[0].(map[string]any)["pc"] != "0x400d1a2b" {
		t.Errorf("backtrace %v", rep)
	}
	if st, resp = admin.do("POST", base+"/errors/"+w.a["group"]+"/resolve", nil); st != 200 || resp["resolved"] != true {
		t.Fatalf("resolve: %d %v", st, resp)
	}
	if _, resp = admin.do("GET", base+"/errors?resolved=false", nil); len(items(t, resp)) != 0 {
		t.Errorf("resolved filter: %v", resp)
	}
	if _, resp = admin.do("GET", base+"/devices/"+w.a["device"]+"/errors", nil); len(items(t, resp)) != 1 {
		t.Errorf("device errors: %v", resp)
	}
	if st, resp = admin.do("POST", base+"/errors/"+w.a["group"]+"/reopen", nil); st != 200 || resp["resolved"] != false {
		t.Fatalf("reopen: %d %v", st, resp)
	}
	for _, bad := range []string{"?resolved=maybe", "?limit=0", "?device=A%2FB"} {
		st, resp = admin.do("GET", base+"/errors"+bad, nil)
		wantError(t, bad, st, resp, 422)
	}

	key := "0123456789abcdef0123456789abcdef"
	st, resp = admin.do("PUT", base+"/settings/bugsnag", map[string]any{"api_key": key, "notify_url": "https://bugsnag.internal/notify"})
	if st != 200 || resp["api_key_set"] != true || resp["notify_url"] != "https://bugsnag.internal/notify" || resp["api_key"] != nil {
		t.Fatalf("put: %d %v", st, resp)
	}
	if _, resp = admin.do("GET", base+"/settings/bugsnag", nil); resp["api_key_set"] != true || strings.Contains(lower(toJSON(t, resp)), key) {
		t.Errorf("read back: %v", resp)
	}
	tn := tenantID(t, w.h.st, "alpha")
	settings, err := w.h.st.TenantSettings(t.Context(), tn)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := w.h.keyring.Open(settings.Bugsnag.APIKeySealed, devicerrors.TenantKeyAD(tn)); err != nil || string(plain) != key {
		t.Errorf("sealed key opens to %q, %v", plain, err)
	}
	_, audit := admin.do("GET", base+"/audit", nil)
	if s := toJSON(t, audit); strings.Contains(s, key) || !strings.Contains(s, "settings.bugsnag") || !strings.Contains(s, "error_group.resolve") {
		t.Errorf("audit: %s", s)
	}
	for _, body := range []map[string]any{
		{"api_key": "short"},
		{"api_key": key, "notify_url": "ftp://x"},
		{},
		{"api_key": key, "project_id": "nope"},
	} {
		st, resp = admin.do("PUT", base+"/settings/bugsnag", body)
		wantError(t, toJSON(t, body), st, resp, 422)
	}
	if st, resp = admin.do("PUT", base+"/settings/bugsnag", map[string]any{"api_key": ""}); st != 200 || resp["api_key_set"] != false {
		t.Errorf("remove key: %d %v", st, resp)
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
