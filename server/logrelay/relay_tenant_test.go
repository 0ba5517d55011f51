package logrelay

import (
	"bytes"
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/espadmin/espadmin/broker/bridge"
	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/broker/tenantbus"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
	"github.com/espadmin/espadmin/store/sqlstore"
	"github.com/espadmin/espadmin/tests/testkit/poll"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// TestRelayThroughTenantBroker: two replicas (each a tenantbus.Manager with its own bridge
// account, no embedded broker) route a tenant on Debian's Mosquitto. Each runs a shared
// subscription on the uplink as ingestion does, and a relay with the manager as its
// Router. A viewer of the same device on each replica receives every line the device
// publishes on the tenant's broker, in order, exactly once: the relay's per-device
// subscriptions are plain, not part of the share group.
func TestRelayThroughTenantBroker(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := sqlstore.Open(ctx, "sqlite://"+filepath.ToSlash(filepath.Join(t.TempDir(), "r.db")), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(bytes.Repeat([]byte{3}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	tenant := store.Tenant{Slug: "acme", Name: "Acme"}
	if err := st.CreateTenant(ctx, &tenant); err != nil {
		t.Fatal(err)
	}
	const device, devicePass = "dev-logs-1", "device-secret"
	mq := testsvc.Mosquitto(t, testsvc.MosquittoOptions{
		Devices: map[string]string{device: devicePass},
		Servers: map[string]string{"espadmin-a": "server-pass", "espadmin-b": "server-pass"},
	})
	sealed, err := kr.Seal([]byte("server-pass"), tenantbus.PasswordAD(tenant.ID))
	if err != nil {
		t.Fatal(err)
	}
	settings := store.TenantSettings{TenantID: tenant.ID, Broker: store.BrokerSettings{
		Mode: store.BrokerExternal, URL: mq.URL(), Username: "espadmin-" + tenantbus.ReplicaPlaceholder, PasswordSealed: sealed}}
	if err := st.PutTenantSettings(ctx, &settings); err != nil {
		t.Fatal(err)
	}

	type replica struct {
		brokers *tenantbus.Manager
		relay   *Relay
		shared  atomic.Int64 // messages the shared (ingestion-like) subscription received
	}
	replicas := map[string]*replica{"a": {}, "b": {}}
	for id, r := range replicas {
		r.brokers = tenantbus.New(tenantbus.Options{Store: st, Keyring: kr, ReplicaID: id,
			Bridge: bridge.Config{MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, ConnectTimeout: 3 * time.Second, AllowPrivate: true}})
		r.brokers.OnBridge(func(ctx context.Context, _, root string, bus messaging.Bus) error {
			_, err := bus.Subscribe(ctx, "$share/espadmin/"+protocol.UplinkFilter(root, ""), 1, func(messaging.Message) { r.shared.Add(1) })
			return err
		})
		if err := r.brokers.Load(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = r.brokers.Shutdown(sctx)
		})
		r.relay, _ = newRelay(t, nil, Options{Router: r.brokers})
	}
	for id, r := range replicas {
		poll.Wait(t, "bridge of replica "+id+" connected", func() bool {
			s, ok := r.brokers.State(tenant.ID)
			return ok && s.Status == bridge.StatusConnected
		})
	}
	viewers := map[string]*Viewer{}
	for id, r := range replicas {
		v, err := r.relay.Watch(ctx, tenant.ID, device, protocol.LevelDebug)
		if err != nil {
			t.Fatalf("watch on replica %s: %v", id, err)
		}
		t.Cleanup(v.Close)
		viewers[id] = v
	}
	// The relays subscribed on bridges that are connected: the SUBACKs came back before
	// Watch returned, so nothing the device publishes from now on can be missed.

	dev := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL()).SetClientID(device).
		SetUsername(device).SetPassword(devicePass).SetConnectTimeout(5 * time.Second))
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	t.Cleanup(func() { dev.Disconnect(100) })
	// The device publishes one batch at a time and waits until both viewers have it: the
	// bridge hands messages to subscriptions without keeping their order under a burst
	// (paho's SetOrderMatters(false) in package bridge), which is the bridge's property, not
	// the relay's routing tested here.
	const batches, perBatch = 20, 5
	for i := range batches {
		payload, err := protocol.EncodeLogBatch(batch(int64(i*perBatch), perBatch))
		if err != nil {
			t.Fatal(err)
		}
		tok := dev.Publish(protocol.Uplink(protocol.DefaultRoot, device, protocol.KindLog), 1, false, payload)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish batch %d: %v", i, tok.Error())
		}
		for id, v := range viewers {
			select {
			case fr := <-v.Frames():
				if fr.Type != FrameLines || len(fr.Lines) != perBatch || fr.Lines[0].Seq != int64(i*perBatch) {
					t.Fatalf("replica %s, batch %d: frame %+v, want the batch's %d lines from seq %d", id, i, fr, perBatch, i*perBatch)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("replica %s: batch %d not relayed within 10 s", id, i)
			}
		}
	}
	for id, v := range viewers {
		select {
		case fr := <-v.Frames():
			t.Errorf("replica %s: extra frame %+v", id, fr)
		default:
		}
	}
	// The shared subscription still splits the uplink between the replicas: together they
	// received at least every batch once.
	poll.Wait(t, "the shared subscriptions to receive every batch", func() bool {
		return replicas["a"].shared.Load()+replicas["b"].shared.Load() >= batches
	})

	// A tenant without a bus on this replica (built-in broker, embedded broker off) is a
	// clear error, not a silent viewer.
	other := store.Tenant{Slug: "builtin", Name: "Built-in"}
	if err := st.CreateTenant(ctx, &other); err != nil {
		t.Fatal(err)
	}
	if _, err := replicas["a"].relay.Watch(ctx, other.ID, "dev-elsewhere", ""); err == nil {
		t.Error("watching a device of a tenant without a broker on this replica succeeded")
	}
}
