package fleet

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
	"github.com/espadmin/espadmin/store/sqlstore"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "fleet.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st
}

// loopBus hands published messages to the subscribed handler, in process: enough for the
// ingestion rules that do not depend on a broker's connection table.
type loopBus struct {
	mu sync.Mutex
	h  messaging.Handler
}

func (b *loopBus) Publish(_ context.Context, m messaging.Message) error {
	b.mu.Lock()
	h := b.h
	b.mu.Unlock()
	if h != nil && strings.Contains(m.Topic, "/up/") {
		h(m)
	}
	return nil
}

func (b *loopBus) Subscribe(_ context.Context, _ string, _ byte, h messaging.Handler) (func(), error) {
	b.mu.Lock()
	b.h = h
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		b.h = nil
		b.mu.Unlock()
	}, nil
}

func (b *loopBus) up(id, kind, payload string) {
	_ = b.Publish(context.Background(), messaging.Message{Topic: protocol.Uplink(protocol.DefaultRoot, id, kind), Payload: []byte(payload), QoS: 1})
}

func TestHubDropsForSlowSubscribers(t *testing.T) {
	t.Parallel()
	var dropped int
	h := NewHub(func(n int) { dropped += n })
	slow := h.Subscribe("t1", 2)
	other := h.Subscribe("t2", 2)
	for i := range 5 {
		h.Publish(Event{Type: EventPresence, TenantID: "t1", DeviceID: string(rune('a' + i))})
	}
	if len(slow.Events()) != 2 || slow.TakeDropped() != 3 || slow.TakeDropped() != 0 || dropped != 3 {
		t.Errorf("buffer %d, dropped %d", len(slow.Events()), dropped)
	}
	if len(other.Events()) != 0 {
		t.Error("tenant t2 received t1's events")
	}
	if ev := <-slow.Events(); ev.DeviceID != "a" || ev.At.IsZero() {
		t.Errorf("first event %+v", ev)
	}
	slow.Close()
	if h.Subscribers() != 1 {
		t.Errorf("subscribers %d", h.Subscribers())
	}
	h.Close()
	select {
	case <-other.Done():
	default:
		t.Error("Close did not end the subscription")
	}
	h.Publish(Event{TenantID: "t2"}) // no panic, no block after Close
	if s := h.Subscribe("t3", 1); s == nil {
		t.Fatal("nil subscription")
	} else {
		<-s.Done()
	}
}

func TestNVSCSVRoundTrip(t *testing.T) {
	t.Parallel()
	ca := "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUY2E=\n-----END CERTIFICATE-----\n"
	b := Bundle{V: 1, DeviceID: "01hzx4a0b1c2d3e4f5g6h7j8k9", Secret: "s3cr,et\"x", DeviceKey: "AAAA",
		MQTT:      BundleMQTT{Host: "mqtt.example.com", Port: 8883, TLS: true, CAPEM: ca, TopicRoot: "fleet/eu-1"},
		ServerURL: "https://example.com/a,b", OTAPublicKey: "key", OTACAPEM: ca + ca}
	data, err := b.NVSCSV()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if lines[0] != "key,type,encoding,value" || lines[1] != "espadmin,namespace,," {
		t.Errorf("head %q", lines[:2])
	}
	if bytes.Contains(data, []byte("BEGIN CERTIFICATE")) {
		t.Error("the CA PEM must be base64 encoded, not multi-line in the CSV")
	}
	for _, want := range []string{"mqtt_port,data,u16,8883", "mqtt_tls,data,u8,1", `secret,data,string,"s3cr,et""x"`,
		"ota_ca,data,base64," + base64.StdEncoding.EncodeToString([]byte(ca+ca))} {
		if !strings.Contains(string(data), want+"\n") {
			t.Errorf("missing %q in\n%s", want, data)
		}
	}
	got, err := ParseNVSCSV(data)
	if err != nil || got != b {
		t.Errorf("round trip: %+v %v", got, err)
	}
	// Empty values are left out.
	b.Secret, b.MQTT.CAPEM, b.OTAPublicKey, b.OTACAPEM = "", "", "", ""
	data, _ = b.NVSCSV()
	for _, k := range []string{"secret,", "mqtt_ca,", "ota_pubkey,", "ota_ca,"} {
		if strings.Contains(string(data), "\n"+k) {
			t.Errorf("%s present with an empty value", k)
		}
	}
}

// TestPresenceDelay: without a broker connection table, an online status is applied after
// the delay and an offline arriving within it is the previous session's will.
func TestPresenceDelay(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	kr, _ := seal.NewKeyring(bytes.Repeat([]byte{1}, 32))
	tn := store.Tenant{Slug: "t", Name: "T"}
	if err := st.CreateTenant(t.Context(), &tn); err != nil {
		t.Fatal(err)
	}
	bus := &loopBus{}
	m := NewMetrics(nil)
	hub := NewHub(nil)
	cmds := NewCommands(CommandsOptions{Store: st, Bus: bus, Root: protocol.DefaultRoot, Hub: hub, Metrics: m})
	in := NewIngest(IngestOptions{Bus: bus, Store: st, Commands: cmds, Hub: hub, Metrics: m, PresenceDelay: 300 * time.Millisecond, Workers: 1})
	devs := NewDevices(DevicesOptions{Store: st, Keyring: kr, Hub: hub, Caches: []Forgetter{in}})
	p, err := devs.Create(t.Context(), tn.ID, DeviceInput{Name: "d"})
	if err != nil {
		t.Fatal(err)
	}
	id := p.Device.ID
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = in.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	poll.Wait(t, "subscribed", func() bool { bus.mu.Lock(); defer bus.mu.Unlock(); return bus.h != nil })
	online := func() bool {
		d, err := st.Device(t.Context(), tn.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		return d.Presence.Online
	}

	start := time.Now()
	bus.up(id, protocol.KindStatus, `{"v":1,"online":true}`)
	bus.up(id, protocol.KindStatus, protocol.WillPayload) // the old session's will, late
	poll.Wait(t, "online applied", online)
	if time.Since(start) < 300*time.Millisecond {
		t.Error("online applied before the presence delay")
	}
	if testutil.ToFloat64(m.Presence.WithLabelValues("stale_will")) != 1 {
		t.Error("stale will not counted")
	}
	bus.up(id, protocol.KindStatus, protocol.WillPayload)
	poll.Wait(t, "offline applied", func() bool { return !online() })

	// Invalid topics and payloads are counted; the worker keeps going.
	bus.up(id, "bogus", `{}`)
	bus.up(id, protocol.KindMetadata, `{"v":1`)
	bus.up("unknown-device", protocol.KindStatus, `{"v":1,"online":true}`)
	poll.Wait(t, "drops counted", func() bool {
		return testutil.ToFloat64(m.Dropped.WithLabelValues("unknown_kind")) == 1 &&
			testutil.ToFloat64(m.Invalid.WithLabelValues(protocol.KindMetadata, "malformed")) == 1 &&
			testutil.ToFloat64(m.Dropped.WithLabelValues("unknown_device")) == 1
	})
	poll.Wait(t, "last seen batched", func() bool {
		d, _ := st.Device(t.Context(), tn.ID, id)
		return !d.Presence.LastSeenAt.IsZero()
	})
}

// TestQueueFullDrops: the subscription handler never blocks; a full queue drops and counts.
func TestQueueFullDrops(t *testing.T) {
	t.Parallel()
	m := NewMetrics(nil)
	in := NewIngest(IngestOptions{Bus: &loopBus{}, Metrics: m, Workers: 1, QueueSize: 3})
	for range 10 {
		in.handle(messaging.Message{Topic: protocol.Uplink(protocol.DefaultRoot, "dev", protocol.KindLog), Payload: []byte("{}")})
	}
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues("queue_full")); got != 7 {
		t.Errorf("queue_full %v, want 7", got)
	}
	in.handle(messaging.Message{Topic: "espadmin/dev/down/cmd"})
	in.handle(messaging.Message{Topic: "other/dev/up/status"})
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues("invalid_topic")); got != 2 {
		t.Errorf("invalid_topic %v, want 2", got)
	}
	if in.Filter() != "espadmin/+/up/#" {
		t.Errorf("filter %s", in.Filter())
	}
	shared := NewIngest(IngestOptions{Bus: &loopBus{}, ShareGroup: "espadmin"})
	if shared.Filter() != "$share/espadmin/espadmin/+/up/#" {
		t.Errorf("shared filter %s", shared.Filter())
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	a, _ := NewSecret()
	b, _ := NewSecret()
	if a == b || len(a) != 43 || strings.ContainsAny(a, "+/=") {
		t.Errorf("secrets %q %q", a, b)
	}
	if !SecretMatches(a, HashSecret(a)) || SecretMatches(b, HashSecret(a)) {
		t.Error("SecretMatches")
	}
}

// TestNVSCSVMatchesFirmwareModel pins the server's NVS CSV byte for byte to the file the
// firmware's host model of ESP-IDF loads (firmware/tests/testdata/provisioning-nvs.csv): the
// model reads it with ESP-IDF's typed NVS semantics and must connect to exactly the host, port
// and TLS written here (and, with a download CA, verify a download from another host with
// it), so a change to either side's format fails one of the two tests.
func TestNVSCSVMatchesFirmwareModel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file, otaCA string
	}{
		{"provisioning-nvs.csv", ""},
		{"provisioning-nvs-ota-ca.csv", "-----BEGIN CERTIFICATE-----\nMIIBdownloadServerPrivateCA\n-----END CERTIFICATE-----\n"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			b := Bundle{V: 1, DeviceID: "01hzx4a0b1c2d3e4f5g6h7j8k9",
				Secret:    "k0Qm3Zp8sV2xY7wR4tU1nB6cL9dF5gH0jK2lM4nP6qS",
				DeviceKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
				MQTT: BundleMQTT{Host: "mqtt.example.com", Port: 8883, TLS: true, TopicRoot: "espadmin",
					CAPEM: "-----BEGIN CERTIFICATE-----\nMIIBhostmodelTestCAonlyNotARealCertificate0123456789abcdefABCDEF\n-----END CERTIFICATE-----\n"},
				ServerURL: "https://espadmin.example.com", OTACAPEM: tc.otaCA}
			got, err := b.NVSCSV()
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("..", "..", "firmware", "tests", "testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("the server's NVS CSV differs from the firmware model's:\n got: %q\nwant: %q", got, want)
			}
		})
	}
}

// TestBundleCarriesDownloadCA: the download CA reaches every bundle, including those of a
// tenant on its own broker (firmware still comes from this server), in JSON and in the CSV.
func TestBundleCarriesDownloadCA(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	kr, _ := seal.NewKeyring(bytes.Repeat([]byte{1}, 32))
	own := store.Tenant{Slug: "own", Name: "Own broker"}
	shared := store.Tenant{Slug: "shared", Name: "Shared broker"}
	for _, tn := range []*store.Tenant{&own, &shared} {
		if err := st.CreateTenant(t.Context(), tn); err != nil {
			t.Fatal(err)
		}
	}
	const otaCA = "-----BEGIN CERTIFICATE-----\nMIIBdownloadCA\n-----END CERTIFICATE-----\n"
	devs := NewDevices(DevicesOptions{Store: st, Keyring: kr, Hub: NewHub(nil),
		Endpoint: Endpoint{MQTTHost: "mqtt.example.com", MQTTPort: 1883, ServerURL: "https://fw.example.com", OTACAPEM: otaCA},
		TenantEndpoint: func(tenantID string) (Endpoint, bool) {
			return Endpoint{MQTTHost: "broker.own.example", MQTTPort: 8883, TLS: true}, tenantID == own.ID
		}})
	for _, tn := range []store.Tenant{own, shared} {
		p, err := devs.Create(t.Context(), tn.ID, DeviceInput{Name: "d"})
		if err != nil {
			t.Fatal(err)
		}
		if p.Bundle.OTACAPEM != otaCA || p.Bundle.ServerURL != "https://fw.example.com" {
			t.Errorf("tenant %s: bundle %+v", tn.Slug, p.Bundle)
		}
		js, _ := json.Marshal(p.Bundle)
		if !bytes.Contains(js, []byte(`"ota_ca_pem":"-----BEGIN CERTIFICATE-----\nMIIBdownloadCA`)) {
			t.Errorf("tenant %s: JSON without ota_ca_pem: %s", tn.Slug, js)
		}
		csvData, err := p.Bundle.NVSCSV()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(csvData, []byte("\nota_ca,data,base64,"+base64.StdEncoding.EncodeToString([]byte(otaCA))+"\n")) {
			t.Errorf("tenant %s: CSV without ota_ca:\n%s", tn.Slug, csvData)
		}
	}
}
