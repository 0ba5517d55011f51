package tenantbus_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/espadmin/espadmin/broker/bridge"
	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/broker/tenantbus"
	"github.com/espadmin/espadmin/cmd/espadmin/sim"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
	"github.com/espadmin/espadmin/store/sqlstore"
	"github.com/espadmin/espadmin/tests/testkit/poll"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// world is a store with one tenant, the fleet services routed by a tenantbus.Manager, and
// no embedded broker: like a replica started with --mqtt-enabled=false.
type world struct {
	st       store.Store
	keyring  *seal.Keyring
	tenant   store.Tenant
	brokers  *tenantbus.Manager
	commands *fleet.Commands
	devices  *fleet.Devices
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := t.Context()
	st, err := sqlstore.Open(ctx, "sqlite://"+filepath.ToSlash(filepath.Join(t.TempDir(), "espadmin.db")), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	tenant := store.Tenant{Slug: "acme", Name: "Acme"}
	if err := st.CreateTenant(ctx, &tenant); err != nil {
		t.Fatal(err)
	}
	brokers := tenantbus.New(tenantbus.Options{
		Store: st, Keyring: kr,
		Bridge: bridge.Config{MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, ConnectTimeout: 3 * time.Second, AllowPrivate: true},
	})
	commands := fleet.NewCommands(fleet.CommandsOptions{Store: st, Root: protocol.DefaultRoot, Router: brokers})
	ingest := fleet.NewIngest(fleet.IngestOptions{Store: st, Commands: commands, PresenceDelay: 100 * time.Millisecond,
		TouchInterval: 50 * time.Millisecond})
	devices := fleet.NewDevices(fleet.DevicesOptions{Store: st, Keyring: kr,
		Endpoint: fleet.Endpoint{Root: protocol.DefaultRoot, MQTTHost: "builtin.example", MQTTPort: 1883, ServerURL: "http://server.example"},
		TenantEndpoint: func(id string) (fleet.Endpoint, bool) {
			e, ok := brokers.Endpoint(id)
			return fleet.Endpoint{Root: e.Root, MQTTHost: e.Host, MQTTPort: e.Port, TLS: e.TLS, CAPEM: e.CAPEM}, ok
		},
	})
	brokers.OnBridge(ingest.Attach)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = ingest.Run(runCtx); done <- struct{}{} }()
	go func() { _ = brokers.Run(runCtx); done <- struct{}{} }()
	t.Cleanup(func() { stop(); <-done; <-done })
	return &world{st: st, keyring: kr, tenant: tenant, brokers: brokers, commands: commands, devices: devices}
}

// save stores the tenant's broker settings, password sealed, and applies them.
func (w *world) save(t *testing.T, bs store.BrokerSettings, password string) {
	t.Helper()
	if password != "" {
		sealed, err := w.keyring.Seal([]byte(password), tenantbus.PasswordAD(w.tenant.ID))
		if err != nil {
			t.Fatal(err)
		}
		bs.PasswordSealed = sealed
	}
	cur, err := w.st.TenantSettings(t.Context(), w.tenant.ID)
	if errors.Is(err, store.ErrNotFound) {
		cur, err = store.TenantSettings{TenantID: w.tenant.ID}, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	cur.Broker = bs
	if err := w.st.PutTenantSettings(t.Context(), &cur); err != nil {
		t.Fatal(err)
	}
	if err := w.brokers.Reload(t.Context(), w.tenant.ID); err != nil {
		t.Fatal(err)
	}
}

// TestTenantOnMosquitto is the tenant's own broker end to end: Debian's Mosquitto with a
// password file and ACL patterns; a device provisioned while the tenant is on it gets a
// bundle pointing there, connects with its credentials, reports metadata (stored through the
// bridge's ingestion), receives a restart command routed through the tenant's bridge and
// acknowledges it (succeeded). Switching back to builtin stops the bridge.
func TestTenantOnMosquitto(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	prov, err := w.devices.Create(ctx, w.tenant.ID, fleet.DeviceInput{Name: "pump"})
	if err != nil {
		t.Fatal(err)
	}
	id := prov.Device.ID
	mq := testsvc.Mosquitto(t, testsvc.MosquittoOptions{
		Devices: map[string]string{id: prov.Secret},
		Servers: map[string]string{"espadmin": "server-pass"},
	})
	w.save(t, store.BrokerSettings{Mode: store.BrokerExternal, URL: mq.URL(), Username: "espadmin"}, "server-pass")

	st, ok := w.brokers.State(w.tenant.ID)
	if !ok {
		t.Fatal("no bridge after switching to external")
	}
	poll.Until(t, 10*time.Second, "bridge connected", func() bool {
		st, _ = w.brokers.State(w.tenant.ID)
		return st.Status == bridge.StatusConnected
	})

	bundle, err := w.devices.Bundle(ctx, prov.Device)
	if err != nil {
		t.Fatal(err)
	}
	if bundle.MQTT.Host != "127.0.0.1" || bundle.MQTT.Port != mq.Port || bundle.MQTT.TLS || bundle.MQTT.TopicRoot != protocol.DefaultRoot {
		t.Fatalf("bundle broker %+v, want 127.0.0.1:%d without TLS", bundle.MQTT, mq.Port)
	}
	if bundle.ServerURL != "http://server.example" {
		t.Errorf("bundle server URL %q", bundle.ServerURL)
	}
	bundle.Secret = prov.Secret
	dev, err := sim.NewDevice(sim.Options{Bundle: bundle, ReconnectDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dev.Start(ctx)
	t.Cleanup(dev.Stop)

	poll.Until(t, 15*time.Second, "metadata and presence stored", func() bool {
		d, err := w.st.Device(ctx, w.tenant.ID, id)
		return err == nil && d.Metadata.FirmwareVersion != "" && d.Presence.Online
	})
	cmds, err := w.commands.Send(ctx, w.tenant.ID, fleet.SendRequest{Name: protocol.CommandRestart, Target: fleet.Target{DeviceIDs: []string{id}}})
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 15*time.Second, "restart acknowledged", func() bool {
		c, err := w.st.Command(ctx, w.tenant.ID, cmds[0].ID)
		return err == nil && c.State == store.CommandSucceeded
	})
	if got := dev.Stats().Restarts; got != 1 {
		t.Errorf("device restarted %d times, want 1", got)
	}

	// Back to the built-in broker: no bridge, no bus (none in this process), and bundles
	// point at the built-in broker again.
	w.save(t, store.BrokerSettings{Mode: store.BrokerBuiltin}, "")
	if _, ok := w.brokers.State(w.tenant.ID); ok {
		t.Error("bridge still running after switching back to builtin")
	}
	if bus, _, external := w.brokers.Route(w.tenant.ID); bus != nil || external {
		t.Errorf("route after switching back: %v external=%v", bus, external)
	}
	if b, _ := w.devices.Bundle(ctx, prov.Device); b.MQTT.Host != "builtin.example" {
		t.Errorf("bundle host after switching back %q", b.MQTT.Host)
	}
}

// TestTenantBrokerBadSettings: a wrong password and a CA that did not sign the broker's
// certificate each show a failed state with the right class, and the bridge keeps backing
// off instead of crashing or spinning; fixing the settings connects.
func TestTenantBrokerBadSettings(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	mq := testsvc.Mosquitto(t, testsvc.MosquittoOptions{Servers: map[string]string{"espadmin": "right"}, TLS: true})
	cases := []struct {
		name     string
		settings store.BrokerSettings
		password string
		class    error
	}{
		{"wrong password", store.BrokerSettings{Mode: store.BrokerExternal, URL: mq.URL(), Username: "espadmin"}, "wrong", bridge.ErrNotAuthorized},
		{"bad CA", store.BrokerSettings{Mode: store.BrokerExternal, URL: mq.TLSURL(), Username: "espadmin",
			CACertPEM: string(testsvc.NewCAPEM(t))}, "right", bridge.ErrTLS},
	}
	for _, tc := range cases {
		w.save(t, tc.settings, tc.password)
		var st bridge.State
		poll.Until(t, 10*time.Second, tc.name+": failed state", func() bool {
			st, _ = w.brokers.State(w.tenant.ID)
			return st.Status == bridge.StatusFailed && errors.Is(st.Err, tc.class)
		})
		if st.LastError == "" {
			t.Errorf("%s: no last error", tc.name)
		}
		// Publishing to a failed bridge refuses at once; nothing is queued invisibly.
		bus := w.brokers.Bus(w.tenant.ID)
		if err := bus.Publish(t.Context(), messaging.Message{Topic: "espadmin/x/down/cmd", QoS: 1}); !errors.Is(err, bridge.ErrNotConnected) {
			t.Errorf("%s: publish error %v, want ErrNotConnected", tc.name, err)
		}
	}
	// The right CA: connects (the settings change restarts the bridge).
	w.save(t, store.BrokerSettings{Mode: store.BrokerExternal, URL: mq.TLSURL(), Username: "espadmin", CACertPEM: string(mq.CACertPEM)}, "right")
	poll.Until(t, 10*time.Second, "connected after the fix", func() bool {
		st, _ := w.brokers.State(w.tenant.ID)
		return st.Status == bridge.StatusConnected
	})
}
