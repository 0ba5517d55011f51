package devconfig

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
)

// syncStore keeps one device's config sync state; the rest of Store is not used here.
type syncStore struct {
	Store
	mu sync.Mutex
	cs store.ConfigSync
}

func (s *syncStore) Device(_ context.Context, tenantID, id string) (store.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return store.Device{TenantID: tenantID, ID: id, ConfigSync: s.cs}, nil
}

func (s *syncStore) SetDeviceConfigSync(_ context.Context, _, _ string, cs store.ConfigSync) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cs = cs
	return nil
}

// configCommand is a stored config command carrying version.
func configCommand(t *testing.T, version int64) store.Command {
	t.Helper()
	id := store.NewID()
	p, err := protocol.EncodeCommand(protocol.Command{ID: id, Name: protocol.CommandConfig, ExpiresAt: time.Now().Add(time.Hour).UnixMilli(),
		Config: &protocol.ConfigParams{Version: version, Hash: strings.Repeat("a", 64), Entries: []protocol.ConfigEntry{}}})
	if err != nil {
		t.Fatal(err)
	}
	return store.Command{ID: id, TenantID: "t1", DeviceID: "d1", Name: protocol.CommandConfig, Payload: string(p), State: store.CommandSucceeded}
}

// TestLateAckNeverMovesSyncBack: acks of config versions arriving out of order leave the
// device at the newest version it applied; a late ack of an older one changes nothing.
func TestLateAckNeverMovesSyncBack(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		order       []int64
		wantApplied int64
		wantState   store.ConfigSyncState
	}{
		{"in order", []int64{1, 4}, 4, store.ConfigInSync},
		{"late old ack", []int64{4, 1}, 4, store.ConfigInSync},
		{"late old acks", []int64{4, 2, 3, 1}, 4, store.ConfigInSync},
		{"older only", []int64{2, 1}, 2, store.ConfigPending},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := &syncStore{cs: store.ConfigSync{State: store.ConfigPending, DesiredVersion: 4}}
			s := New(Options{Store: st})
			for _, v := range tc.order {
				s.CommandAcked(context.Background(), configCommand(t, v), protocol.Ack{Result: protocol.ResultOK})
			}
			if st.cs.AppliedVersion != tc.wantApplied || st.cs.State != tc.wantState || st.cs.DesiredVersion != 4 {
				t.Errorf("after acks %v: %+v, want applied %d, state %s", tc.order, st.cs, tc.wantApplied, tc.wantState)
			}
		})
	}
}
