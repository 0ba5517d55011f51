package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/espadmin/espadmin/store"
)

func fullMetadata(n int) store.DeviceMetadata {
	return store.DeviceMetadata{
		FirmwareVersion: "v-1.4.0",
		ProjectName:     "weather",
		ChipModel:       "ESP32-S3",
		ChipRevision:    3,
		IDFVersion:      "v5.2.1",
		MAC:             "24:6f:28:aa:bb:cc",
		IP:              "10.0.0.42",
		RSSI:            -67,
		FreeHeap:        183_456 + int64(n),
		UptimeSeconds:   86_400 * 3,
		ResetReason:     "ESP_RST_POWERON",
		ConfigVersion:   7,
		ProtocolVersion: 1,
		UpdatedAt:       at(30 + n),

		LimitCommandBytes: 4608 + int64(n),
		LimitConfigBytes:  4096,
	}
}

func fullDevice(f *fixture, tenantID, projectID string) store.Device {
	return store.Device{
		ID:                   f.id(),
		TenantID:             tenantID,
		Name:                 "Kitchen Sensor " + f.id()[20:],
		ProjectID:            projectID,
		Tags:                 []string{"indoor", "floor-2", "beta"},
		SecretHash:           f.hash(),
		KeySealed:            []byte{0x05, 0x04, 0x03, 0x02, 0x01, 0x00},
		Disabled:             true,
		CredentialsRotatedAt: at(23),
		Presence:             store.Presence{Online: true, ChangedAt: at(24), LastSeenAt: at(25)},
		Metadata:             fullMetadata(0),
		ConfigSync: store.ConfigSync{
			DesiredVersion: 8,
			DesiredHash:    "sha256:abcdef",
			AppliedVersion: 7,
			State:          store.ConfigFailed,
			Error:          "nvs: no space",
			UpdatedAt:      at(26),
		},
		CreatedAt: at(27),
		UpdatedAt: at(28),
	}
}

func (f *fixture) device(t *testing.T, tenantID, projectID string) store.Device {
	t.Helper()
	d := fullDevice(f, tenantID, projectID)
	f.must(t, f.s.CreateDevice(t.Context(), &d), "CreateDevice")
	return d
}

func testDevice(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"RoundTrip", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			p := f.project(t, tn.ID)
			in := fullDevice(f, tn.ID, p.ID)
			want := in
			f.must(t, f.s.CreateDevice(ctx, &in), "CreateDevice")
			got, err := f.s.Device(ctx, tn.ID, want.ID)
			f.must(t, err, "Device")
			f.equal(t, "Device after CreateDevice", got, want)

			bare := store.Device{ID: f.id(), TenantID: tn.ID, Name: "bare", SecretHash: f.hash()}
			f.must(t, f.s.CreateDevice(ctx, &bare), "CreateDevice with only the required fields")
			got, err = f.s.Device(ctx, tn.ID, bare.ID)
			f.must(t, err, "Device")
			f.equal(t, "bare Device after CreateDevice", got, bare)
		}},
		{"IDConflictAcrossTenants", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			a, b := f.tenant(t), f.tenant(t)
			d := f.device(t, a.ID, "")
			dup := fullDevice(f, b.ID, "")
			dup.ID = d.ID
			f.wantErr(t, f.s.CreateDevice(ctx, &dup), store.ErrConflict, "CreateDevice with an ID taken in another tenant")
			dup.TenantID = a.ID
			f.wantErr(t, f.s.CreateDevice(ctx, &dup), store.ErrConflict, "CreateDevice with an ID taken in the tenant")
		}},
		{"UpdateSavesOnlyItsFields", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			p, p2 := f.project(t, tn.ID), f.project(t, tn.ID)
			d := f.device(t, tn.ID, p.ID)
			upd := fullDevice(f, tn.ID, p2.ID) // every field different
			upd.ID = d.ID
			upd.Name = "Renamed"
			upd.Tags = []string{"outdoor"}
			upd.Disabled = false
			f.must(t, f.s.UpdateDevice(ctx, &upd), "UpdateDevice")
			got, err := f.s.Device(ctx, tn.ID, d.ID)
			f.must(t, err, "Device")
			want := d
			want.Name, want.ProjectID, want.Tags, want.Disabled = "Renamed", p2.ID, []string{"outdoor"}, false
			want.UpdatedAt = upd.UpdatedAt
			f.equal(t, "Device after UpdateDevice", got, want)
			if upd.UpdatedAt.IsZero() {
				t.Errorf("%s: UpdateDevice left UpdatedAt zero", f.s.Backend())
			}

			// Unlink and clear tags.
			want.ProjectID, want.Tags = "", nil
			upd = want
			f.must(t, f.s.UpdateDevice(ctx, &upd), "UpdateDevice")
			got, err = f.s.Device(ctx, tn.ID, d.ID)
			f.must(t, err, "Device")
			want.UpdatedAt = upd.UpdatedAt
			f.equal(t, "Device after UpdateDevice unlinking", got, want)
		}},
		{"Credentials", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			d := f.device(t, tn.ID, "")
			auth, err := f.s.DeviceAuth(ctx, d.ID)
			f.must(t, err, "DeviceAuth")
			f.equal(t, "DeviceAuth", auth, store.DeviceAuth{DeviceID: d.ID, TenantID: tn.ID, SecretHash: d.SecretHash, Disabled: true})

			secret, key := f.hash(), []byte("new sealed key")
			f.must(t, f.s.SetDeviceCredentials(ctx, tn.ID, d.ID, secret, key, at(90)), "SetDeviceCredentials")
			got, err := f.s.Device(ctx, tn.ID, d.ID)
			f.must(t, err, "Device")
			want := d
			want.SecretHash, want.KeySealed, want.CredentialsRotatedAt = secret, key, at(90)
			want.UpdatedAt = got.UpdatedAt // a rotation may count as an update
			f.equal(t, "Device after SetDeviceCredentials", got, want)
			auth, err = f.s.DeviceAuth(ctx, d.ID)
			f.must(t, err, "DeviceAuth")
			f.equal(t, "DeviceAuth after SetDeviceCredentials", auth, store.DeviceAuth{DeviceID: d.ID, TenantID: tn.ID, SecretHash: secret, Disabled: true})

			_, err = f.s.DeviceAuth(ctx, f.id())
			f.wantErr(t, err, store.ErrNotFound, "DeviceAuth of an unknown device")
		}},
		{"Presence", testPresence},
		{"MetadataAndConfigSync", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			d := f.device(t, tn.ID, "")
			m := fullMetadata(5)
			m.FirmwareVersion, m.IP = "v-2.0.0", "10.0.0.43"
			f.must(t, f.s.SetDeviceMetadata(ctx, tn.ID, d.ID, m), "SetDeviceMetadata")
			cs := store.ConfigSync{DesiredVersion: 9, DesiredHash: "sha256:99", AppliedVersion: 9, State: store.ConfigInSync, UpdatedAt: at(91)}
			f.must(t, f.s.SetDeviceConfigSync(ctx, tn.ID, d.ID, cs), "SetDeviceConfigSync")
			got, err := f.s.Device(ctx, tn.ID, d.ID)
			f.must(t, err, "Device")
			want := d
			want.Metadata, want.ConfigSync = m, cs
			want.UpdatedAt = got.UpdatedAt
			f.equal(t, "Device after SetDeviceMetadata and SetDeviceConfigSync", got, want)
		}},
		{"ConcurrentWriters", testDeviceConcurrentWriters},
		{"TouchDevices", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			d1, d2, d3 := f.device(t, tn.ID, ""), f.device(t, tn.ID, ""), f.device(t, tn.ID, "")
			f.must(t, f.s.TouchDevices(ctx, tn.ID, []string{d1.ID, d2.ID}, at(200)), "TouchDevices")
			for _, c := range []struct {
				d    store.Device
				seen int
			}{{d1, 200}, {d2, 200}, {d3, 25}} {
				got, err := f.s.Device(ctx, tn.ID, c.d.ID)
				f.must(t, err, "Device")
				want := c.d.Presence
				want.LastSeenAt = at(c.seen)
				f.equal(t, "Presence after TouchDevices", got.Presence, want)
			}
			// Forward only: an older time leaves LastSeenAt alone.
			f.must(t, f.s.TouchDevices(ctx, tn.ID, []string{d1.ID}, at(150)), "TouchDevices with an older time")
			got, err := f.s.Device(ctx, tn.ID, d1.ID)
			f.must(t, err, "Device")
			if !got.Presence.LastSeenAt.Equal(at(200)) {
				t.Errorf("%s: TouchDevices with an older time moved LastSeenAt back to %s", f.s.Backend(), fmtTime(got.Presence.LastSeenAt))
			}
			f.must(t, f.s.TouchDevices(ctx, tn.ID, nil, at(300)), "TouchDevices with no IDs")
		}},
		{"Filters", testDeviceFilters},
		{"Sort", testDeviceSort},
		{"Missing", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			id := f.id()
			_, err := f.s.Device(ctx, tn.ID, id)
			f.wantErr(t, err, store.ErrNotFound, "Device of a missing ID")
			d := fullDevice(f, tn.ID, "")
			f.wantErr(t, f.s.UpdateDevice(ctx, &d), store.ErrNotFound, "UpdateDevice of a missing device")
			f.wantErr(t, f.s.DeleteDevice(ctx, tn.ID, id), store.ErrNotFound, "DeleteDevice of a missing device")
			f.wantErr(t, f.s.SetDeviceCredentials(ctx, tn.ID, id, f.hash(), nil, at(1)), store.ErrNotFound, "SetDeviceCredentials of a missing device")
			f.wantErr(t, f.s.SetDevicePresence(ctx, tn.ID, id, store.Presence{Online: true, ChangedAt: at(1), LastSeenAt: at(1)}), store.ErrNotFound, "SetDevicePresence of a missing device")
			f.wantErr(t, f.s.SetDeviceMetadata(ctx, tn.ID, id, fullMetadata(1)), store.ErrNotFound, "SetDeviceMetadata of a missing device")
			f.wantErr(t, f.s.SetDeviceConfigSync(ctx, tn.ID, id, store.ConfigSync{State: store.ConfigPending}), store.ErrNotFound, "SetDeviceConfigSync of a missing device")
		}},
		{"Delete", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			d, keep := f.device(t, tn.ID, ""), f.device(t, tn.ID, "")
			f.must(t, f.s.DeleteDevice(ctx, tn.ID, d.ID), "DeleteDevice")
			_, err := f.s.Device(ctx, tn.ID, d.ID)
			f.wantErr(t, err, store.ErrNotFound, "Device after DeleteDevice")
			_, err = f.s.DeviceAuth(ctx, d.ID)
			f.wantErr(t, err, store.ErrNotFound, "DeviceAuth after DeleteDevice")
			got, err := f.s.Device(ctx, tn.ID, keep.ID)
			f.must(t, err, "Device")
			f.equal(t, "other Device after DeleteDevice", got, keep)
		}},
	})
}

func testPresence(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	d := f.device(t, tn.ID, "") // presence changed at at(24)
	read := func() store.Presence {
		t.Helper()
		got, err := f.s.Device(ctx, tn.ID, d.ID)
		f.must(t, err, "Device")
		return got.Presence
	}
	off := store.Presence{Online: false, ChangedAt: at(60), LastSeenAt: at(59)}
	f.must(t, f.s.SetDevicePresence(ctx, tn.ID, d.ID, off), "SetDevicePresence")
	f.equal(t, "Presence after SetDevicePresence", read(), off)

	stale := store.Presence{Online: true, ChangedAt: at(50), LastSeenAt: at(50)}
	if err := f.s.SetDevicePresence(ctx, tn.ID, d.ID, stale); err != nil && !errors.Is(err, store.ErrConflict) {
		t.Errorf("%s: SetDevicePresence with an older ChangedAt: %v, want nil (ignored) or ErrConflict", f.s.Backend(), err)
	}
	f.equal(t, "Presence after an older SetDevicePresence", read(), off)

	on := store.Presence{Online: true, ChangedAt: at(61), LastSeenAt: at(61)}
	f.must(t, f.s.SetDevicePresence(ctx, tn.ID, d.ID, on), "SetDevicePresence")
	f.equal(t, "Presence after a newer SetDevicePresence", read(), on)

	// Presence leaves the rest of the device alone.
	got, err := f.s.Device(ctx, tn.ID, d.ID)
	f.must(t, err, "Device")
	want := d
	want.Presence = on
	want.UpdatedAt = got.UpdatedAt
	f.equal(t, "Device after SetDevicePresence", got, want)
}

// testDeviceConcurrentWriters runs the broker's writers against one device at once: presence
// from two goroutines (one of them sending its reports newest first, so most of them are
// stale on arrival), metadata and config state. Each writer touches only its own fields, so
// none may lose another's update.
func testDeviceConcurrentWriters(t *testing.T, f *fixture) {
	if !f.isolated(t) {
		return
	}
	ctx := t.Context()
	tn := f.tenant(t)
	d := f.device(t, tn.ID, "")
	const n = 50
	presence := func(i int) store.Presence {
		return store.Presence{Online: i%2 == 0, ChangedAt: at(1000 + i), LastSeenAt: at(1000 + i)}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	writer := func(fn func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := fn(i); err != nil {
					errs <- err
				}
			}
		}()
	}
	writer(func(i int) error { // presence, oldest first: ChangedAt 1000, 1002, …, 1098
		return f.s.SetDevicePresence(ctx, tn.ID, d.ID, presence(2*i))
	})
	writer(func(i int) error { // presence, newest first: 1099, 1097, …, 1001
		err := f.s.SetDevicePresence(ctx, tn.ID, d.ID, presence(2*(n-1-i)+1))
		if errors.Is(err, store.ErrConflict) {
			return nil // a stale report may be refused rather than ignored
		}
		return err
	})
	writer(func(i int) error {
		return f.s.SetDeviceMetadata(ctx, tn.ID, d.ID, fullMetadata(i))
	})
	writer(func(i int) error {
		return f.s.SetDeviceConfigSync(ctx, tn.ID, d.ID, store.ConfigSync{
			DesiredVersion: int64(i + 1), DesiredHash: fmt.Sprint("h", i), AppliedVersion: int64(i),
			State: store.ConfigPending, UpdatedAt: at(2000 + i),
		})
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("%s: concurrent device writer: %v", f.s.Backend(), err)
	}
	got, err := f.s.Device(ctx, tn.ID, d.ID)
	f.must(t, err, "Device")
	want := d
	want.Presence = presence(2*n - 1) // the newest ChangedAt
	want.Metadata = fullMetadata(n - 1)
	want.ConfigSync = store.ConfigSync{DesiredVersion: n, DesiredHash: fmt.Sprint("h", n-1), AppliedVersion: n - 1, State: store.ConfigPending, UpdatedAt: at(2000 + n - 1)}
	want.UpdatedAt = got.UpdatedAt
	f.equal(t, "Device after concurrent presence, metadata and config writers", got, want)
}

func testDeviceFilters(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	p, p2 := f.project(t, tn.ID), f.project(t, tn.ID)
	mk := func(name, project string, tags []string, online bool, fw string) store.Device {
		d := fullDevice(f, tn.ID, project)
		d.Name, d.Tags, d.Presence.Online, d.Metadata.FirmwareVersion = name, tags, online, fw
		f.must(t, f.s.CreateDevice(ctx, &d), "CreateDevice")
		return d
	}
	d1 := mk("Kitchen Sensor", p.ID, []string{"sensor", "floor-1"}, true, "v-1.0.0")
	d2 := mk("garage door", "", []string{"floor-1"}, false, "v-2.0.0")
	d2.Disabled = false
	f.must(t, f.s.UpdateDevice(ctx, &d2), "UpdateDevice enable")
	d3 := mk("KITCHEN light", p.ID, nil, true, "v-2.0.0")
	d4 := mk("attic", p2.ID, []string{"sensors"}, false, "v-1.0.0")
	other := f.tenant(t) // another tenant's devices never appear
	foreign := f.device(t, other.ID, "")
	// Config states: d1 pending, d2 in sync, d3 and d4 failed (as fullDevice makes them).
	for _, c := range []struct {
		d     *store.Device
		state store.ConfigSyncState
	}{{&d1, store.ConfigPending}, {&d2, store.ConfigInSync}} {
		cs := c.d.ConfigSync
		cs.State = c.state
		f.must(t, f.s.SetDeviceConfigSync(ctx, tn.ID, c.d.ID, cs), "SetDeviceConfigSync")
		got, err := f.s.Device(ctx, tn.ID, c.d.ID)
		f.must(t, err, "Device")
		*c.d = got
	}

	id := func(d store.Device) string { return d.ID }
	cases := []struct {
		name   string
		filter store.DeviceFilter
		want   []store.Device
	}{
		{"none", store.DeviceFilter{}, []store.Device{d1, d2, d3, d4}},
		{"project", store.DeviceFilter{ProjectID: p.ID}, []store.Device{d1, d3}},
		{"other project", store.DeviceFilter{ProjectID: p2.ID}, []store.Device{d4}},
		{"tag", store.DeviceFilter{Tag: "floor-1"}, []store.Device{d1, d2}},
		{"tag exact, not a prefix", store.DeviceFilter{Tag: "sensor"}, []store.Device{d1}},
		{"tag unknown", store.DeviceFilter{Tag: "floor"}, nil},
		{"online", store.DeviceFilter{Online: ptr(true)}, []store.Device{d1, d3}},
		{"offline", store.DeviceFilter{Online: ptr(false)}, []store.Device{d2, d4}},
		{"firmware", store.DeviceFilter{FirmwareVersion: "v-2.0.0"}, []store.Device{d2, d3}},
		{"search name, case-insensitive", store.DeviceFilter{Search: "kitchen"}, []store.Device{d1, d3}},
		{"search name, upper case", store.DeviceFilter{Search: "GARAGE"}, []store.Device{d2}},
		{"search name substring", store.DeviceFilter{Search: "en li"}, []store.Device{d3}},
		{"search full ID", store.DeviceFilter{Search: d2.ID}, []store.Device{d2}},
		{"search ID prefix", store.DeviceFilter{Search: d1.ID[:20]}, []store.Device{d1, d2, d3, d4}},
		{"search no match", store.DeviceFilter{Search: "zzqq"}, nil},
		{"project and online", store.DeviceFilter{ProjectID: p.ID, Online: ptr(true), Tag: "sensor"}, []store.Device{d1}},
		{"tag and firmware", store.DeviceFilter{Tag: "floor-1", FirmwareVersion: "v-2.0.0"}, []store.Device{d2}},
		{"enabled", store.DeviceFilter{Disabled: ptr(false)}, []store.Device{d2}},
		{"disabled", store.DeviceFilter{Disabled: ptr(true)}, []store.Device{d1, d3, d4}},
		{"IDs", store.DeviceFilter{IDs: []string{d4.ID, d2.ID}}, []store.Device{d2, d4}},
		{"IDs, unknown and another tenant's left out", store.DeviceFilter{IDs: []string{d3.ID, "nosuchdevice", foreign.ID}}, []store.Device{d3}},
		{"IDs and online", store.DeviceFilter{IDs: []string{d1.ID, d2.ID}, Online: ptr(false)}, []store.Device{d2}},
		{"config not in sync", store.DeviceFilter{ConfigStates: []store.ConfigSyncState{store.ConfigPending, store.ConfigFailed}}, []store.Device{d1, d3, d4}},
		{"config in sync", store.DeviceFilter{ConfigStates: []store.ConfigSyncState{store.ConfigInSync}}, []store.Device{d2}},
		{"config pending in a project", store.DeviceFilter{ConfigStates: []store.ConfigSyncState{store.ConfigPending}, ProjectID: p.ID}, []store.Device{d1}},
	}
	for _, c := range cases {
		page, err := f.s.ListDevices(ctx, tn.ID, c.filter, store.ListOptions{})
		f.must(t, err, "ListDevices %s", c.name)
		f.equalKeys(t, "ListDevices filter "+c.name, keys(page.Items, id), keys(c.want, id))
		n, err := f.s.CountDevices(ctx, tn.ID, c.filter)
		f.must(t, err, "CountDevices %s", c.name)
		if n != int64(len(c.want)) {
			t.Errorf("%s: CountDevices filter %s = %d, want %d", f.s.Backend(), c.name, n, len(c.want))
		}
	}
	counts, err := f.s.DeviceCounts(ctx, tn.ID)
	f.must(t, err, "DeviceCounts")
	want := store.DeviceCounts{Total: 4, Online: 2, Disabled: 3, ByFirmware: map[string]int64{"v-1.0.0": 2, "v-2.0.0": 2}}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("%s: DeviceCounts = %+v, want %+v", f.s.Backend(), counts, want)
	}
	// Listed devices carry every field.
	page, err := f.s.ListDevices(ctx, tn.ID, store.DeviceFilter{Search: strings.ToUpper("Sensor")}, store.ListOptions{})
	f.must(t, err, "ListDevices")
	if len(page.Items) == 1 {
		d1.UpdatedAt = page.Items[0].UpdatedAt
		f.equal(t, "ListDevices item", page.Items[0], d1)
	} else {
		t.Errorf("%s: ListDevices search SENSOR = %d devices, want 1", f.s.Backend(), len(page.Items))
	}
}

// testDeviceSort pages through every sort order of the device list in both directions: each
// page follows the previous one without gaps or repeats, ties break by ID, and a device with
// no project or never seen sorts first ascending.
func testDeviceSort(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	p := f.project(t, tn.ID)
	type spec struct {
		name, fw string
		project  bool
		online   bool
		seen     int // minutes; 0 is never seen
		tags     []string
	}
	specs := []spec{
		{"delta", "v-2.0.0", true, true, 50, []string{"b"}},
		{"alpha", "v-1.0.0", false, false, 0, []string{"a"}},
		{"echo", "v-1.0.0", true, false, 40, nil},
		{"charlie", "v-3.0.0", false, true, 60, []string{"c"}},
		{"bravo", "v-1.0.0", true, true, 0, []string{"a"}},
	}
	devs := make([]store.Device, len(specs))
	for i, sp := range specs {
		d := store.Device{ID: f.id(), TenantID: tn.ID, Name: sp.name, Tags: sp.tags, SecretHash: f.hash(),
			Presence: store.Presence{Online: sp.online}, Metadata: store.DeviceMetadata{FirmwareVersion: sp.fw},
			CreatedAt: at(100 - i)}
		if sp.project {
			d.ProjectID = p.ID
		}
		if sp.seen > 0 {
			d.Presence.ChangedAt, d.Presence.LastSeenAt = at(sp.seen), at(sp.seen)
		}
		f.must(t, f.s.CreateDevice(ctx, &d), "CreateDevice")
		devs[i] = d
	}
	other := f.tenant(t)
	f.device(t, other.ID, "")
	byName := func(names ...string) []string {
		var ids []string
		for _, n := range names {
			for _, d := range devs {
				if d.Name == n {
					ids = append(ids, d.ID)
				}
			}
		}
		return ids
	}
	// ties (same value) break by ID, which is creation order: delta, alpha, echo, charlie, bravo.
	cases := []struct {
		column string
		want   []string
	}{
		{store.SortDeviceName, byName("alpha", "bravo", "charlie", "delta", "echo")},
		{store.SortDeviceFirmware, byName("alpha", "echo", "bravo", "delta", "charlie")},
		{store.SortDeviceStatus, byName("alpha", "echo", "delta", "charlie", "bravo")},
		{store.SortDeviceProject, byName("alpha", "charlie", "delta", "echo", "bravo")},
		{store.SortDeviceLastSeen, byName("alpha", "bravo", "echo", "delta", "charlie")},
		{store.SortDeviceCreated, byName("bravo", "charlie", "echo", "alpha", "delta")},
		{store.SortDeviceID, byName("delta", "alpha", "echo", "charlie", "bravo")},
		{"", byName("delta", "alpha", "echo", "charlie", "bravo")},
	}
	for _, c := range cases {
		for _, desc := range []bool{false, true} {
			want := c.want
			if desc {
				want = slices.Clone(want)
				slices.Reverse(want)
			}
			var got []string
			opts := store.ListOptions{Limit: 2}
			for range 5 {
				page, err := f.s.ListDevices(ctx, tn.ID, store.DeviceFilter{Sort: store.DeviceSort{Column: c.column, Desc: desc}}, opts)
				f.must(t, err, "ListDevices sort %q desc=%v", c.column, desc)
				for _, d := range page.Items {
					got = append(got, d.ID)
				}
				if page.NextCursor == "" {
					break
				}
				opts.Cursor = page.NextCursor
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: ListDevices sorted by %q desc=%v = %v, want %v", f.s.Backend(), c.column, desc, got, want)
			}
		}
	}
	// A filter and a sort together.
	page, err := f.s.ListDevices(ctx, tn.ID, store.DeviceFilter{FirmwareVersion: "v-1.0.0",
		Sort: store.DeviceSort{Column: store.SortDeviceName, Desc: true}}, store.ListOptions{})
	f.must(t, err, "ListDevices filtered and sorted")
	if got := keys(page.Items, func(d store.Device) string { return d.ID }); !slices.Equal(got, byName("echo", "bravo", "alpha")) {
		t.Errorf("%s: ListDevices firmware v-1.0.0 by name desc = %v", f.s.Backend(), got)
	}
	if _, err := f.s.ListDevices(ctx, tn.ID, store.DeviceFilter{Sort: store.DeviceSort{Column: "secret_hash"}}, store.ListOptions{}); err == nil {
		t.Errorf("%s: ListDevices sorted by an unknown column: no error", f.s.Backend())
	}
}
