package server

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/espadmin/espadmin/broker"
	"github.com/espadmin/espadmin/broker/brokertest"
	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/devconfig"
	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/devauth"
	"github.com/espadmin/espadmin/tests/testkit/logbuf"
)

// withBroker runs the real embedded broker on 127.0.0.1:0 (authenticating devices against
// the harness store) with ingestion and the command sweeper, for scenarios with MQTT devices.
func withBroker() harnessOption {
	return func(o *harnessOptions) { o.broker = true }
}

// fleetClock is real time plus an offset a test can move forward, so presence keeps real
// ordering while commands can be made to expire without waiting.
type fleetClock struct{ offset atomic.Int64 }

func (c *fleetClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *fleetClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// testFleet is the fleet services of one harness server.
type testFleet struct {
	clock    *fleetClock
	reg      *prometheus.Registry
	metrics  *fleet.Metrics
	hub      *fleet.Hub
	devices  *fleet.Devices
	commands *fleet.Commands
	config   *devconfig.Service
	// ota is the update service (release_harness_test.go).
	ota *testOTA
	// coreDumps takes core dump uploads into the firmware storage (crash_test.go).
	coreDumps *devicerrors.CoreDumps
	// regroup re-keys a release's crash groups when its ELF file is uploaded (crash_test.go).
	regroup *devicerrors.Regrouper
	// configLogs captures the config service's log (JSON lines).
	configLogs *logbuf.Buffer
	ingest     *fleet.Ingest
	// broker and mqttAddr are set with withBroker; bus records publishes otherwise.
	broker   *broker.Broker
	mqttAddr string
	bus      *recordingBus
}

// recordingBus is the Bus of harnesses without a broker: it keeps what is published.
type recordingBus struct {
	mu        sync.Mutex
	published []messaging.Message
}

func (b *recordingBus) Publish(_ context.Context, m messaging.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.published = append(b.published, m)
	return nil
}

func (b *recordingBus) Subscribe(context.Context, string, byte, messaging.Handler) (func(), error) {
	return func() {}, nil
}

// startFleet builds the fleet services on st (with the real broker when the harness asks for
// it), for a server at publicURL, and stops them when the test ends.
func (h *harness) startFleet(st store.Store, publicURL string) *testFleet {
	h.t.Helper()
	t := h.t
	fl := &testFleet{clock: &fleetClock{}, reg: prometheus.NewRegistry()}
	fl.metrics = fleet.NewMetrics(fl.reg)
	fl.hub = fleet.NewHub(func(n int) { fl.metrics.EventsDropped.Add(float64(n)) })
	var bus messaging.Bus
	var sessions messaging.Sessions
	// One device-auth cache for the broker and ingestion, as serve wires them.
	deviceAuth := devauth.New(st, devauth.Options{TTL: broker.DefaultConfig().AuthCacheTTL})
	if h.opts.broker {
		b := brokertest.Start(t, brokertest.Options{Devices: st, Registerer: fl.reg, AuthCache: deviceAuth})
		fl.broker, fl.mqttAddr, bus, sessions = b, b.Addr("tcp"), b, b
	} else {
		fl.bus = &recordingBus{}
		bus = fl.bus
	}
	// In dependency order, as the process builds them (cmd/espadmin/serve.go).
	fl.commands = fleet.NewCommands(fleet.CommandsOptions{
		Store: st, Bus: bus, Root: protocol.DefaultRoot, Hub: fl.hub, Metrics: fl.metrics, Now: fl.clock.Now,
	})
	fl.devices = fleet.NewDevices(fleet.DevicesOptions{
		Store: st, Keyring: h.keyring, Sessions: sessions, Caches: []fleet.Forgetter{deviceAuth},
		Hub: fl.hub, Now: fl.clock.Now,
		Endpoint: fleet.Endpoint{Root: protocol.DefaultRoot, MQTTHost: "127.0.0.1", MQTTPort: 1883, ServerURL: "http://localhost:8080"},
	})
	fl.config = h.startConfig(st, fl)
	fl.ota = h.startOTA(st, fl, publicURL)
	fl.coreDumps = devicerrors.NewCoreDumps(devicerrors.CoreDumpOptions{
		Blobs: fl.ota.blobs, Commands: fl.commands, Key: testCoreDumpKey, PublicURL: publicURL, Now: fl.clock.Now,
	})
	fl.regroup = devicerrors.NewRegrouper(devicerrors.RegroupOptions{Store: st, Symbols: fl.ota.svc})
	regroupCtx, stopRegroup := context.WithCancel(context.Background())
	regroupDone := make(chan struct{})
	go func() { defer close(regroupDone); _ = fl.regroup.Run(regroupCtx) }()
	t.Cleanup(func() { stopRegroup(); <-regroupDone })
	fl.ingest = fleet.NewIngest(fleet.IngestOptions{
		Bus: bus, Store: st, DeviceAuth: deviceAuth, Commands: fl.commands, Hub: fl.hub, Metrics: fl.metrics, Now: fl.clock.Now,
		Root: protocol.DefaultRoot, Workers: 2, PresenceDelay: 200 * time.Millisecond, TouchInterval: 50 * time.Millisecond,
		ConfigRequests: fl.config,
		OTA:            fl.ota.svc,
	})
	if h.opts.broker {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := fl.ingest.Run(ctx); err != nil {
				t.Errorf("ingest: %v", err)
			}
		}()
		t.Cleanup(func() { cancel(); <-done })
	}
	return fl
}

// populateFleet gives a tenant of the world one device with one queued command.
func (w *tenantWorld) populateFleet(t *testing.T, tenantID string) (deviceID, commandID string) {
	t.Helper()
	p, err := w.h.fleet.devices.Create(t.Context(), tenantID, fleet.DeviceInput{Name: "placeholder", Tags: []string{"matrix"}})
	if err != nil {
		t.Fatal(err)
	}
	w.secrets = append(w.secrets, p.Secret)
	cmds, err := w.h.fleet.commands.Send(t.Context(), tenantID, fleet.SendRequest{
		Name: protocol.CommandRestart, Target: fleet.Target{DeviceIDs: []string{p.Device.ID}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p.Device.ID, cmds[0].ID
}
