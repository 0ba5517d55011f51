package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/logbuf"
	"github.com/espadmin/espadmin/tests/testkit/poll"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

const (
	root       = protocol.DefaultRoot
	serverUser = "espadmin-server"
	serverPass = "server-secret"
)

func devices() map[string]string {
	return map[string]string{"dev-1": "pw-1", "dev-2": "pw-2"}
}

func mosquitto(t *testing.T, tlsOn, persistence bool) *testsvc.MosquittoServer {
	t.Helper()
	return testsvc.Mosquitto(t, testsvc.MosquittoOptions{
		Devices:     devices(),
		Servers:     map[string]string{serverUser: serverPass, "espadmin-server-b": serverPass},
		TLS:         tlsOn,
		Persistence: persistence,
	})
}

// fastConfig is a bridge config for srv with short timeouts and backoff.
func fastConfig(url string) Config {
	return Config{
		URL: url, Username: serverUser, Password: serverPass,
		ConnectTimeout: 3 * time.Second, PublishTimeout: 5 * time.Second,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
		AllowPrivate: true, // the test brokers listen on loopback
	}
}

// startBridge starts a bridge and shuts it down at the end of the test.
func startBridge(t *testing.T, cfg Config, logs *logbuf.Buffer) *Bridge {
	t.Helper()
	if logs == nil {
		logs = &logbuf.Buffer{}
	}
	b := New(cfg, Deps{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return b
}

// explainEvery is how often a wait that describes what it saw checks: the description reads
// Mosquitto's log.
const explainEvery = 25 * time.Millisecond

func waitConnected(t *testing.T, b *Bridge) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.WaitConnected(ctx); err != nil {
		t.Fatalf("bridge not connected: %v (state %+v)", err, b.State())
	}
}

// inbox collects messages for a test.
type inbox struct {
	mu   sync.Mutex
	msgs []messaging.Message
	dups []bool // the DUP flag of each message, where the sender is a paho client
}

func (in *inbox) add(m messaging.Message) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.msgs = append(in.msgs, m)
}

func (in *inbox) payloads() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]string, len(in.msgs))
	for i, m := range in.msgs {
		out[i] = string(m.Payload)
	}
	return out
}

func (in *inbox) count(payload string) int {
	n := 0
	for _, p := range in.payloads() {
		if p == payload {
			n++
		}
	}
	return n
}

// device is a simulated device: username = client ID = device ID, persistent session,
// subscribed to its own downlink (or filter) at QoS 1 again on every connect.
type device struct {
	c  mqtt.Client
	in *inbox
}

func connectDevice(t *testing.T, url, id, password string, filters ...string) *device {
	t.Helper()
	if len(filters) == 0 {
		filters = []string{protocol.DownlinkFilter(root, id)}
	}
	d := &device{in: &inbox{}}
	// Subscribed closes when the first connection's subscriptions are acknowledged, so that
	// nothing published after connectDevice returns can miss the device.
	subscribed := make(chan struct{})
	var once sync.Once
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(id).SetPassword(password).
		SetProtocolVersion(4).SetCleanSession(false).SetAutoReconnect(true).
		SetMaxReconnectInterval(200 * time.Millisecond).SetConnectRetryInterval(100 * time.Millisecond).
		SetOrderMatters(false).
		SetStore(newResumeStore()).
		SetOnConnectHandler(func(c mqtt.Client) {
			var toks []mqtt.Token
			for _, f := range filters {
				toks = append(toks, c.Subscribe(f, 1, func(_ mqtt.Client, m mqtt.Message) {
					d.in.mu.Lock()
					defer d.in.mu.Unlock()
					d.in.msgs = append(d.in.msgs, messaging.Message{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos()})
					d.in.dups = append(d.in.dups, m.Duplicate())
				}))
			}
			go func() {
				for _, tok := range toks {
					if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
						return
					}
				}
				once.Do(func() { close(subscribed) })
			}()
		})
	d.c = mqtt.NewClient(o)
	tok := d.c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s connect: %v", id, tok.Error())
	}
	t.Cleanup(func() { d.c.Disconnect(100) })
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatalf("device %s: subscriptions %q not acknowledged", id, filters)
	}
	return d
}

func (d *device) publish(t *testing.T, topic string, payload string) {
	t.Helper()
	tok := d.c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device publish %s: %v", topic, tok.Error())
	}
}

func subscribe(t *testing.T, b *Bridge, filter string) *inbox {
	t.Helper()
	in := &inbox{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unsub, err := b.Subscribe(ctx, filter, 1, in.add)
	if err != nil {
		t.Fatalf("Subscribe %s: %v", filter, err)
	}
	t.Cleanup(unsub)
	return in
}

func publish(b *Bridge, topic, payload string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return b.Publish(ctx, messaging.Message{Topic: topic, Payload: []byte(payload), QoS: 1})
}

// TestUplinkDownlinkAndACL: a device's metadata reaches the bridge's subscriber, a command
// from the bridge reaches the device, and Mosquitto's ACL patterns from docs/protocol.md
// confine each device to its own subtree.
func TestUplinkDownlinkAndACL(t *testing.T) {
	t.Parallel()
	srv := mosquitto(t, false, false)
	b := startBridge(t, fastConfig(srv.URL()), nil)
	uplinks := subscribe(t, b, protocol.UplinkFilter(root, "")) // before connecting: made on connect
	waitConnected(t, b)

	dev1 := connectDevice(t, srv.URL(), "dev-1", "pw-1")
	// dev-2 tries to read dev-1's downlink and everything else.
	dev2 := connectDevice(t, srv.URL(), "dev-2", "pw-2", protocol.DownlinkFilter(root, "dev-2"), "#", root+"/dev-1/down/#")

	dev1.publish(t, protocol.Uplink(root, "dev-1", protocol.KindMetadata), `{"v":1,"fw":"1.0"}`)
	poll.Until(t, 5*time.Second, "metadata at the bridge", func() bool { return uplinks.count(`{"v":1,"fw":"1.0"}`) == 1 })
	if m := uplinks.msgs[0]; m.Topic != "espadmin/dev-1/up/metadata" || m.QoS != 1 {
		t.Fatalf("uplink = %+v", m)
	}

	if err := publish(b, protocol.DownlinkCommand(root, "dev-1"), "cmd-1"); err != nil {
		t.Fatalf("Publish command: %v", err)
	}
	poll.Until(t, 5*time.Second, "command at dev-1", func() bool { return dev1.in.count("cmd-1") == 1 })

	// dev-2 publishes into dev-1's subtree (both branches): Mosquitto drops it silently.
	dev2.publish(t, root+"/dev-1/up/metadata", "forged-uplink")
	dev2.publish(t, protocol.DownlinkCommand(root, "dev-1"), "forged-command")
	// A marker through the same paths proves the forged ones had time to arrive.
	dev2.publish(t, protocol.Uplink(root, "dev-2", protocol.KindStatus), "marker")
	if err := publish(b, protocol.DownlinkCommand(root, "dev-2"), "cmd-2"); err != nil {
		t.Fatal(err)
	}
	// dev-2 may get cmd-2 twice: Mosquitto sends one copy per matching subscription ("#"
	// and its downlink), both allowed by the delivery-time check.
	poll.State(t, explainEvery, 5*time.Second, "the marker and cmd-2", func() (bool, string) {
		if uplinks.count("marker") == 1 && dev2.in.count("cmd-2") >= 1 {
			return true, ""
		}
		return false, fmt.Sprintf("uplinks %q, dev-2 %q\n%s", uplinks.payloads(), dev2.in.payloads(), srv.Log())
	})
	if uplinks.count("forged-uplink") != 0 || dev1.in.count("forged-command") != 0 {
		t.Fatalf("a device published into another device's subtree: uplinks %q, dev-1 %q", uplinks.payloads(), dev1.in.payloads())
	}
	if n := strings.Count(srv.Log(), "Denied PUBLISH from dev-2"); n != 2 {
		t.Fatalf("Mosquitto denied %d of dev-2's forged publishes, want 2", n)
	}
	// dev-2's '#' and dev-1/down/# subscriptions deliver nothing of dev-1's.
	for _, p := range dev2.in.payloads() {
		if p == "cmd-1" {
			t.Fatalf("dev-2 received dev-1's command: %q", dev2.in.payloads())
		}
	}
	if got := b.Stats(); got.Dropped != 0 || got.Received < 2 {
		t.Fatalf("stats = %+v", got)
	}
}

// TestRestartResubscribes: without persistence the restarted Mosquitto has forgotten every
// session, so a device message after the restart reaches the bridge only because the bridge
// subscribed again on connect. During the outage Publish fails clearly, state says why.
func TestRestartResubscribes(t *testing.T) {
	t.Parallel()
	srv := mosquitto(t, false, false)
	logs := &logbuf.Buffer{}
	b := startBridge(t, fastConfig(srv.URL()), logs)
	uplinks := subscribe(t, b, protocol.UplinkFilter(root, ""))
	waitConnected(t, b)
	dev := connectDevice(t, srv.URL(), "dev-1", "pw-1")
	dev.publish(t, protocol.Uplink(root, "dev-1", protocol.KindMetadata), "before")
	poll.Until(t, 5*time.Second, "message before restart", func() bool { return uplinks.count("before") == 1 })

	srv.Stop()
	poll.Until(t, 10*time.Second, "bridge notices the loss", func() bool { return b.State().Status != StatusConnected })
	err := publish(b, protocol.DownlinkCommand(root, "dev-1"), "during-outage")
	if !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Publish during outage = %v, want ErrNotConnected", err)
	}
	if st := b.State(); st.Err == nil || (!errors.Is(st.Err, ErrDropped) && !errors.Is(st.Err, ErrUnreachable)) {
		t.Fatalf("state during outage = %+v", st)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, b)
	poll.Until(t, 10*time.Second, "device reconnected", dev.c.IsConnectionOpen)
	dev.publish(t, protocol.Uplink(root, "dev-1", protocol.KindMetadata), "after")
	// At least once: the device's client may resend it with DUP while its reconnect resumes.
	poll.Until(t, 10*time.Second, "message after restart", func() bool { return uplinks.count("after") >= 1 })
	if st := b.State(); st.Status != StatusConnected || st.LastError != "" {
		t.Fatalf("state after reconnect = %+v", st)
	}
	for _, want := range []string{"broker connection lost", "broker connected"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestOutageNoLossNoDuplicate: commands stream to a device while Mosquitto (with persistence,
// as in production) is stopped and restarted. Every command whose Publish returned nil reaches
// the device, once as a fresh delivery (the broker may add DUP redeliveries, which the device
// drops by command ID); every other one failed with a clear error. Uplinks the device sent
// while the bridge was away arrive after the bridge comes back (persistent session).
func TestOutageNoLossNoDuplicate(t *testing.T) {
	t.Parallel()
	srv := mosquitto(t, false, true)
	cfg := fastConfig(srv.URL())
	b := startBridge(t, cfg, nil)
	uplinkFilter := protocol.UplinkFilter(root, "")
	subscribe(t, b, uplinkFilter)
	waitConnected(t, b)
	dev := connectDevice(t, srv.URL(), "dev-1", "pw-1")
	cmdTopic := protocol.DownlinkCommand(root, "dev-1")

	var acked, failed []string
	send := func(i int) {
		p := fmt.Sprintf("cmd-%03d", i)
		if err := publish(b, cmdTopic, p); err != nil {
			if !errors.Is(err, ErrNotConnected) && !errors.Is(err, ErrPublishTimeout) {
				t.Fatalf("Publish %s failed unclearly: %v", p, err)
			}
			failed = append(failed, p)
			return
		}
		acked = append(acked, p)
	}
	i := 0
	for ; i < 20; i++ {
		send(i)
	}
	srv.Stop()
	poll.Until(t, 10*time.Second, "bridge notices the loss", func() bool { return b.State().Status != StatusConnected })
	for ; i < 30; i++ { // during the outage
		send(i)
	}
	if len(failed) != 10 {
		t.Fatalf("%d publishes failed during the outage, want 10 (ErrNotConnected)", len(failed))
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, b)
	for ; i < 50; i++ {
		send(i)
	}
	if len(acked) < 40 {
		t.Fatalf("only %d of 50 commands acknowledged (failed: %q)", len(acked), failed)
	}
	missing := func() []string {
		var out []string
		for _, p := range acked {
			if dev.in.count(p) == 0 {
				out = append(out, p)
			}
		}
		return out
	}
	poll.State(t, explainEvery, 15*time.Second, "every acknowledged command at the device", func() (bool, string) {
		m := missing()
		if len(m) == 0 {
			return true, ""
		}
		return false, fmt.Sprintf("never reached the device: %q (failed: %q, received: %q)\n%s", m, failed, dev.in.payloads(), srv.Log())
	})
	// A device applies a command ID once (docs/protocol.md §4, Duplicates). A second copy
	// is acceptable only as a QoS 1 redelivery by the broker (DUP set: the device's PUBACK
	// was lost in the restart), never as a second publish by the bridge (DUP clear).
	dev.in.mu.Lock()
	fresh := map[string]int{}
	for i, m := range dev.in.msgs {
		if !dev.in.dups[i] {
			fresh[string(m.Payload)]++
		}
	}
	dev.in.mu.Unlock()
	for _, p := range acked {
		if fresh[p] != 1 {
			t.Fatalf("command %s delivered %d times without DUP: the bridge published it twice", p, fresh[p])
		}
	}

	// Persistent session: the bridge goes away (its session, holding the uplink
	// subscription, stays at the broker), the device reports, and a new bridge with the same
	// client ID gets the queued QoS 1 message.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	dev.publish(t, protocol.Uplink(root, "dev-1", protocol.KindAck), "queued-while-away")
	second := New(cfg, Deps{})
	queued := subscribe(t, second, uplinkFilter) // before Start: ready for the backlog
	if err := second.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Shutdown(context.Background()) })
	waitConnected(t, second)
	poll.Until(t, 10*time.Second, "uplink queued while the bridge was away", func() bool {
		return queued.count("queued-while-away") == 1
	})
}

// TestBadCredentialsBackOff: a wrong password gives state failed with a "not authorized"
// error and a few attempts with backoff, not a tight loop.
func TestBadCredentialsBackOff(t *testing.T) {
	t.Parallel()
	srv := mosquitto(t, false, false)
	cfg := fastConfig(srv.URL())
	cfg.Password = "wrong"
	cfg.MinBackoff, cfg.MaxBackoff = 200*time.Millisecond, time.Second
	logs := &logbuf.Buffer{}
	var (
		mu     sync.Mutex
		states []State
	)
	b := New(cfg, Deps{Logger: slog.New(slog.NewTextHandler(logs, nil)), OnStateChange: func(s State) {
		mu.Lock()
		states = append(states, s)
		mu.Unlock()
	}})
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown(context.Background())
	start := time.Now()
	poll.Until(t, 10*time.Second, "state failed", func() bool { return b.State().Status == StatusFailed })
	st := b.State()
	if !errors.Is(st.Err, ErrNotAuthorized) || !strings.Contains(st.LastError, "not authorized") {
		t.Fatalf("state = %+v, want a not authorized error", st)
	}
	// Over a 3 s window, backoff 200 ms doubling to 1 s (with jitter down to half) allows at
	// most about 8 attempts; a tight loop would make hundreds.
	poll.Until(t, 5*time.Second, "3 s of retries", func() bool { return time.Since(start) > 3*time.Second })
	if n := b.Stats().ConnectAttempts; n < 2 || n > 10 {
		t.Fatalf("%d connect attempts in %s, want 2-10", n, time.Since(start))
	}
	if n := strings.Count(srv.Log(), "not authorised"); n > 10 {
		t.Fatalf("Mosquitto saw %d refused connections", n)
	}
	if n := strings.Count(logs.String(), "broker connection failed"); n != 1 {
		t.Fatalf("%d failure log lines, want 1 (one per state change):\n%s", n, logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(states) < 2 || states[0].Status != StatusConnecting || states[1].Status != StatusFailed {
		t.Fatalf("state changes = %+v", states)
	}
	if err := publish(b, protocol.DownlinkCommand(root, "dev-1"), "x"); !errors.Is(err, ErrNotConnected) || !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("Publish = %v, want ErrNotConnected carrying the cause", err)
	}
}

// TestTLS: the right CA connects over ssl://; a wrong CA, a host name the certificate does
// not name and an expired certificate each give state failed with a TLS error.
func TestTLS(t *testing.T) {
	t.Parallel()
	srv := mosquitto(t, true, false)
	expired := testsvc.Mosquitto(t, testsvc.MosquittoOptions{Servers: map[string]string{serverUser: serverPass}, TLS: true, ExpiredCert: true})

	good := fastConfig(srv.TLSURL())
	good.CACertPEM = string(srv.CACertPEM)
	b := startBridge(t, good, nil)
	waitConnected(t, b)
	if err := publish(b, root+"/dev-1/down/cmd", "over-tls"); err != nil {
		t.Fatal(err)
	}

	badCA := good
	badCA.CACertPEM = string(testsvc.NewCAPEM(t))
	badHost := good
	badHost.URL = strings.Replace(srv.TLSURL(), "127.0.0.1", "localhost", 1)
	exp := fastConfig(expired.TLSURL())
	exp.CACertPEM = string(expired.CACertPEM)

	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown CA", badCA, "unknown authority"},
		{"hostname mismatch", badHost, "localhost"},
		{"expired certificate", exp, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs := &logbuf.Buffer{}
			b := startBridge(t, tc.cfg, logs)
			poll.Until(t, 10*time.Second, "state failed", func() bool { return b.State().Status == StatusFailed })
			st := b.State()
			if !errors.Is(st.Err, ErrTLS) || !strings.Contains(st.LastError, tc.want) {
				t.Fatalf("state = %+v, want a TLS error mentioning %q", st, tc.want)
			}
			// The state changes before the failure is logged: wait for the line too.
			poll.State(t, poll.Interval, 10*time.Second, "the TLS failure's log line", func() (bool, string) {
				return strings.Contains(logs.String(), "error_kind=tls"), logs.String()
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := Test(ctx, tc.cfg); !errors.Is(err, ErrTLS) {
				t.Fatalf("Test = %v, want ErrTLS", err)
			}
		})
	}
}

// dropper accepts TCP connections and closes them at once: a broker that accepts then drops.
func dropper(t *testing.T) (addr string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestBadBrokers: unreachable host, a server that drops the connection, and a wrong scheme
// each give a clear state and log line; the first two back off.
func TestBadBrokers(t *testing.T) {
	t.Parallel()
	dropAddr, accepted := dropper(t)
	closedPort := testsvc.FreePort(t) // nothing listens there

	for _, tc := range []struct {
		name   string
		url    string
		status Status
		class  error
	}{
		{"unreachable", fmt.Sprintf("tcp://127.0.0.1:%d", closedPort), StatusDisconnected, ErrUnreachable},
		{"accepts then drops", "tcp://" + dropAddr, StatusDisconnected, ErrDropped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs := &logbuf.Buffer{}
			cfg := fastConfig(tc.url)
			cfg.MinBackoff, cfg.MaxBackoff = 200*time.Millisecond, time.Second
			start := time.Now()
			b := startBridge(t, cfg, logs)
			poll.Until(t, 10*time.Second, "a failed attempt", func() bool { return b.State().Err != nil })
			st := b.State()
			if (st.Status != tc.status && st.Status != StatusConnecting) || !errors.Is(st.Err, tc.class) {
				t.Fatalf("state = %+v, want %s with %v", st, tc.status, tc.class)
			}
			// The state changes before the failure is logged: wait for the line too.
			poll.State(t, poll.Interval, 10*time.Second, "the failure's log line", func() (bool, string) {
				return strings.Contains(logs.String(), "broker connection failed"), logs.String()
			})
			if tc.class == ErrDropped && accepted() == 0 {
				t.Fatal("the dropping server saw no connection")
			}
			poll.Until(t, 5*time.Second, "2 s of retries", func() bool { return time.Since(start) > 2*time.Second })
			if n := b.Stats().ConnectAttempts; n > 8 {
				t.Fatalf("%d attempts in %s: no backoff", n, time.Since(start))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := Test(ctx, cfg); !errors.Is(err, tc.class) {
				t.Fatalf("Test = %v, want %v", err, tc.class)
			}
		})
	}
	t.Run("wrong scheme", func(t *testing.T) {
		t.Parallel()
		logs := &logbuf.Buffer{}
		b := New(Config{URL: "http://127.0.0.1:1883"}, Deps{Logger: slog.New(slog.NewTextHandler(logs, nil))})
		err := b.Start(context.Background())
		var verr *store.InvalidError
		if !errors.As(err, &verr) || verr.Fields["url"] == "" || !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Start = %v, want a url field error", err)
		}
		if st := b.State(); st.Status != StatusFailed || !errors.Is(st.Err, ErrInvalidConfig) {
			t.Fatalf("state = %+v", st)
		}
		if !strings.Contains(logs.String(), "broker settings invalid") {
			t.Fatalf("no log line:\n%s", logs.String())
		}
		if err := Test(context.Background(), Config{URL: "mqtt+foo://x:1"}); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Test = %v", err)
		}
	})
}

// TestConnectionTest: the "test connection" action on good settings and on bad credentials,
// and on an account the ACL does not allow under the root.
func TestConnectionTest(t *testing.T) {
	t.Parallel()
	srv := mosquitto(t, false, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	good := fastConfig(srv.URL())
	if err := Test(ctx, good); err != nil {
		t.Fatalf("Test(good) = %v", err)
	}
	bad := good
	bad.Password = "nope"
	if err := Test(ctx, bad); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("Test(wrong password) = %v", err)
	}
	// A device account may not write under {root}/_bridge-test: the probe never comes back.
	devAccount := good
	devAccount.Username, devAccount.Password = "dev-1", "pw-1"
	devAccount.ConnectTimeout = 2 * time.Second
	if err := Test(ctx, devAccount); !errors.Is(err, ErrNotAuthorized) || !strings.Contains(err.Error(), "espadmin/#") {
		t.Fatalf("Test(device account) = %v", err)
	}
}

// TestSharedSubscription: two replicas in one share group each get a share of the uplinks,
// and every message reaches exactly one of them.
func TestSharedSubscription(t *testing.T) {
	t.Parallel()
	srv := mosquitto(t, false, false)
	a := fastConfig(srv.URL())
	a.ShareGroup = "replicas"
	bcfg := a
	bcfg.Username, bcfg.ClientID = "espadmin-server-b", "espadmin-server-b"
	ra, rb := startBridge(t, a, nil), startBridge(t, bcfg, nil)
	ia, ib := subscribe(t, ra, protocol.UplinkFilter(root, "")), subscribe(t, rb, protocol.UplinkFilter(root, ""))
	waitConnected(t, ra)
	waitConnected(t, rb)
	dev := connectDevice(t, srv.URL(), "dev-1", "pw-1")
	const n = 40
	for i := range n {
		dev.publish(t, protocol.Uplink(root, "dev-1", protocol.KindStatus), fmt.Sprintf("s%d", i))
	}
	poll.Until(t, 10*time.Second, "every message at one replica", func() bool {
		return len(ia.payloads())+len(ib.payloads()) >= n
	})
	for i := range n {
		p := fmt.Sprintf("s%d", i)
		if got := ia.count(p) + ib.count(p); got != 1 {
			t.Fatalf("%s delivered %d times across replicas", p, got)
		}
	}
	if len(ia.payloads()) == 0 || len(ib.payloads()) == 0 {
		t.Fatalf("one replica got everything: %d / %d", len(ia.payloads()), len(ib.payloads()))
	}
}

func testCAPEM(t *testing.T) []byte { return testsvc.NewCAPEM(t) }
