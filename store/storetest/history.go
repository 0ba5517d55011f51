package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
)

// testHistory: device and fleet samples come back newest-limited and oldest first, per device
// and tenant only; a second fleet sample at one time is a conflict; the sweep removes what is
// older than the retention on every tenant, and deleting a device removes its samples.
func testHistory(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn, other := f.tenant(t), f.tenant(t)
	d, d2 := f.device(t, tn.ID, ""), f.device(t, tn.ID, "")
	od := f.device(t, other.ID, "")
	samples := []store.DeviceSample{
		{TenantID: tn.ID, DeviceID: d.ID, At: at(1), Kind: store.SamplePresence, Online: true},
		{TenantID: tn.ID, DeviceID: d.ID, At: at(2), Kind: store.SampleMetadata, Online: true, RSSI: -61, FreeHeap: 120_000, UptimeSeconds: 3600},
		{TenantID: tn.ID, DeviceID: d.ID, At: at(3), Kind: store.SamplePresence},
		{TenantID: tn.ID, DeviceID: d2.ID, At: at(2), Kind: store.SamplePresence, Online: true},
		{TenantID: other.ID, DeviceID: od.ID, At: at(2), Kind: store.SamplePresence, Online: true},
	}
	for _, s := range samples {
		f.must(t, f.s.AddDeviceSample(ctx, s), "AddDeviceSample")
	}
	got, err := f.s.DeviceSamples(ctx, tn.ID, d.ID, time.Time{}, 0)
	f.must(t, err, "DeviceSamples")
	f.equal(t, "DeviceSamples", got, samples[:3])
	got, err = f.s.DeviceSamples(ctx, tn.ID, d.ID, at(2), 0)
	f.must(t, err, "DeviceSamples since")
	f.equal(t, "DeviceSamples since at(2)", got, samples[1:3])
	got, err = f.s.DeviceSamples(ctx, tn.ID, d.ID, time.Time{}, 2)
	f.must(t, err, "DeviceSamples limit")
	f.equal(t, "DeviceSamples newest 2", got, samples[1:3])
	got, err = f.s.DeviceSamples(ctx, other.ID, d.ID, time.Time{}, 0)
	f.must(t, err, "DeviceSamples of another tenant")
	if len(got) != 0 {
		t.Errorf("%s: another tenant reads the device's samples: %v", f.s.Backend(), got)
	}

	fleet := []store.FleetSample{{TenantID: tn.ID, At: at(1), Online: 3, Total: 5}, {TenantID: tn.ID, At: at(2), Online: 4, Total: 5}}
	for _, s := range fleet {
		f.must(t, f.s.AddFleetSample(ctx, s), "AddFleetSample")
	}
	f.must(t, f.s.AddFleetSample(ctx, store.FleetSample{TenantID: other.ID, At: at(2), Online: 1, Total: 1}), "AddFleetSample other tenant, same time")
	if err := f.s.AddFleetSample(ctx, store.FleetSample{TenantID: tn.ID, At: at(2), Online: 9, Total: 9}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("%s: a second fleet sample at the same time: %v, want ErrConflict", f.s.Backend(), err)
	}
	gotF, err := f.s.FleetSamples(ctx, tn.ID, time.Time{}, 0)
	f.must(t, err, "FleetSamples")
	f.equal(t, "FleetSamples", gotF, fleet)
	gotF, err = f.s.FleetSamples(ctx, tn.ID, time.Time{}, 1)
	f.must(t, err, "FleetSamples limit")
	f.equal(t, "FleetSamples newest 1", gotF, fleet[1:])

	// The sweep: everything before at(2), every tenant (this store may hold other groups'
	// samples, so count only what this group wrote is gone).
	_, err = f.s.PruneHistory(ctx, at(2))
	f.must(t, err, "PruneHistory")
	got, err = f.s.DeviceSamples(ctx, tn.ID, d.ID, time.Time{}, 0)
	f.must(t, err, "DeviceSamples after prune")
	f.equal(t, "DeviceSamples after prune", got, samples[1:3])
	gotF, err = f.s.FleetSamples(ctx, tn.ID, time.Time{}, 0)
	f.must(t, err, "FleetSamples after prune")
	f.equal(t, "FleetSamples after prune", gotF, fleet[1:])
	got, err = f.s.DeviceSamples(ctx, other.ID, od.ID, time.Time{}, 0)
	f.must(t, err, "DeviceSamples of the other tenant after prune")
	f.equal(t, "other tenant's samples after prune", got, samples[4:])

	f.must(t, f.s.DeleteDevice(ctx, tn.ID, d.ID), "DeleteDevice")
	got, err = f.s.DeviceSamples(ctx, tn.ID, d.ID, time.Time{}, 0)
	f.must(t, err, "DeviceSamples after DeleteDevice")
	if len(got) != 0 {
		t.Errorf("%s: samples of a deleted device remain: %v", f.s.Backend(), got)
	}
	got, err = f.s.DeviceSamples(ctx, tn.ID, d2.ID, time.Time{}, 0)
	f.must(t, err, "DeviceSamples of the other device")
	f.equal(t, "the other device's samples after DeleteDevice", got, samples[3:4])
}
