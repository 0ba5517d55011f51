package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/server/logrelay"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// logServer serves the harness's store with a log relay on the harness's real broker.
func logServer(t *testing.T, h *harness) (string, *logrelay.Relay) {
	t.Helper()
	relay := logrelay.New(logrelay.Options{Bus: h.fleet.broker, Root: protocol.DefaultRoot,
		Debugger: &logrelay.CommandsDebugger{Commands: h.fleet.commands}, AutoDebug: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(ctx) }()
	ln, url := listenLocal(t)
	s := New(HTTPConfig{Addr: ln.Addr().String(), PublicURL: url}, Deps{Logger: slog.New(slog.DiscardHandler), Store: h.st, Keyring: h.keyring,
		Now: h.clock.Now, Accounts: h.opts.accounts, PasswordHash: cheapHash,
		Devices: h.fleet.devices, Commands: h.fleet.commands, Events: h.fleet.hub, Logs: relay,
		AllowedOrigins: []string{"https://console.example.test"}})
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
	return url, relay
}

// dialLogs opens a log stream with c's session cookie and the given Origin.
func dialLogs(t *testing.T, c *apiClient, base, path, origin string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	hdr := http.Header{}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	u := mustURL(t, base)
	for _, ck := range c.http.Jar.Cookies(mustURL(t, c.base)) {
		hdr.Add("Cookie", ck.Name+"="+ck.Value)
	}
	return websocket.DefaultDialer.DialContext(t.Context(), "ws://"+u.Host+path, hdr)
}

// TestLogStream: through the real broker, lines a device publishes reach a browser's
// WebSocket in order, the first viewer turns debug on; a cross-site Origin is refused and a
// device of another tenant is 404, both before any upgrade; shutdown closes the stream.
func TestLogStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withBroker())
	h.createUser(t, "a@alpha.test", "alpha", store.RoleViewer)
	h.createUser(t, "b@beta.test", "beta", store.RoleOwner)
	ta, tb := tenantID(t, h.st, "alpha"), tenantID(t, h.st, "beta")
	devA, err := h.fleet.devices.Create(t.Context(), ta, fleet.DeviceInput{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	devB, err := h.fleet.devices.Create(t.Context(), tb, fleet.DeviceInput{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	base, relay := logServer(t, h)
	viewer := h.login(t, "a@alpha.test")
	viewer.base = base
	viewer.do("GET", "/api/v1/auth/me", nil)
	path := "/api/v1/tenants/alpha/devices/" + devA.Device.ID + "/logs/stream?level=debug"

	_, resp, err := dialLogs(t, viewer, base, path, "https://evil.example.test")
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site origin: %v %v", resp, err)
	}
	_, resp, err = dialLogs(t, viewer, base, "/api/v1/tenants/alpha/devices/"+devB.Device.ID+"/logs/stream", base)
	if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("other tenant's device: %v %v", resp, err)
	}
	_, resp, err = dialLogs(t, viewer, base, "/api/v1/tenants/beta/devices/"+devB.Device.ID+"/logs/stream", base)
	if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("other tenant: %v %v", resp, err)
	}

	conn, _, err := dialLogs(t, viewer, base, path, "https://console.example.test")
	if err != nil {
		t.Fatalf("allowed origin: %v", err)
	}
	defer conn.Close()
	poll.Wait(t, "viewer registered", func() bool { return relay.Viewers(devA.Device.ID) == 1 })
	poll.Wait(t, "debug on sent", func() bool {
		cmds, _ := h.st.ListCommands(t.Context(), ta, store.CommandFilter{DeviceID: devA.Device.ID}, store.ListOptions{Limit: 10})
		return len(cmds.Items) == 1 && cmds.Items[0].Name == protocol.CommandDebug
	})
	for i := range 10 {
		payload, err := protocol.EncodeLogBatch(protocol.LogBatch{Seq: int64(i * 2), Lines: []protocol.LogLine{
			{Level: "info", Msg: "first", MS: 1}, {Level: "debug", Tag: "wifi", Msg: "second", MS: 2}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.fleet.broker.Publish(t.Context(), messaging.Message{Topic: protocol.Uplink(protocol.DefaultRoot, devA.Device.ID, protocol.KindLog), Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	var want int64
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for want < 20 {
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var fr logrelay.Frame
		if err := json.Unmarshal(data, &fr); err != nil {
			t.Fatal(err)
		}
		if fr.Type != logrelay.FrameLines {
			continue // the debug frame of the relay's own command
		}
		for _, l := range fr.Lines {
			if l.Seq != want {
				t.Fatalf("line %+v, want seq %d", l, want)
			}
			want++
		}
	}
	relay.Close() // what server shutdown does
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseGoingAway) && !strings.Contains(err.Error(), "going away") {
				t.Errorf("close: %v", err)
			}
			break
		}
	}
}
