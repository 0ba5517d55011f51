package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/espadmin/espadmin/broker"
	"github.com/espadmin/espadmin/broker/brokertest"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/server/logrelay"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
	"github.com/espadmin/espadmin/store/sqlstore"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// Live log benchmark load: batchesPerSecond batches of linesPerBatch lines (1,000 lines/s).
const (
	benchBatchesPerSecond = 100
	benchLinesPerBatch    = 10
)

// BenchmarkLogLatency measures device publish → browser frame latency of live logs: one
// device (a paho MQTT client with the device's own credentials) publishes b.N log batches
// of 10 lines at 100 batches/s (1,000 lines/s) through the real embedded broker; the relay
// fans them out and the server writes them to one WebSocket client. Each line's message is
// the wall time it was published (ns); the latency is the time the client has decoded the
// frame holding it. Reports p50 and p99 in ms and the lines lost (QoS 0).
//
//	go test -run '^$' -bench LogLatency -benchtime 3000x ./server
//
// The broker's per-device rate limit (50 msg/s by default) is lifted, as in the broker
// benchmarks: the target is the relay path at 1,000 lines/s, which a real device reaches
// with fewer, fuller batches (up to 64 lines).
func BenchmarkLogLatency(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Store, keyring, broker, relay and server, as serve.go wires them.
	st, err := sqlstore.Open(ctx, "sqlite://"+filepath.ToSlash(filepath.Join(b.TempDir(), "bench.db")), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	kr, err := seal.NewKeyring(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	brk := brokertest.Start(b, brokertest.Options{Devices: st, Configure: func(c *broker.Config) {
		c.RateLimit, c.RateBurst = 1_000_000, 1_000_000
	}})
	hub := fleet.NewHub(func(int) {})
	devices := fleet.NewDevices(fleet.DevicesOptions{Store: st, Keyring: kr, Sessions: brk, Hub: hub,
		Endpoint: fleet.Endpoint{Root: protocol.DefaultRoot, MQTTHost: "127.0.0.1", MQTTPort: 1883, ServerURL: "http://localhost"}})
	relay := logrelay.New(logrelay.Options{Bus: brk, Root: protocol.DefaultRoot})
	accounts := AccountsConfig{Signup: SignupClosed, SessionIdleTimeout: time.Hour, SessionMaxAge: time.Hour, ResetLinkTTL: time.Hour}
	ln, base := listenLocal(b)
	srv := New(HTTPConfig{Addr: ln.Addr().String(), PublicURL: base}, Deps{Logger: slog.New(slog.DiscardHandler), Store: st, Keyring: kr,
		Accounts: accounts, PasswordHash: cheapHash, Devices: devices, Events: hub, Logs: relay})
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	}()

	// A viewer of tenant alpha and one device.
	if _, _, _, err := srv.accounts.AddToTenant(ctx, account.SignupInput{Email: "bench@alpha.test", Password: testPassword}, "alpha", "", store.RoleOwner); err != nil {
		b.Fatal(err)
	}
	tn, err := st.TenantBySlug(ctx, "alpha")
	if err != nil {
		b.Fatal(err)
	}
	p, err := devices.Create(ctx, tn.ID, fleet.DeviceInput{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	login, _ := json.Marshal(map[string]string{"email": "bench@alpha.test", "password": testPassword})
	resp, err := client.Post(base+"/api/v1/auth/login", "application/json", bytes.NewReader(login))
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("login: %d", resp.StatusCode)
	}
	u, _ := url.Parse(base)
	hdr := http.Header{"Origin": {base}}
	for _, ck := range jar.Cookies(u) {
		hdr.Add("Cookie", ck.Name+"="+ck.Value)
	}
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+u.Host+"/api/v1/tenants/alpha/devices/"+p.Device.ID+"/logs/stream", hdr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	poll.Until(b, 10*time.Second, "the viewer to be registered", func() bool { return relay.Viewers(p.Device.ID) == 1 })

	// The device: its own credentials, QoS 0 like the firmware's log batches.
	dev := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + brk.Addr("tcp")).
		SetClientID(p.Bundle.DeviceID).SetUsername(p.Bundle.DeviceID).SetPassword(p.Bundle.Secret).
		SetCleanSession(true).SetAutoReconnect(false))
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("device connect: %v", tok.Error())
	}
	defer dev.Disconnect(100)
	topic := protocol.Uplink(protocol.DefaultRoot, p.Device.ID, protocol.KindLog)

	// The browser: decode every frame, take each line's latency.
	want := b.N * benchLinesPerBatch
	latencies := make([]time.Duration, 0, want)
	read := make(chan error, 1)
	go func() {
		for len(latencies) < want {
			_, data, err := conn.ReadMessage()
			if err != nil {
				read <- err
				return
			}
			var fr logrelay.Frame
			if err := json.Unmarshal(data, &fr); err != nil {
				read <- err
				return
			}
			now := time.Now()
			for _, l := range fr.Lines {
				sent, err := strconv.ParseInt(l.Msg, 10, 64)
				if err != nil {
					read <- fmt.Errorf("line %q: %w", l.Msg, err)
					return
				}
				latencies = append(latencies, now.Sub(time.Unix(0, sent)))
			}
		}
		read <- nil
	}()

	b.ResetTimer()
	tick := time.NewTicker(time.Second / benchBatchesPerSecond)
	defer tick.Stop()
	lines := make([]protocol.LogLine, benchLinesPerBatch)
	for i := range b.N {
		<-tick.C
		now := time.Now()
		for j := range lines {
			lines[j] = protocol.LogLine{Level: protocol.LevelInfo, Tag: "bench", MS: now.UnixMilli(), Msg: strconv.FormatInt(now.UnixNano(), 10)}
		}
		payload, err := protocol.EncodeLogBatch(protocol.LogBatch{Seq: int64(i * benchLinesPerBatch), Lines: lines})
		if err != nil {
			b.Fatal(err)
		}
		dev.Publish(topic, 0, false, payload) // QoS 0: nothing to wait for
	}
	var readErr error
	select {
	case readErr = <-read:
	case <-time.After(5 * time.Second): // lines lost in transit (QoS 0) never arrive
		_ = conn.SetReadDeadline(time.Now()) // ends the reader
		readErr = <-read
	}
	b.StopTimer()
	if readErr != nil && len(latencies) < want && !websocket.IsUnexpectedCloseError(readErr) && !isTimeout(readErr) {
		b.Fatal(readErr)
	}
	if len(latencies) == 0 {
		b.Fatal("no line reached the browser")
	}
	slices.Sort(latencies)
	pct := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(float64(latencies[len(latencies)-1])/float64(time.Millisecond), "max_ms")
	b.ReportMetric(float64(want-len(latencies)), "lost_lines")
	b.ReportMetric(0, "ns/op")
}

// isTimeout reports whether err is a network timeout (the read deadline ending the reader).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
