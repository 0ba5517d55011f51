package storetest

import (
	"testing"

	"github.com/espadmin/espadmin/store"
)

func fullConfigEntry(tenantID string, scope store.ConfigScope, scopeID, key string) store.ConfigEntry {
	return store.ConfigEntry{
		TenantID:  tenantID,
		Scope:     scope,
		ScopeID:   scopeID,
		Key:       key,
		Type:      store.TypeJSON,
		Value:     `{"interval":30,"unit":"s"}`,
		UpdatedBy: "user-" + key,
		UpdatedAt: at(40),
	}
}

func fullConfigVersion(tenantID, deviceID string, version int64) store.ConfigVersion {
	return store.ConfigVersion{
		TenantID:  tenantID,
		DeviceID:  deviceID,
		Version:   version,
		Hash:      "sha256:0011223344",
		Snapshot:  `{"entries":[{"key":"wifi_ssid","type":"string","value":"\"home\""}]}`,
		Reason:    "edit",
		CreatedBy: "user-1",
		CreatedAt: at(41),
	}
}

func testConfig(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"Entries", testConfigEntries},
		{"StaleBatchWritesNothing", testConfigStaleBatch},
		{"Delete", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			d := f.device(t, tn.ID, "")
			es := []store.ConfigEntry{fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "led")}
			f.must(t, f.s.PutConfigEntries(ctx, es), "PutConfigEntries")
			es[0].Value = "2"
			f.must(t, f.s.PutConfigEntries(ctx, es), "PutConfigEntries")
			if es[0].Version != 2 {
				t.Fatalf("%s: version after two puts = %d, want 2", f.s.Backend(), es[0].Version)
			}
			f.wantErr(t, f.s.DeleteConfigEntry(ctx, tn.ID, store.ScopeDevice, d.ID, "led", 1), store.ErrConflict, "DeleteConfigEntry with a stale version")
			got, err := f.s.ConfigEntry(ctx, tn.ID, store.ScopeDevice, d.ID, "led")
			f.must(t, err, "ConfigEntry after a refused delete")
			f.equal(t, "ConfigEntry after a refused delete", got, es[0])
			f.must(t, f.s.DeleteConfigEntry(ctx, tn.ID, store.ScopeDevice, d.ID, "led", 2), "DeleteConfigEntry")
			_, err = f.s.ConfigEntry(ctx, tn.ID, store.ScopeDevice, d.ID, "led")
			f.wantErr(t, err, store.ErrNotFound, "ConfigEntry after DeleteConfigEntry")
			f.wantErr(t, f.s.DeleteConfigEntry(ctx, tn.ID, store.ScopeDevice, d.ID, "led", 2), store.ErrNotFound, "DeleteConfigEntry of a missing key")
			// A deleted key can be created again from version 0 and starts over at 1.
			es[0].Version = 0
			f.must(t, f.s.PutConfigEntries(ctx, es), "PutConfigEntries after delete")
			if es[0].Version != 1 {
				t.Errorf("%s: version of a re-created key = %d, want 1", f.s.Backend(), es[0].Version)
			}
		}},
		{"Versions", testConfigVersions},
	})
}

func testConfigEntries(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	p := f.project(t, tn.ID)
	d := f.device(t, tn.ID, p.ID)

	// Written out of key order; read back in key order.
	batch := []store.ConfigEntry{
		fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "wifi_ssid"),
		fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "api_key"),
		fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "interval"),
	}
	batch[0].Type, batch[0].Value = store.TypeString, `"home"`
	batch[1].Type, batch[1].Value, batch[1].Secret, batch[1].ValueSealed = store.TypeString, "", true, []byte{0xaa, 0xbb, 0x00, 0xcc}
	batch[2].Type, batch[2].Value = store.TypeInt, "30"
	f.must(t, f.s.PutConfigEntries(ctx, batch), "PutConfigEntries")
	for _, e := range batch {
		if e.Version != 1 {
			t.Errorf("%s: Version of new key %q after PutConfigEntries = %d, want 1", f.s.Backend(), e.Key, e.Version)
		}
		got, err := f.s.ConfigEntry(ctx, tn.ID, store.ScopeDevice, d.ID, e.Key)
		f.must(t, err, "ConfigEntry %q", e.Key)
		f.equal(t, "ConfigEntry "+e.Key+" after PutConfigEntries", got, e)
	}
	list, err := f.s.ConfigEntries(ctx, tn.ID, store.ScopeDevice, d.ID)
	f.must(t, err, "ConfigEntries")
	f.equalKeys(t, "ConfigEntries order", keys(list, func(e store.ConfigEntry) string { return e.Key }), []string{"api_key", "interval", "wifi_ssid"})
	if len(list) == 3 {
		f.equal(t, "ConfigEntries[0]", list[0], batch[1])
	}

	// The same key in the project scope is a different entry.
	proj := []store.ConfigEntry{fullConfigEntry(tn.ID, store.ScopeProject, p.ID, "interval")}
	proj[0].Type, proj[0].Value = store.TypeFloat, "12.5"
	f.must(t, f.s.PutConfigEntries(ctx, proj), "PutConfigEntries (project scope)")
	if proj[0].Version != 1 {
		t.Errorf("%s: Version of a new project key = %d, want 1", f.s.Backend(), proj[0].Version)
	}
	list, err = f.s.ConfigEntries(ctx, tn.ID, store.ScopeProject, p.ID)
	f.must(t, err, "ConfigEntries (project scope)")
	f.equalKeys(t, "ConfigEntries (project scope)", keys(list, func(e store.ConfigEntry) string { return e.Key }), []string{"interval"})

	// Versions increment by one per change.
	upd := []store.ConfigEntry{batch[2]}
	for want := int64(2); want <= 4; want++ {
		upd[0].Value = "4" + string(rune('0'+want))
		upd[0].UpdatedBy = "user-x"
		upd[0].UpdatedAt = at(int(want) * 10)
		f.must(t, f.s.PutConfigEntries(ctx, upd), "PutConfigEntries update")
		if upd[0].Version != want {
			t.Errorf("%s: Version after update = %d, want %d", f.s.Backend(), upd[0].Version, want)
		}
	}
	got, err := f.s.ConfigEntry(ctx, tn.ID, store.ScopeDevice, d.ID, "interval")
	f.must(t, err, "ConfigEntry")
	f.equal(t, "ConfigEntry after updates", got, upd[0])
	got, err = f.s.ConfigEntry(ctx, tn.ID, store.ScopeProject, p.ID, "interval")
	f.must(t, err, "ConfigEntry (project scope)")
	f.equal(t, "project ConfigEntry after device-scope updates", got, proj[0])

	// Version 0 means "must not exist yet".
	again := []store.ConfigEntry{fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "wifi_ssid")}
	f.wantErr(t, f.s.PutConfigEntries(ctx, again), store.ErrConflict, "PutConfigEntries with version 0 on an existing key")

	_, err = f.s.ConfigEntry(ctx, tn.ID, store.ScopeDevice, d.ID, "nope")
	f.wantErr(t, err, store.ErrNotFound, "ConfigEntry of a missing key")
	empty, err := f.s.ConfigEntries(ctx, tn.ID, store.ScopeDevice, f.id())
	f.must(t, err, "ConfigEntries of an empty scope")
	if len(empty) != 0 {
		t.Errorf("%s: ConfigEntries of an empty scope = %+v", f.s.Backend(), empty)
	}
}

func testConfigStaleBatch(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	d := f.device(t, tn.ID, "")
	base := []store.ConfigEntry{
		fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "a"),
		fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "b"),
	}
	f.must(t, f.s.PutConfigEntries(ctx, base), "PutConfigEntries")
	f.must(t, f.s.PutConfigEntries(ctx, base[1:]), "PutConfigEntries") // b is at version 2
	before, err := f.s.ConfigEntries(ctx, tn.ID, store.ScopeDevice, d.ID)
	f.must(t, err, "ConfigEntries")

	cases := []struct {
		name  string
		batch func() []store.ConfigEntry
	}{
		{"stale version", func() []store.ConfigEntry {
			a, b, c := base[0], base[1], fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "c")
			a.Value, b.Value, b.Version = "1", "2", 1 // b is stale
			return []store.ConfigEntry{a, c, b}
		}},
		{"version 0 on an existing key", func() []store.ConfigEntry {
			a, b := base[0], fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "b")
			a.Value = "1"
			return []store.ConfigEntry{a, b, fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "c")}
		}},
		{"version on a missing key", func() []store.ConfigEntry {
			a, c := base[0], fullConfigEntry(tn.ID, store.ScopeDevice, d.ID, "c")
			a.Value, c.Version = "1", 1
			return []store.ConfigEntry{a, c}
		}},
	}
	for _, c := range cases {
		batch := c.batch()
		f.wantErr(t, f.s.PutConfigEntries(ctx, batch), store.ErrConflict, "PutConfigEntries, %s", c.name)
		after, err := f.s.ConfigEntries(ctx, tn.ID, store.ScopeDevice, d.ID)
		f.must(t, err, "ConfigEntries")
		f.equal(t, "entries after a refused batch ("+c.name+")", after, before)
	}
}

func testConfigVersions(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	d, other := f.device(t, tn.ID, ""), f.device(t, tn.ID, "")
	_, err := f.s.LatestConfigVersion(ctx, tn.ID, d.ID)
	f.wantErr(t, err, store.ErrNotFound, "LatestConfigVersion with no versions")

	var written []store.ConfigVersion
	for v := int64(1); v <= 3; v++ {
		cv := fullConfigVersion(tn.ID, d.ID, v)
		cv.Hash = "sha256:" + string(rune('a'+v))
		cv.CreatedAt = at(int(v))
		want := cv
		f.must(t, f.s.CreateConfigVersion(ctx, &cv), "CreateConfigVersion %d", v)
		written = append(written, want)
	}
	for _, want := range written {
		got, err := f.s.ConfigVersion(ctx, tn.ID, d.ID, want.Version)
		f.must(t, err, "ConfigVersion %d", want.Version)
		f.equal(t, "ConfigVersion after CreateConfigVersion", got, want)
	}
	latest, err := f.s.LatestConfigVersion(ctx, tn.ID, d.ID)
	f.must(t, err, "LatestConfigVersion")
	f.equal(t, "LatestConfigVersion", latest, written[2])

	dup := fullConfigVersion(tn.ID, d.ID, 2)
	dup.Reason = "rollback"
	f.wantErr(t, f.s.CreateConfigVersion(ctx, &dup), store.ErrConflict, "CreateConfigVersion with a used version")
	got, err := f.s.ConfigVersion(ctx, tn.ID, d.ID, 2)
	f.must(t, err, "ConfigVersion")
	f.equal(t, "ConfigVersion after a refused duplicate", got, written[1])

	// Two writers racing to the same version: exactly one wins.
	errs := concurrently(2, func(i int) error {
		cv := fullConfigVersion(tn.ID, d.ID, 4)
		cv.Reason = []string{"edit", "rotation"}[i]
		return f.s.CreateConfigVersion(ctx, &cv)
	})
	f.exactlyOne(t, "concurrent CreateConfigVersion of one version", errs, store.ErrConflict)

	// Version numbers are per device.
	cv := fullConfigVersion(tn.ID, other.ID, 2)
	f.must(t, f.s.CreateConfigVersion(ctx, &cv), "CreateConfigVersion of another device")
	latest, err = f.s.LatestConfigVersion(ctx, tn.ID, other.ID)
	f.must(t, err, "LatestConfigVersion of another device")
	f.equal(t, "LatestConfigVersion of another device", latest, cv)
	latest, err = f.s.LatestConfigVersion(ctx, tn.ID, d.ID)
	f.must(t, err, "LatestConfigVersion")
	if latest.Version != 4 {
		t.Errorf("%s: LatestConfigVersion = %d, want 4", f.s.Backend(), latest.Version)
	}

	_, err = f.s.ConfigVersion(ctx, tn.ID, d.ID, 99)
	f.wantErr(t, err, store.ErrNotFound, "ConfigVersion of a missing version")
}
