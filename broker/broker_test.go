package broker

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store/devauth"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// TestHookProvides pins the events each hook answers: mochi calls a hook for every event it
// provides, so an extra one would change behaviour (an OnACLCheck anywhere else would be
// OR-combined with the ACL) and a missing one would silently switch a check off.
func TestHookProvides(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	want := map[string][]byte{
		"espadmin-auth":     {mqtt.OnConnectAuthenticate},
		"espadmin-acl":      {mqtt.OnConnect, mqtt.OnACLCheck, mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnPublish},
		"espadmin-presence": {mqtt.OnSessionEstablished, mqtt.OnSubscribed, mqtt.OnDisconnect},
		"espadmin-ingest":   {mqtt.OnPublish, mqtt.OnPublishDropped, mqtt.OnDisconnect},
		"espadmin-limits":   {mqtt.OnConnect},
		// conformance.go: protocol fixes of what mochi sends or leaves unanswered.
		"espadmin-conformance": {mqtt.OnPacketEncode, mqtt.OnPacketRead},
	}
	hooks := []mqtt.Hook{tb.auth, tb.acl, tb.presence, tb.ingest, tb.limits, tb.conform}
	for _, h := range hooks {
		var got []byte
		for e := byte(0); e <= mqtt.StoredSysInfo; e++ {
			if h.Provides(e) {
				got = append(got, e)
			}
		}
		w, ok := want[h.ID()]
		if !ok {
			t.Errorf("unexpected hook %s", h.ID())
			continue
		}
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("%s provides %v, want %v", h.ID(), got, w)
		}
	}
	aclHooks := 0
	for _, h := range hooks {
		if h.Provides(mqtt.OnACLCheck) {
			aclHooks++
		}
	}
	if aclHooks != 1 {
		t.Errorf("%d hooks answer OnACLCheck, want exactly 1", aclHooks)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	addr := "tcp://" + tb.addr
	tb.devices.add("dev-good", "s3cret", false)
	tb.devices.add("dev-off", "s3cret", true)

	tests := []struct {
		name, id, secret string
		opts             []clientOpt
		reason           string
	}{
		{"good credentials", "dev-good", "s3cret", nil, connectOK},
		{"wrong secret", "dev-good", "wrong", nil, connectBadSecret},
		{"empty secret", "dev-good", "", nil, connectBadSecret},
		{"unknown device", "dev-nobody", "s3cret", nil, connectUnknownDevice},
		{"disabled device", "dev-off", "s3cret", nil, connectDisabled},
		{"client ID differs from device ID", "dev-good", "s3cret", []clientOpt{withClientID("dev-other")}, connectClientIDMismatch},
		{"username is not a device ID", "Dev/#", "s3cret", []clientOpt{withClientID("Dev/#")}, connectInvalidUsername},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tb.counter("connects", tt.reason)
			_, err := dial(t, addr, tt.id, tt.secret, tt.opts...)
			if tt.reason == connectOK {
				if err != nil {
					t.Fatalf("connect refused: %v", err)
				}
			} else if err == nil {
				t.Fatal("connect accepted, want refused")
			}
			if got := tb.counter("connects", tt.reason); got != before+1 {
				t.Errorf("connects{result=%s} = %v, want %v", tt.reason, got, before+1)
			}
		})
	}
}

func TestAuthCacheAndForget(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	addr := "tcp://" + tb.addr
	tb.devices.add("dev-a", "one", false)

	for i := 0; i < 3; i++ {
		c := mustDial(t, addr, "dev-a", "one")
		c.Disconnect(0)
	}
	if _, err := dial(t, addr, "dev-x", "x"); err == nil {
		t.Fatal("unknown device connected")
	}
	if _, err := dial(t, addr, "dev-x", "x"); err == nil {
		t.Fatal("unknown device connected")
	}
	if got := tb.devices.calls.Load(); got != 2 {
		t.Fatalf("store lookups = %d, want 2 (one per device; positive and negative entries cached)", got)
	}

	// Rotation: without Forget the cached hash would still accept the old secret.
	tb.devices.add("dev-a", "two", false)
	tb.Forget("dev-a")
	if tb.auth.cached("dev-a") {
		t.Fatal("Forget left the entry cached")
	}
	if _, err := dial(t, addr, "dev-a", "one"); err == nil {
		t.Fatal("old secret accepted after Forget")
	}
	mustDial(t, addr, "dev-a", "two")
}

func TestAuthCacheExpiresAndIsBounded(t *testing.T) {
	t.Parallel()
	devs := newFakeDevices()
	devs.add("dev-a", "s", false)
	m := newMetrics(&Broker{})
	now := time.Unix(1000, 0)
	cache := devauth.New(devs, devauth.Options{TTL: 30 * time.Second, Size: 10, Now: func() time.Time { return now }})
	h := newAuthHook(cache, m, testLogger(), context.Background())
	if _, err := h.lookup("dev-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.lookup("dev-a"); err != nil {
		t.Fatal(err)
	}
	if got := devs.calls.Load(); got != 1 {
		t.Fatalf("lookups within TTL = %d, want 1", got)
	}
	now = now.Add(31 * time.Second)
	if _, err := h.lookup("dev-a"); err != nil {
		t.Fatal(err)
	}
	if got := devs.calls.Load(); got != 2 {
		t.Fatalf("lookups after TTL = %d, want 2", got)
	}
	for i := 0; i < 50; i++ {
		_, _ = h.lookup("dev-n" + string(rune('a'+i%26)) + string(rune('a'+i/26)))
	}
	if n := cache.Len(); n > 10 {
		t.Fatalf("cache holds %d entries, bound is 10", n)
	}
}

// TestDeviceIsolation: device A cannot subscribe to, nor receive, device B's messages through
// any wildcard, shared subscription or retained message, while its own downlink works.
func TestDeviceIsolation(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	addr := "tcp://" + tb.addr
	tb.devices.add("dev-a", "sa", false)
	tb.devices.add("dev-b", "sb", false)

	// A retained message on B's downlink (the server never retains commands; the test does
	// to prove a retained message cannot leak either) and a retained status of B.
	serverPublish(t, tb.Broker, cmdTopic("dev-b"), true, `{"secret":"retained-for-b"}`)
	serverPublish(t, tb.Broker, upTopic("dev-b", protocol.KindStatus), true, `{"v":1,"online":true}`)

	in := &inbox{}
	refused := []string{
		"#", "+", "+/#", "+/+/+/+", "espadmin/#", "espadmin/+/down/#", "espadmin/+/down/cmd",
		"espadmin/dev-b/down/#", "espadmin/dev-b/down/cmd", "espadmin/dev-b/#", "espadmin/dev-a/up/#",
		"espadmin/dev-a/#", "$share/g/espadmin/dev-b/down/#", "$share/g/#", "$share/g/espadmin/dev-a/down/#",
		"$SYS/#", "$queue/espadmin/#", "espadmin/dev-a/down//cmd",
	}
	// SUBACK codes read off the wire (paho reports shared-subscription results under the
	// stripped filter).
	raw := rawConnect(t, tb.addr, "dev-a", "sa")
	for _, f := range refused {
		if code := rawSubscribe(t, raw, f); code != 0x80 {
			t.Errorf("SUBSCRIBE %q granted %#x, want 0x80 (refused)", f, code)
		}
	}
	raw.Close()

	// The same filters through a real client, which then must receive only its own commands.
	a := mustDial(t, addr, "dev-a", "sa")
	for _, f := range refused {
		mustSubscribe(t, a, f, in.pahoHandler)
	}
	if code := mustSubscribe(t, a, "espadmin/dev-a/down/#", in.pahoHandler); code != 1 {
		t.Fatalf("own downlink refused: %#x", code)
	}

	b := mustDial(t, addr, "dev-b", "sb")
	binbox := &inbox{}
	mustSubscribe(t, b, "espadmin/dev-b/down/#", binbox.pahoHandler)

	serverPublish(t, tb.Broker, cmdTopic("dev-b"), false, `{"live":"for-b"}`)
	mustPublish(t, b, upTopic("dev-b", protocol.KindMetadata), 1, false, `{"v":1}`)
	serverPublish(t, tb.Broker, cmdTopic("dev-a"), false, `{"live":"for-a"}`)

	poll.Until(t, 5*time.Second, "A's own command", func() bool { return in.has(cmdTopic("dev-a"), "") })
	poll.Until(t, 5*time.Second, "B's command", func() bool { return binbox.has(cmdTopic("dev-b"), `{"live":"for-b"}`) })
	for _, m := range in.all() {
		if m.Topic != cmdTopic("dev-a") {
			t.Errorf("A received %s %s", m.Topic, m.Payload)
		}
	}
	if got := tb.counter("acl", aclSubscribe); got != float64(2*len(refused)) {
		t.Errorf("acl_denied{kind=subscribe} = %v, want %d", got, 2*len(refused))
	}
}

// TestPublishConfinement: a device publishes only into its own uplink, retains only status,
// and what it may not publish never reaches the server.
func TestPublishConfinement(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	addr := "tcp://" + tb.addr
	tb.devices.add("dev-a", "sa", false)
	all := serverSubscribe(t, tb.Broker, "#")

	a := mustDial(t, addr, "dev-a", "sa")
	forbidden := []struct {
		topic  string
		retain bool
	}{
		{upTopic("dev-b", protocol.KindStatus), false},  // another device's uplink
		{upTopic("dev-b", protocol.KindAck), false},     // another device's uplink
		{cmdTopic("dev-b"), false},                      // a downlink
		{cmdTopic("dev-a"), false},                      // its own downlink
		{"espadmin/dev-a/up/unknown", false},            // an unknown kind
		{"espadmin/dev-a/up/ack/extra", false},          // too deep
		{"other/dev-a/up/status", false},                // another root
		{"$SYS/broker/x", false},                        // broker topics
		{upTopic("dev-a", protocol.KindMetadata), true}, // retained other than status
		{upTopic("dev-a", protocol.KindLog), true},      // retained other than status
	}
	for _, f := range forbidden {
		mustPublish(t, a, f.topic, 0, f.retain, `{"v":1}`)
	}
	mustPublish(t, a, upTopic("dev-a", protocol.KindStatus), 1, true, `{"v":1,"online":true}`)
	mustPublish(t, a, upTopic("dev-a", protocol.KindMetadata), 1, false, `{"v":1}`)

	poll.Until(t, 5*time.Second, "the allowed metadata", func() bool { return all.has(upTopic("dev-a", protocol.KindMetadata), "") })
	for _, m := range all.all() {
		if m.Topic != upTopic("dev-a", protocol.KindStatus) && m.Topic != upTopic("dev-a", protocol.KindMetadata) {
			t.Errorf("server received forbidden %s (retain %v)", m.Topic, m.Retain)
		}
		if m.Topic == upTopic("dev-a", protocol.KindMetadata) && m.Retain {
			t.Error("metadata was retained")
		}
	}
	if got := tb.counter("acl", aclRetain); got != 2 {
		t.Errorf("acl_denied{kind=retain} = %v, want 2", got)
	}
	// $SYS/… is not a valid topic to publish to: mochi drops it before the ACL is asked.
	if got := tb.counter("acl", aclPublish); got != 7 {
		t.Errorf("acl_denied{kind=publish} = %v, want 7", got)
	}
	if got := tb.counter("dropped", dropMalformedTopic); got < 3 {
		t.Errorf("dropped{reason=malformed_topic} = %v, want >= 3", got)
	}

	// A refused QoS 1 publish from an MQTT 3.1.1 client closes its connection (3.1.1 has no
	// refusal code; an unacknowledged message would be resent forever).
	lost := make(chan struct{})
	tb.devices.add("dev-q", "sq", false)
	q := mustDial(t, addr, "dev-q", "sq", func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	})
	q.Publish(upTopic("dev-b", protocol.KindAck), 1, false, `{"v":1}`)
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("QoS 1 publish into another device's subtree did not close the connection")
	}
}

// TestLastWill: a will outside the device's own offline status refuses the connection.
func TestLastWill(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	addr := "tcp://" + tb.addr
	tb.devices.add("dev-a", "sa", false)
	status := upTopic("dev-a", protocol.KindStatus)

	refused := []struct{ name, topic, payload string }{
		{"another device's status", upTopic("dev-b", protocol.KindStatus), protocol.WillPayload},
		{"another device's downlink", cmdTopic("dev-b"), `{"v":1}`},
		{"own metadata", upTopic("dev-a", protocol.KindMetadata), protocol.WillPayload},
		{"own status saying online", status, `{"v":1,"online":true}`},
		{"own status, not JSON", status, `offline`},
	}
	for _, r := range refused {
		if _, err := dial(t, addr, "dev-a", "sa", withWill(r.topic, r.payload)); err == nil {
			t.Errorf("%s: connection with will %s accepted", r.name, r.topic)
		}
	}
	if got := tb.counter("acl", aclWill); got != float64(len(refused)) {
		t.Errorf("acl_denied{kind=will} = %v, want %d", got, len(refused))
	}

	// The protocol's will is accepted and published when the link dies.
	server := serverSubscribe(t, tb.Broker, protocol.UplinkFilter(protocol.DefaultRoot, protocol.KindStatus))
	c := rawConnectWithWill(t, tb.addr, "dev-a", "sa", status, protocol.WillPayload)
	poll.Until(t, 5*time.Second, "dev-a online", func() bool { return tb.Online("dev-a") })
	c.Close()
	poll.Until(t, 5*time.Second, "the will", func() bool { return server.has(status, protocol.WillPayload) })
}

// TestPresence: Online follows the connection; a clean DISCONNECT (which discards the will)
// still tells the server the device is offline.
func TestPresence(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	addr := "tcp://" + tb.addr
	tb.devices.add("dev-a", "sa", false)
	status := upTopic("dev-a", protocol.KindStatus)
	server := serverSubscribe(t, tb.Broker, protocol.UplinkFilter(protocol.DefaultRoot, ""))

	a := mustDial(t, addr, "dev-a", "sa", withWill(status, protocol.WillPayload))
	// mochi runs OnSessionEstablished just after writing CONNACK.
	poll.Until(t, 5*time.Second, "dev-a online", func() bool { return tb.Online("dev-a") && tb.OnlineCount() == 1 })
	mustPublish(t, a, status, 1, true, `{"v":1,"online":true}`)
	a.Disconnect(100)
	poll.Until(t, 5*time.Second, "dev-a offline", func() bool { return !tb.Online("dev-a") })
	poll.Until(t, 5*time.Second, "offline status", func() bool { return server.has(status, protocol.WillPayload) })

	// A late subscriber (a restarted server) gets the retained offline status at once.
	late := serverSubscribe(t, tb.Broker, status)
	poll.Until(t, 5*time.Second, "retained offline", func() bool { return late.has(status, protocol.WillPayload) })
}

// TestDisconnectKicksSession: Disconnect closes the live connection at once, drops its
// subscriptions, and the device must authenticate again (against the rotated secret).
func TestDisconnectKicksSession(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	addr := "tcp://" + tb.addr
	tb.devices.add("dev-a", "old", false)
	lost := make(chan struct{})
	a := mustDial(t, addr, "dev-a", "old", func(o *paho.ClientOptions) {
		o.SetCleanSession(false)
		o.SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	})
	in := &inbox{}
	mustSubscribe(t, a, protocol.DownlinkFilter(protocol.DefaultRoot, "dev-a"), in.pahoHandler)

	tb.devices.add("dev-a", "new", false) // rotated in the store
	if err := tb.Disconnect("dev-a"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open after Disconnect")
	}
	poll.Until(t, 5*time.Second, "dev-a offline", func() bool { return !tb.Online("dev-a") })
	if _, ok := tb.srv.Clients.Get("dev-a"); ok {
		t.Error("session kept after Disconnect")
	}
	if subs := tb.srv.Topics.Subscribers(cmdTopic("dev-a")); len(subs.Subscriptions) != 0 {
		t.Errorf("subscriptions kept after Disconnect: %v", subs.Subscriptions)
	}
	if _, err := dial(t, addr, "dev-a", "old"); err == nil {
		t.Fatal("old secret accepted after Disconnect")
	}
	mustDial(t, addr, "dev-a", "new")
	if err := tb.Disconnect("dev-nobody"); err != nil {
		t.Errorf("Disconnect of an unknown device: %v", err)
	}
}

// TestSessionTakeover: a second connection with the same client ID takes the session over;
// the first is closed and the device stays online.
func TestSessionTakeover(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	addr := "tcp://" + tb.addr
	tb.devices.add("dev-a", "sa", false)
	lost := make(chan struct{})
	mustDial(t, addr, "dev-a", "sa", func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	})
	second := mustDial(t, addr, "dev-a", "sa")
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("first connection not closed by the takeover")
	}
	in := &inbox{}
	mustSubscribe(t, second, protocol.DownlinkFilter(protocol.DefaultRoot, "dev-a"), in.pahoHandler)
	serverPublish(t, tb.Broker, cmdTopic("dev-a"), false, `{"n":1}`)
	poll.Until(t, 5*time.Second, "command on the new session", func() bool { return in.has(cmdTopic("dev-a"), "") })
	if !tb.Online("dev-a") {
		t.Error("device offline after takeover")
	}
}

// TestOversizedPacket: a packet over the limit closes that connection and is counted; other
// devices keep working.
func TestOversizedPacket(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *Config) { c.MaxPacketSize = 4096 })
	addr := "tcp://" + tb.addr
	tb.devices.add("dev-a", "sa", false)
	tb.devices.add("dev-b", "sb", false)
	server := serverSubscribe(t, tb.Broker, protocol.UplinkFilter(protocol.DefaultRoot, ""))
	lost := make(chan struct{})
	a := mustDial(t, addr, "dev-a", "sa", func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	})
	b := mustDial(t, addr, "dev-b", "sb")
	a.Publish(upTopic("dev-a", protocol.KindLog), 0, false, strings.Repeat("x", 8192))
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("oversized packet did not close the connection")
	}
	poll.Until(t, 5*time.Second, "oversized counted", func() bool { return tb.counter("dropped", dropOversized) == 1 })
	mustPublish(t, b, upTopic("dev-b", protocol.KindMetadata), 1, false, `{"v":1}`)
	poll.Until(t, 5*time.Second, "B's message", func() bool { return server.has(upTopic("dev-b", protocol.KindMetadata), "") })
	if server.count(upTopic("dev-a", protocol.KindLog)) != 0 {
		t.Error("the oversized message was delivered")
	}
}

// TestConnectTimeout: a connection that never sends CONNECT is closed after the deadline.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *Config) { c.ConnectTimeout = 200 * time.Millisecond })
	c, err := net.Dial("tcp", tb.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(c)
	if err != nil {
		t.Fatalf("connection not closed by the broker: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("closed after %s, want about 200ms", el)
	}
	poll.Until(t, 5*time.Second, "connect_timeout counted", func() bool { return tb.counter("connects", connectTimeout) == 1 })
}

// TestRateLimit: one device flooding is cut to its burst plus rate; another device's
// messages all arrive.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *Config) { c.RateLimit = 10; c.RateBurst = 20 })
	addr := "tcp://" + tb.addr
	tb.devices.add("dev-flood", "sf", false)
	tb.devices.add("dev-calm", "sc", false)
	server := serverSubscribe(t, tb.Broker, protocol.UplinkFilter(protocol.DefaultRoot, ""))
	flood := mustDial(t, addr, "dev-flood", "sf")
	calm := mustDial(t, addr, "dev-calm", "sc")

	start := time.Now()
	for i := 0; i < 500; i++ {
		flood.Publish(upTopic("dev-flood", protocol.KindLog), 0, false, `{"v":1}`)
	}
	// QoS 1 over the limit is acknowledged and dropped, so the flooder is not stuck.
	mustPublish(t, flood, upTopic("dev-flood", protocol.KindAck), 1, false, `{"v":1}`)
	for i := 0; i < 10; i++ {
		mustPublish(t, calm, upTopic("dev-calm", protocol.KindAck), 1, false, `{"v":1}`)
	}
	poll.Until(t, 5*time.Second, "all of the calm device's messages", func() bool {
		return server.count("espadmin/dev-calm/") == 10
	})
	poll.Until(t, 5*time.Second, "the flood counted", func() bool {
		return tb.counter("dropped", dropRateLimited)+float64(server.count("espadmin/dev-flood/")) == 501
	})
	allowed := 20 + 10*time.Since(start).Seconds() + 1
	if got := float64(server.count("espadmin/dev-flood/")); got > allowed {
		t.Errorf("flooding device delivered %v messages, limit allows %.0f", got, allowed)
	}
}

// TestSlowConsumer: a device that stops reading its socket does not delay commands to other
// devices, and is disconnected once a write to it has waited for the write timeout.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *Config) {
		c.WriteTimeout = 500 * time.Millisecond
		c.MaxInflight = 65535
	})
	tb.devices.add("dev-slow", "ss", false)
	tb.devices.add("dev-b", "sb", false)

	slow := rawConnect(t, tb.addr, "dev-slow", "ss")
	if code := rawSubscribe(t, slow, protocol.DownlinkFilter(protocol.DefaultRoot, "dev-slow")); code != 1 {
		t.Fatalf("slow device subscribe: %#x", code)
	}
	// From here on the slow device never reads.

	b := mustDial(t, "tcp://"+tb.addr, "dev-b", "sb")
	in := &inbox{}
	mustSubscribe(t, b, protocol.DownlinkFilter(protocol.DefaultRoot, "dev-b"), in.pahoHandler)

	big := strings.Repeat("x", 16<<10)
	ctx := context.Background()
	loopStart := time.Now()
	sent := 0
	for i := 0; i < 3000 && tb.Online("dev-slow"); i++ {
		sent++
		if err := tb.Publish(ctx, messaging.Message{Topic: cmdTopic("dev-slow"), Payload: []byte(big), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("published %d commands to the slow device in %s (online %v)", sent, time.Since(loopStart), tb.Online("dev-slow"))
	start := time.Now()
	for i := 0; i < 100; i++ {
		serverPublish(t, tb.Broker, cmdTopic("dev-b"), false, `{"n":1}`)
	}
	received := false
	defer func() {
		if !received { // the wait below timed out (t.Fatalf still runs deferred calls)
			t.Logf("B received %d of 100 commands (connected %v, online %v)", in.count(cmdTopic("dev-b")), b.IsConnected(), tb.Online("dev-b"))
		}
	}()
	poll.Until(t, 2*time.Second, "B to receive 100 commands", func() bool { return in.count(cmdTopic("dev-b")) >= 100 })
	received = true
	if n := in.count(cmdTopic("dev-b")); n != 100 {
		t.Fatalf("B received %d of 100 commands (connected %v, online %v)", n, b.IsConnected(), tb.Online("dev-b"))
	}
	t.Logf("B received 100 commands in %s while the slow device was stuck", time.Since(start))

	poll.Until(t, 5*time.Second, "the slow device disconnected", func() bool { return !tb.Online("dev-slow") })
	if tb.counter("dropped", dropSlowClientDisconnect) != 1 {
		t.Errorf("slow_client_disconnected = %v, want 1", tb.counter("dropped", dropSlowClientDisconnect))
	}
}

func TestServerBusAfterShutdown(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	if err := tb.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := tb.Publish(context.Background(), messaging.Message{Topic: "espadmin/x/down/cmd", QoS: 1})
	if !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Publish after Shutdown: %v, want ErrClosed", err)
	}
	if _, err := tb.Subscribe(context.Background(), "#", 1, func(messaging.Message) {}); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Subscribe after Shutdown: %v, want ErrClosed", err)
	}
}

func TestSubscriptionQueueNeverBlocks(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	release := make(chan struct{})
	unsub, err := tb.Subscribe(context.Background(), "espadmin/+/up/#", 1, func(messaging.Message) { <-release })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	defer close(release)
	// Far more than the queue holds: Publish must still return at once.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < defaultSubscriptionQueue+100; i++ {
			_ = tb.Publish(context.Background(), messaging.Message{Topic: "espadmin/dev-a/up/log", Payload: []byte("{}")})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked behind a stuck subscription handler")
	}
	if got := tb.counter("dropped", dropSubscriberQueueFull); got < 99 {
		t.Errorf("subscriber_queue_full = %v, want >= 99", got)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	if _, err := New(testConfig(), Deps{}); err == nil {
		t.Error("New without Devices succeeded")
	}
	if _, err := New(testConfig(), Deps{Devices: newFakeDevices(), TopicRoot: "$bad/#"}); err == nil {
		t.Error("New with an invalid root succeeded")
	}
	bad := testConfig()
	bad.TLSAddr, bad.TLSCert, bad.TLSKey = "127.0.0.1:0", "/nonexistent.pem", "/nonexistent.key"
	if _, err := New(bad, Deps{Devices: newFakeDevices()}); err == nil {
		t.Error("New with a missing TLS certificate succeeded")
	}
}

// TestAuthFailuresAreReported: a known device with a wrong secret is reported with its
// tenant (alert rules count them); an unknown device, a disabled one and a good login are not.
func TestAuthFailuresAreReported(t *testing.T) {
	t.Parallel()
	devs := newFakeDevices()
	devs.add("dev-a", "good", false)
	devs.add("dev-off", "good", true)
	h := newAuthHook(devauth.New(devs, devauth.Options{}), newMetrics(&Broker{}), testLogger(), context.Background())
	var got []string
	h.failed = func(tenantID, deviceID string) { got = append(got, tenantID+"/"+deviceID) }
	connect := func(id, secret string) string {
		return h.authenticate(packets.Packet{Connect: packets.ConnectParams{
			Username: []byte(id), Password: []byte(secret), ClientIdentifier: id}})
	}
	for _, c := range []struct{ id, secret, want string }{
		{"dev-a", "good", connectOK},
		{"dev-a", "bad", connectBadSecret},
		{"dev-x", "bad", connectUnknownDevice},
		{"dev-off", "good", connectDisabled},
	} {
		if r := connect(c.id, c.secret); r != c.want {
			t.Errorf("connect %s/%s = %s, want %s", c.id, c.secret, r, c.want)
		}
	}
	if len(got) != 1 || got[0] != "t1/dev-a" {
		t.Errorf("reported failures = %v, want [t1/dev-a]", got)
	}
}
