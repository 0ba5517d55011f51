package fleet

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
)

// brokerTable is a broker for the reconciler: a connection table and the messages published.
type brokerTable struct {
	loopBus
	connected map[string]bool
	mu        sync.Mutex
	published []messaging.Message
}

func (c *brokerTable) Online(id string) bool { return c.connected[id] }

func (c *brokerTable) Publish(_ context.Context, m messaging.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.published = append(c.published, m)
	return nil
}

// externalRouter puts every tenant on its own broker.
type externalRouter struct{}

func (externalRouter) Route(string) (messaging.Bus, string, bool) { return nil, "", true }

// TestReconcilePresence: of the devices stored online, exactly those the broker does not have
// connected get the retained offline status published on their behalf; devices stored offline
// and tenants on their own broker are left alone.
func TestReconcilePresence(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := openStore(t)
	kr, _ := seal.NewKeyring(bytes.Repeat([]byte{1}, 32))
	tn := store.Tenant{Slug: "acme", Name: "Acme"}
	if err := st.CreateTenant(ctx, &tn); err != nil {
		t.Fatal(err)
	}
	devs := NewDevices(DevicesOptions{Store: st, Keyring: kr, Hub: NewHub(nil)})
	ids := map[string]string{}
	for _, name := range []string{"connected", "gone", "offline"} {
		p, err := devs.Create(ctx, tn.ID, DeviceInput{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = p.Device.ID
		if name != "offline" {
			if err := st.SetDevicePresence(ctx, tn.ID, p.Device.ID, store.Presence{Online: true, ChangedAt: store.Now(), LastSeenAt: store.Now()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := &brokerTable{connected: map[string]bool{ids["connected"]: true}}

	n, err := NewPresenceReconciler(ReconcilerOptions{Store: st, Broker: b}).Reconcile(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want 1 device", n, err)
	}
	want := protocol.Uplink(protocol.DefaultRoot, ids["gone"], protocol.KindStatus)
	if len(b.published) != 1 || b.published[0].Topic != want || !b.published[0].Retain ||
		string(b.published[0].Payload) != protocol.WillPayload {
		t.Fatalf("published %+v, want the retained offline status on %s", b.published, want)
	}

	b.published = nil
	n, err = NewPresenceReconciler(ReconcilerOptions{Store: st, Broker: b, Router: externalRouter{}}).Reconcile(ctx)
	if err != nil || n != 0 || len(b.published) != 0 {
		t.Fatalf("Reconcile of a tenant on its own broker = %d, %v, published %+v; want nothing", n, err, b.published)
	}
}
