package fleet

import (
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
)

// TestHistoryRecordsAndPrunes: each pass counts every tenant's devices at the interval's
// start (a second pass in the same interval adds nothing: replicas share the sample) and
// deletes samples past the retention.
func TestHistoryRecordsAndPrunes(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := t.Context()
	var tenants []store.Tenant
	for _, slug := range []string{"alpha", "beta"} {
		tn := store.Tenant{Slug: slug, Name: slug}
		if err := st.CreateTenant(ctx, &tn); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, tn)
	}
	for i, online := range []bool{true, true, false} {
		d := store.Device{ID: store.NewID(), TenantID: tenants[0].ID, Name: "d", SecretHash: make([]byte, 32),
			Presence: store.Presence{Online: online}}
		if err := st.CreateDevice(ctx, &d); err != nil {
			t.Fatalf("device %d: %v", i, err)
		}
	}
	now := time.Date(2030, 1, 2, 10, 7, 30, 0, time.UTC)
	old := store.DeviceSample{TenantID: tenants[0].ID, DeviceID: "gone", At: now.Add(-31 * 24 * time.Hour), Kind: store.SamplePresence}
	if err := st.AddDeviceSample(ctx, old); err != nil {
		t.Fatal(err)
	}
	h := NewHistory(HistoryOptions{Store: st, Now: func() time.Time { return now }})
	for range 2 {
		if err := h.Once(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.FleetSamples(ctx, tenants[0].ID, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := store.FleetSample{TenantID: tenants[0].ID, At: time.Date(2030, 1, 2, 10, 5, 0, 0, time.UTC), Online: 2, Total: 3}
	if len(got) != 1 || got[0] != want {
		t.Errorf("alpha's samples: %+v, want [%+v]", got, want)
	}
	if got, _ := st.FleetSamples(ctx, tenants[1].ID, time.Time{}, 0); len(got) != 1 || got[0].Total != 0 {
		t.Errorf("beta's samples: %+v, want one of 0 devices", got)
	}
	if got, _ := st.DeviceSamples(ctx, tenants[0].ID, "gone", time.Time{}, 0); len(got) != 0 {
		t.Errorf("a sample past the retention survived: %+v", got)
	}
}
