package devconfig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
	"github.com/espadmin/espadmin/store/sqlstore"
)

// failingDeletes fails the n-th DeleteConfigEntry made through its transactions.
type failingDeletes struct {
	store.Store
	failAt *int // 0: never
	calls  *int
}

var errDelete = errors.New("delete failed on purpose")

func (s failingDeletes) DeleteConfigEntry(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID, key string, version int64) error {
	*s.calls++
	if *s.calls == *s.failAt {
		return errDelete
	}
	return s.Store.DeleteConfigEntry(ctx, tenantID, scope, scopeID, key, version)
}

func (s failingDeletes) Atomic(ctx context.Context, fn func(tx store.Store) error) error {
	return s.Store.Atomic(ctx, func(tx store.Store) error {
		return fn(failingDeletes{Store: tx, failAt: s.failAt, calls: s.calls})
	})
}

// nullSender accepts every config command.
type nullSender struct{}

func (nullSender) SendSystem(_ context.Context, tenantID string, sc fleet.SystemCommand) (store.Command, error) {
	return store.Command{ID: store.NewID(), TenantID: tenantID, DeviceID: sc.DeviceID, State: store.CommandQueued}, nil
}

// TestRollbackAllOrNothing: a rollback that cannot apply all of its changes applies none of
// them and makes no version; once it can, the device's entries are the old version's.
func TestRollbackAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "config.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	tn := store.Tenant{Slug: "t", Name: "T"}
	if err := st.CreateTenant(ctx, &tn); err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	p, err := fleet.NewDevices(fleet.DevicesOptions{Store: st, Keyring: kr, Hub: fleet.NewHub(nil)}).Create(ctx, tn.ID, fleet.DeviceInput{Name: "d"})
	if err != nil {
		t.Fatal(err)
	}
	dev := p.Device
	failAt, calls := 0, 0
	svc := New(Options{Store: failingDeletes{Store: st, failAt: &failAt, calls: &calls}, Keyring: kr,
		FingerprintKey: bytes.Repeat([]byte{9}, 32), Commands: nullSender{}})

	put := func(key, value string, version int64) {
		t.Helper()
		_, err := svc.Put(ctx, tn.ID, store.ScopeDevice, dev.ID, []Input{{Key: key, Type: store.TypeInt, Value: json.RawMessage(value), Version: version}}, "u")
		if err != nil {
			t.Fatalf("Put %s=%s: %v", key, value, err)
		}
	}
	entries := func() map[string]string {
		t.Helper()
		es, err := st.ConfigEntries(ctx, tn.ID, store.ScopeDevice, dev.ID)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, e := range es {
			out[e.Key] = e.Value
		}
		return out
	}
	latest := func() store.ConfigVersion {
		t.Helper()
		v, err := st.LatestConfigVersion(ctx, tn.ID, dev.ID)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	put("a", "1", 0) // version 1: a=1
	put("b", "2", 0)
	put("a", "3", 1)
	put("c", "4", 0) // version 4: a=3 b=2 c=4
	before, top := entries(), latest()
	if top.Version != 4 {
		t.Fatalf("latest version %d, want 4", top.Version)
	}

	failAt = 2 // the second of the two deletes fails
	if _, err := svc.Rollback(ctx, tn.ID, dev.ID, 1, "u"); !errors.Is(err, errDelete) {
		t.Fatalf("Rollback with a failing delete = %v, want the store's error", err)
	}
	if got := entries(); !equalMaps(got, before) {
		t.Errorf("a failed rollback changed the entries to %v, want %v", got, before)
	}
	if v := latest(); v.Version != top.Version {
		t.Errorf("a failed rollback made version %d", v.Version)
	}

	failAt, calls = 0, 0
	if _, err := svc.Rollback(ctx, tn.ID, dev.ID, 1, "u"); err != nil {
		t.Fatal(err)
	}
	if got := entries(); !equalMaps(got, map[string]string{"a": "1"}) {
		t.Errorf("entries after the rollback = %v, want a=1", got)
	}
	if v := latest(); v.Version != 5 || v.Reason != ReasonRollback {
		t.Errorf("latest version after the rollback = %d (%s), want 5 (%s)", v.Version, v.Reason, ReasonRollback)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}
