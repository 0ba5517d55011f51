package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/cmd/espadmin/sim"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/server/logrelay"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// logWorld is a harness with the real broker, a log relay on it (registered on the fleet's
// registry, which also holds the broker's and ingestion's counters) and a server serving the
// stream, with one owner of tenant alpha logged in.
type logWorld struct {
	h        *harness
	base     string
	relay    *logrelay.Relay
	owner    *apiClient
	tenantID string
}

func newLogWorld(t *testing.T, opts logrelay.Options) *logWorld {
	t.Helper()
	h := newHarness(t, withBroker())
	h.createUser(t, "owner@alpha.test", "alpha", store.RoleOwner)
	w := &logWorld{h: h, tenantID: tenantID(t, h.st, "alpha")}
	opts.Bus, opts.Root, opts.Registerer = h.fleet.broker, protocol.DefaultRoot, h.fleet.reg
	opts.Debugger, opts.AutoDebug = &logrelay.CommandsDebugger{Commands: h.fleet.commands}, true
	w.relay = logrelay.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.relay.Run(ctx) }()
	ln, base := listenLocal(t)
	w.base = base
	s := New(HTTPConfig{Addr: ln.Addr().String(), PublicURL: base}, Deps{Logger: slog.New(slog.DiscardHandler), Store: h.st, Keyring: h.keyring,
		Now: h.clock.Now, Accounts: h.opts.accounts, PasswordHash: cheapHash,
		Devices: h.fleet.devices, Commands: h.fleet.commands, Events: h.fleet.hub, Logs: w.relay})
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = s.Shutdown(sctx)
		<-served
		cancel()
		<-done
	})
	w.owner = h.login(t, "owner@alpha.test")
	w.owner.base = w.base
	return w
}

// device provisions and runs a simulated device producing linesPerSecond while debug is on.
func (w *logWorld) device(t *testing.T, name string, linesPerSecond int) *sim.Device {
	t.Helper()
	p, err := w.h.fleet.devices.Create(t.Context(), w.tenantID, fleet.DeviceInput{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	d, err := sim.NewDevice(sim.Options{Bundle: p.Bundle, BrokerURL: "tcp://" + w.h.fleet.mqttAddr,
		LogLinesPerSecond: linesPerSecond, ReconnectDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background())
	t.Cleanup(d.Stop)
	poll.Wait(t, name+" connected", d.Connected)
	return d
}

// metric reads a relay, broker or ingestion counter from the fleet's registry.
func (w *logWorld) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return gathered(t, w.h.fleet.reg, name, labels)
}

// debug sends debug on or off to a device through the commands API, as a user would.
func (w *logWorld) debug(t *testing.T, deviceID string, params map[string]any) {
	t.Helper()
	st, resp := w.owner.do("POST", "/api/v1/tenants/alpha/commands", map[string]any{
		"name": "debug", "params": params, "target": map[string]any{"device_ids": []string{deviceID}}})
	if st != http.StatusCreated && st != http.StatusAccepted && st != http.StatusOK {
		t.Fatalf("POST debug command: %d %v", st, resp)
	}
}

// wsViewer is a browser's end of a log stream: a real WebSocket whose frames a goroutine
// collects once read starts.
type wsViewer struct {
	conn *websocket.Conn
	mu   sync.Mutex
	fr   []logrelay.Frame
	err  error
}

// watch opens the stream of deviceID. rcvBuf, when positive, is the client socket's receive
// buffer, set before connecting so the TCP window stays that small.
func (w *logWorld) watch(t *testing.T, deviceID string, rcvBuf int) *wsViewer {
	t.Helper()
	hdr := http.Header{"Origin": {w.base}}
	for _, ck := range w.owner.http.Jar.Cookies(mustURL(t, w.base)) {
		hdr.Add("Cookie", ck.Name+"="+ck.Value)
	}
	dialer := *websocket.DefaultDialer
	if rcvBuf > 0 {
		nd := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
			}); err != nil {
				return err
			}
			return serr
		}}
		dialer.NetDialContext = nd.DialContext
	}
	u := mustURL(t, w.base)
	conn, resp, err := dialer.DialContext(t.Context(), "ws://"+u.Host+"/api/v1/tenants/alpha/devices/"+deviceID+"/logs/stream?level=debug", hdr)
	if err != nil {
		t.Fatalf("open log stream: %v %v", resp, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsViewer{conn: conn}
}

// read starts collecting frames.
func (v *wsViewer) read() *wsViewer {
	go func() {
		for {
			_, data, err := v.conn.ReadMessage()
			var fr logrelay.Frame
			if err == nil {
				err = json.Unmarshal(data, &fr)
			}
			v.mu.Lock()
			if err != nil {
				v.err = err
				v.mu.Unlock()
				return
			}
			v.fr = append(v.fr, fr)
			v.mu.Unlock()
		}
	}()
	return v
}

func (v *wsViewer) frames() []logrelay.Frame {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]logrelay.Frame(nil), v.fr...)
}

// lines returns the lines received, in order.
func (v *wsViewer) lines() []logrelay.Line {
	var out []logrelay.Line
	for _, fr := range v.frames() {
		if fr.Type == logrelay.FrameLines {
			out = append(out, fr.Lines...)
		}
	}
	return out
}

// count sums the counts of frames of type typ and tells how many there were.
func (v *wsViewer) count(typ string) (frames int, total int64) {
	for _, fr := range v.frames() {
		if fr.Type == typ {
			frames++
			total += fr.Count
		}
	}
	return frames, total
}

// debugOff reports whether a debug frame with enabled false arrived.
func (v *wsViewer) debugOff() bool {
	for _, fr := range v.frames() {
		if fr.Type == logrelay.FrameDebug && fr.Enabled != nil && !*fr.Enabled {
			return true
		}
	}
	return false
}

// contiguous fails unless lines are exactly seq from, from+1, … (nothing lost, reordered
// or repeated).
func contiguous(t *testing.T, who string, lines []logrelay.Line, from int64) {
	t.Helper()
	for i, l := range lines {
		if l.Seq != from+int64(i) {
			t.Fatalf("%s: line %d has seq %d, want %d (%q)", who, i, l.Seq, from+int64(i), l.Msg)
		}
		if want := fmt.Sprintf("simulated line %d", l.Seq); l.Msg != want {
			t.Fatalf("%s: line %d is %q, want %q", who, i, l.Msg, want)
		}
	}
}

// holds checks every 20 ms that cond stays true for the whole window d, its end included:
// the observation window of a "nothing more happens" assertion, not a wait, so it is not
// poll.Until (which returns as soon as its condition holds).
func holds(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	end := time.Now().Add(d)
	for {
		if !cond() {
			t.Fatalf("%s stopped holding", what)
		}
		if !time.Now().Before(end) {
			return
		}
		<-tick.C
	}
}

// TestLogsEndToEndSlowViewer: a simulated device streams 1,000 lines/s through the real
// broker to two WebSocket viewers. One reads everything: it receives every line the device
// sent, in order, with no dropped or gap frame. The other does not read at all (its socket's
// receive window is 4 KiB): once the kernel buffers and its relay buffer are full it loses
// lines, counted in espadmin_logrelay_viewer_dropped_lines_total, and when it reads again it
// gets a "dropped" frame with the count, then later lines still in order.
func TestLogsEndToEndSlowViewer(t *testing.T) {
	t.Parallel()
	w := newLogWorld(t, logrelay.Options{ViewerBuffer: 8})
	d := w.device(t, "chatty", 1000)

	fast := w.watch(t, d.ID(), 0).read()
	poll.Wait(t, "debug on at the device", d.Debugging)
	slow := w.watch(t, d.ID(), 4<<10) // never read until the relay has dropped some of its lines
	poll.Wait(t, "two viewers", func() bool { return w.relay.Viewers(d.ID()) == 2 })
	poll.Wait(t, "the slow viewer to lose 200 lines", func() bool {
		return w.metric(t, "espadmin_logrelay_viewer_dropped_lines_total", nil) >= 200
	})
	slow.read()
	poll.Wait(t, "the dropped frame", func() bool { n, _ := slow.count(logrelay.FrameDropped); return n > 0 })

	w.debug(t, d.ID(), map[string]any{"enabled": false})
	poll.Wait(t, "debug off at the device", func() bool { return !d.Debugging() })
	// A batch in flight when debug went off may still be counted and delivered: wait until the
	// viewer holds exactly what the device sent (a duplicate or a loss never settles).
	var lines []logrelay.Line
	poll.State(t, poll.Interval, poll.Timeout, "every line at the fast viewer, once", func() (bool, string) {
		sent := d.Stats().LogLines
		lines = fast.lines()
		return int64(len(lines)) == sent, fmt.Sprintf("fast viewer has %d lines, the device sent %d", len(lines), sent)
	})
	sent := int64(len(lines))
	contiguous(t, "fast viewer", lines, 0)
	if n, _ := fast.count(logrelay.FrameDropped); n != 0 {
		t.Errorf("fast viewer got %d dropped frames", n)
	}
	if n, _ := fast.count(logrelay.FrameGap); n != 0 {
		t.Errorf("fast viewer got %d gap frames", n)
	}

	_, dropped := slow.count(logrelay.FrameDropped)
	got := slow.lines()
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("slow viewer: seq %d after %d", got[i].Seq, got[i-1].Seq)
		}
	}
	if dropped < 200 || int64(len(got))+dropped > sent {
		t.Errorf("slow viewer: %d lines + %d dropped, device sent %d", len(got), dropped, sent)
	}
	t.Logf("device sent %d lines; fast viewer %d; slow viewer %d and %d reported dropped", sent, len(lines), len(got), dropped)
}

// TestLogsEndToEndStreamStops: the device's stream, and with it the viewer's lines, stops
// (a) when a user turns debug off through the commands API — the viewer is told with a debug
// frame — and (b) by itself at duration_s, with the relay's clock frozen so it never renews
// and never sends debug off: the simulated device honours the time limit on its own.
func TestLogsEndToEndStreamStops(t *testing.T) {
	t.Parallel()
	frozen := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		opts logrelay.Options
		stop func(t *testing.T, w *logWorld, d *sim.Device)
	}{
		{"debug off through the API", logrelay.Options{}, func(t *testing.T, w *logWorld, d *sim.Device) {
			w.debug(t, d.ID(), map[string]any{"enabled": false})
		}},
		{"time limit", logrelay.Options{DebugDuration: time.Second, Tick: 20 * time.Millisecond,
			Now: func() time.Time { return frozen }}, func(*testing.T, *logWorld, *sim.Device) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newLogWorld(t, tc.opts)
			d := w.device(t, "sensor", 100)
			v := w.watch(t, d.ID(), 0).read()
			poll.Wait(t, "lines at the viewer", func() bool { return len(v.lines()) >= 20 })
			began := time.Now()
			tc.stop(t, w, d)
			poll.Wait(t, "the device to stop streaming", func() bool { return !d.Debugging() })
			t.Logf("device stopped %v after the first 20 lines", time.Since(began).Round(time.Millisecond))
			sent := d.Stats().LogLines
			poll.Wait(t, "the last lines at the viewer", func() bool { return int64(len(v.lines())) == sent })
			contiguous(t, "viewer", v.lines(), 0)
			holds(t, 1500*time.Millisecond, "no more lines", func() bool {
				return d.Stats().LogLines == sent && int64(len(v.lines())) == sent
			})
			if w.relay.Viewers(d.ID()) != 1 {
				t.Errorf("the viewer left")
			}
			cmds, err := w.h.st.ListCommands(t.Context(), w.tenantID, store.CommandFilter{DeviceID: d.ID()}, store.ListOptions{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			var on, off int
			for _, c := range cmds.Items {
				if c.Name != protocol.CommandDebug {
					continue
				}
				if strings.Contains(c.Payload, `"enabled":true`) {
					on++
				} else {
					off++
				}
			}
			switch tc.name {
			case "time limit":
				if on != 1 || off != 0 {
					t.Errorf("time limit: %d debug on and %d off commands; the device should have stopped by itself", on, off)
				}
			default:
				if !v.debugOff() {
					t.Errorf("no debug frame with enabled false")
				}
				if on != 1 || off != 1 {
					t.Errorf("%d debug on and %d off commands", on, off)
				}
			}
		})
	}
}

// TestLogsEndToEndBadInputAndFlood: a watched device sends a malformed, an oversized and an
// invalid log payload, then floods 300 batches; ingestion and the relay count each bad
// payload by class and drop it, the broker drops and counts the flood beyond the device's
// rate limit, and meanwhile another device's viewer receives every one of its lines in
// order with neither gap nor dropped frame.
func TestLogsEndToEndBadInputAndFlood(t *testing.T) {
	t.Parallel()
	w := newLogWorld(t, logrelay.Options{})
	bad := w.device(t, "noisy", 20)
	good := w.device(t, "quiet", 200)
	badView := w.watch(t, bad.ID(), 0).read()
	goodView := w.watch(t, good.ID(), 0).read()
	poll.Wait(t, "both streaming", func() bool { return bad.Debugging() && good.Debugging() && len(goodView.lines()) > 0 })

	inputs := []struct {
		name, class string
		payload     []byte
	}{
		{"malformed", "malformed", []byte(`{"v":1,"seq":`)},
		{"oversized", "too_large", []byte(`{"v":1,"seq":0,"lines":[{"level":"info","ms":1,"msg":"` + strings.Repeat("x", 9<<10) + `"}]}`)},
		{"no lines", "invalid_field", []byte(`{"v":1,"seq":0,"lines":[]}`)},
	}
	for _, in := range inputs {
		if err := bad.PublishRaw(protocol.KindLog, in.payload); err != nil {
			t.Fatalf("%s: %v", in.name, err)
		}
	}
	for _, in := range inputs {
		poll.Wait(t, in.name+" counted", func() bool {
			return w.metric(t, "espadmin_ingest_invalid_total", map[string]string{"kind": "log", "class": in.class}) == 1 &&
				w.metric(t, "espadmin_logrelay_invalid_total", map[string]string{"class": in.class}) == 1
		})
	}

	const flood = 300
	for i := range flood {
		payload, err := protocol.EncodeLogBatch(protocol.LogBatch{Seq: int64(1_000_000 + i),
			Lines: []protocol.LogLine{{Level: "info", Tag: "flood", Msg: "again", MS: int64(i)}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := bad.PublishRaw(protocol.KindLog, payload); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.metric(t, "espadmin_mqtt_messages_dropped_total", map[string]string{"reason": "rate_limited"}); got == 0 {
		t.Errorf("the flood was not rate limited")
	}
	poll.Wait(t, "flood lines at the noisy device's viewer", func() bool {
		for _, l := range badView.lines() {
			if l.Tag == "flood" {
				return true
			}
		}
		return false
	})

	// Nothing else disturbed: the quiet device's viewer has every line, in order.
	after := good.Stats().LogLines
	poll.Wait(t, "the quiet device's lines", func() bool { return int64(len(goodView.lines())) >= after })
	contiguous(t, "quiet viewer", goodView.lines(), 0)
	for _, typ := range []string{logrelay.FrameDropped, logrelay.FrameGap} {
		if n, _ := goodView.count(typ); n != 0 {
			t.Errorf("quiet viewer got %d %s frames", n, typ)
		}
	}
	if !bad.Connected() || !good.Connected() || !bad.Debugging() || !good.Debugging() {
		t.Errorf("a device was disturbed: connected %v/%v debugging %v/%v", bad.Connected(), good.Connected(), bad.Debugging(), good.Debugging())
	}
	if n := w.metric(t, "espadmin_logrelay_invalid_total", nil); n != 3 {
		t.Errorf("relay counted %v invalid payloads, want 3", n)
	}
}
