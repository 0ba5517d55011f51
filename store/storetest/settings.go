package storetest

import (
	"testing"

	"github.com/espadmin/espadmin/store"
)

func fullSettings(tenantID string) store.TenantSettings {
	return store.TenantSettings{
		TenantID: tenantID,
		Broker: store.BrokerSettings{
			Mode:           store.BrokerExternal,
			URL:            "ssl://mqtt.example.com:8883",
			Username:       "espadmin-bridge",
			PasswordSealed: []byte{0x01, 0x00, 0xff, 0x7f},
			CACertPEM:      "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
			TopicRoot:      "acme/espadmin",
			ClientID:       "espadmin-1",
		},
		Bugsnag: store.BugsnagSettings{
			APIKeySealed: []byte{0xca, 0xfe},
			NotifyURL:    "https://notify.bugsnag.example.com",
			ReleaseStage: "production",
		},
		Version:   0,
		UpdatedAt: at(90),
		UpdatedBy: "user-admin",
	}
}

func testSettings(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"PutAndVersion", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			_, err := f.s.TenantSettings(ctx, tn.ID)
			f.wantErr(t, err, store.ErrNotFound, "TenantSettings never saved")

			s := fullSettings(tn.ID)
			f.must(t, f.s.PutTenantSettings(ctx, &s), "PutTenantSettings (first save, version 0)")
			if s.Version != 1 || s.UpdatedAt.IsZero() {
				t.Errorf("%s: after the first PutTenantSettings Version = %d UpdatedAt = %v, want 1 and a time", f.s.Backend(), s.Version, s.UpdatedAt)
			}
			got, err := f.s.TenantSettings(ctx, tn.ID)
			f.must(t, err, "TenantSettings")
			f.equal(t, "TenantSettings after PutTenantSettings", got, s)

			stale := fullSettings(tn.ID) // version 0 again: a second "first save"
			stale.Broker.Mode = store.BrokerBuiltin
			f.wantErr(t, f.s.PutTenantSettings(ctx, &stale), store.ErrConflict, "PutTenantSettings with version 0 when saved before")
			got, err = f.s.TenantSettings(ctx, tn.ID)
			f.must(t, err, "TenantSettings")
			f.equal(t, "TenantSettings after a refused put", got, s)

			// Replace every field, clearing some.
			upd := s
			upd.Broker = store.BrokerSettings{Mode: store.BrokerBuiltin}
			upd.Bugsnag = store.BugsnagSettings{ReleaseStage: "staging"}
			upd.UpdatedBy = "user-other"
			f.must(t, f.s.PutTenantSettings(ctx, &upd), "PutTenantSettings (second save)")
			if upd.Version != 2 {
				t.Errorf("%s: Version after the second PutTenantSettings = %d, want 2", f.s.Backend(), upd.Version)
			}
			got, err = f.s.TenantSettings(ctx, tn.ID)
			f.must(t, err, "TenantSettings")
			f.equal(t, "TenantSettings after the second PutTenantSettings", got, upd)

			old := s // version 1: stale now
			f.wantErr(t, f.s.PutTenantSettings(ctx, &old), store.ErrConflict, "PutTenantSettings with a stale version")
			future := upd
			future.Version = 7
			f.wantErr(t, f.s.PutTenantSettings(ctx, &future), store.ErrConflict, "PutTenantSettings with a version ahead of the stored one")
			got, err = f.s.TenantSettings(ctx, tn.ID)
			f.must(t, err, "TenantSettings")
			f.equal(t, "TenantSettings after refused puts", got, upd)

			// A first save must not claim a version that was never stored.
			tn2 := f.tenant(t)
			first := fullSettings(tn2.ID)
			first.Version = 3
			f.wantErr(t, f.s.PutTenantSettings(ctx, &first), store.ErrConflict, "first PutTenantSettings with version 3")
			_, err = f.s.TenantSettings(ctx, tn2.ID)
			f.wantErr(t, err, store.ErrNotFound, "TenantSettings after a refused first save")
		}},
		{"ConcurrentFirstSave", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			errs := concurrently(2, func(i int) error {
				s := fullSettings(tn.ID)
				s.UpdatedBy = []string{"admin-a", "admin-b"}[i]
				return f.s.PutTenantSettings(ctx, &s)
			})
			f.exactlyOne(t, "concurrent first PutTenantSettings", errs, store.ErrConflict)
			got, err := f.s.TenantSettings(ctx, tn.ID)
			f.must(t, err, "TenantSettings")
			if got.Version != 1 {
				t.Errorf("%s: Version after concurrent first saves = %d, want 1", f.s.Backend(), got.Version)
			}
		}},
	})
}
