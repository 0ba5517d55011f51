package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
)

// fakeDevices is a DeviceAuthenticator holding real SHA-256 hashes of secrets.
type fakeDevices struct {
	mu      sync.Mutex
	devices map[string]store.DeviceAuth
	calls   atomic.Int64
}

func newFakeDevices() *fakeDevices { return &fakeDevices{devices: map[string]store.DeviceAuth{}} }

func (f *fakeDevices) add(id, secret string, disabled bool) {
	sum := sha256.Sum256([]byte(secret))
	f.mu.Lock()
	f.devices[id] = store.DeviceAuth{DeviceID: id, TenantID: "t1", SecretHash: sum[:], Disabled: disabled}
	f.mu.Unlock()
}

func (f *fakeDevices) DeviceAuth(_ context.Context, id string) (store.DeviceAuth, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.devices[id]
	if !ok {
		return store.DeviceAuth{}, fmt.Errorf("device %q: %w", id, store.ErrNotFound)
	}
	return d, nil
}

// testConfig is the default broker configuration on loopback ephemeral ports, TLS and
// WebSocket off.
func testConfig() Config {
	c := DefaultConfig()
	c.Addr = "127.0.0.1:0"
	c.TLSAddr = ""
	c.WSAddr = ""
	return c
}

type testBroker struct {
	*Broker
	devices *fakeDevices
	reg     *prometheus.Registry
	addr    string
}

func startBroker(t testing.TB, mutate func(*Config)) *testBroker {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	devs := newFakeDevices()
	reg := prometheus.NewRegistry()
	level := slog.LevelWarn
	if os.Getenv("BROKER_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	b, err := New(cfg, Deps{
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		Devices:    devs,
		Registerer: reg,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &testBroker{Broker: b, devices: devs, reg: reg, addr: b.Addr("tcp")}
}

// counter reads one labelled counter of the broker's registry.
func (tb *testBroker) counter(vec string, label string) float64 {
	var c prometheus.Counter
	switch vec {
	case "connects":
		c = tb.metrics.connects.WithLabelValues(label)
	case "acl":
		c = tb.metrics.aclDenied.WithLabelValues(label)
	case "dropped":
		c = tb.metrics.dropped.WithLabelValues(label)
	case "uplink":
		c = tb.metrics.uplink.WithLabelValues(label)
	}
	return testutil.ToFloat64(c)
}

type clientOpt func(*paho.ClientOptions)

func withClientID(id string) clientOpt { return func(o *paho.ClientOptions) { o.SetClientID(id) } }
func withWill(topic, payload string) clientOpt {
	return func(o *paho.ClientOptions) { o.SetWill(topic, payload, 1, true) }
}

func clientOptions(addr, id, secret string, opts ...clientOpt) *paho.ClientOptions {
	o := paho.NewClientOptions().
		AddBroker(addr).
		SetClientID(id).
		SetUsername(id).
		SetPassword(secret).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetCleanSession(true).
		SetOrderMatters(false).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(30 * time.Second)
	for _, f := range opts {
		f(o)
	}
	return o
}

// dial connects a paho client; it returns the connect error (nil on success).
func dial(t testing.TB, addr, id, secret string, opts ...clientOpt) (paho.Client, error) {
	t.Helper()
	c := paho.NewClient(clientOptions(addr, id, secret, opts...))
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func mustDial(t testing.TB, addr, id, secret string, opts ...clientOpt) paho.Client {
	t.Helper()
	c, err := dial(t, addr, id, secret, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c
}

// inbox collects messages delivered to a paho client or a server subscription.
type inbox struct {
	mu   sync.Mutex
	msgs []messaging.Message
}

func (in *inbox) add(m messaging.Message) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
}

func (in *inbox) pahoHandler(_ paho.Client, m paho.Message) {
	in.add(messaging.Message{Topic: m.Topic(), Payload: bytes.Clone(m.Payload()), QoS: m.Qos(), Retain: m.Retained()})
}

func (in *inbox) all() []messaging.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]messaging.Message(nil), in.msgs...)
}

func (in *inbox) has(topic, payload string) bool {
	for _, m := range in.all() {
		if m.Topic == topic && (payload == "" || string(m.Payload) == payload) {
			return true
		}
	}
	return false
}

func (in *inbox) count(prefix string) int {
	n := 0
	for _, m := range in.all() {
		if strings.HasPrefix(m.Topic, prefix) {
			n++
		}
	}
	return n
}

func mustSubscribe(t testing.TB, c paho.Client, filter string, h paho.MessageHandler) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, h)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func mustPublish(t testing.TB, c paho.Client, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func serverPublish(t testing.TB, b *Broker, topic string, retain bool, payload string) {
	t.Helper()
	if err := b.Publish(context.Background(), messaging.Message{Topic: topic, Payload: []byte(payload), QoS: 1, Retain: retain}); err != nil {
		t.Fatalf("server publish %s: %v", topic, err)
	}
}

func serverSubscribe(t testing.TB, b *Broker, filter string) *inbox {
	t.Helper()
	in := &inbox{}
	unsub, err := b.Subscribe(context.Background(), filter, 1, in.add)
	if err != nil {
		t.Fatalf("server subscribe %s: %v", filter, err)
	}
	t.Cleanup(unsub)
	return in
}

func cmdTopic(id string) string { return protocol.DownlinkCommand(protocol.DefaultRoot, id) }
func upTopic(id, kind string) string {
	return protocol.Uplink(protocol.DefaultRoot, id, kind)
}

// rawConnect opens a TCP connection and performs CONNECT (MQTT 3.1.1) by hand, for tests
// that need a client which misbehaves at the socket level.
func rawConnect(t testing.TB, addr, id, secret string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var buf bytes.Buffer
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: id,
			UsernameFlag: true, Username: []byte(id), PasswordFlag: true, Password: []byte(secret),
		},
	}
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, ack); err != nil || ack[0]>>4 != packets.Connack || ack[3] != 0 {
		t.Fatalf("raw connect %s: ack % x, %v", id, ack, err)
	}
	return c
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// rawConnectWithWill connects by hand with a last will (QoS 1, retained).
func rawConnectWithWill(t testing.TB, addr, id, secret, willTopic, willPayload string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var buf bytes.Buffer
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: id,
			UsernameFlag: true, Username: []byte(id), PasswordFlag: true, Password: []byte(secret),
			WillFlag: true, WillTopic: willTopic, WillPayload: []byte(willPayload), WillQos: 1, WillRetain: true,
		},
	}
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, ack); err != nil || ack[3] != 0 {
		t.Fatalf("raw connect %s: ack % x, %v", id, ack, err)
	}
	return c
}

// rawSubscribe sends SUBSCRIBE and reads SUBACK; it returns the granted code.
func rawSubscribe(t testing.TB, c net.Conn, filter string) byte {
	t.Helper()
	var buf bytes.Buffer
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 4,
		PacketID:        1,
		Filters:         packets.Subscriptions{{Filter: filter, Qos: 1}},
	}
	if err := pk.SubscribeEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 5)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0]>>4 != packets.Suback {
		t.Fatalf("raw subscribe: ack % x, %v", ack, err)
	}
	return ack[4]
}
