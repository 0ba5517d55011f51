package broker

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// wireClient speaks raw MQTT (3.1.1 or 5) over TCP, so tests see exactly which packets the
// broker sends, including the ones a client library would hide or refuse.
type wireClient struct {
	t *testing.T
	rawClient
	version byte
}

// dialWire connects and sends CONNECT for id with password (empty: the password flag with a
// zero-length password); it returns the client and the CONNACK code (reason code in 5).
func dialWire(t *testing.T, addr string, version byte, id, password string) (*wireClient, byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	wc := &wireClient{t: t, rawClient: rawClient{c: c, r: bufio.NewReader(c)}, version: version}
	wc.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: id,
			UsernameFlag: true, Username: []byte(id), PasswordFlag: true, Password: []byte(password),
		},
	})
	typ, body := wc.read()
	if typ != packets.Connack || len(body) < 2 {
		t.Fatalf("CONNECT %s: got packet type %d % x, want CONNACK", id, typ, body)
	}
	return wc, body[1]
}

func (wc *wireClient) send(pk packets.Packet) {
	wc.t.Helper()
	var buf bytes.Buffer
	pk.ProtocolVersion = wc.version
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	}
	if err != nil {
		wc.t.Fatal(err)
	}
	if _, err := wc.c.Write(buf.Bytes()); err != nil {
		wc.t.Fatal(err)
	}
}

// read returns the next packet, failing the test when none arrives within a generous
// deadline.
func (wc *wireClient) read() (byte, []byte) {
	wc.t.Helper()
	_ = wc.c.SetReadDeadline(time.Now().Add(15 * time.Second))
	typ, body, err := wc.next()
	if err != nil {
		wc.t.Fatalf("read: %v", err)
	}
	return typ, body
}

// closedSilently asserts that the broker closes the connection without sending anything
// (3.1.1 has no server DISCONNECT).
func (wc *wireClient) closedSilently() {
	wc.t.Helper()
	_ = wc.c.SetReadDeadline(time.Now().Add(15 * time.Second))
	b, err := wc.r.ReadByte()
	switch {
	case err == nil:
		rest, _ := io.ReadAll(io.LimitReader(wc.r, 64))
		wc.t.Fatalf("got packet type %d (% x) before the close, want the connection closed silently", b>>4, append([]byte{b}, rest...))
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			wc.t.Fatal("connection still open 15 s later, want it closed")
		}
	}
}

func publishQoS1(topic string, id uint16) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: id,
		TopicName: topic, Payload: []byte(`{"v":1}`)}
}

// TestMQTT311Conformance: what 3.1.1 clients get where mochi alone sends MQTT 5 packets or
// nothing at all.
func TestMQTT311Conformance(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	for _, id := range []string{"dev-1", "dev-2", "dev-3", "dev-4", "dev-5"} {
		tb.devices.add(id, "s3cret", false)
	}

	t.Run("empty password is CONNACK 5, not 0x82", func(t *testing.T) {
		t.Parallel()
		wc, code := dialWire(t, tb.addr, 4, "dev-1", "")
		if code != packets.Err3NotAuthorized.Code {
			t.Fatalf("CONNACK %#x, want 0x05 (a 3.1.1 code)", code)
		}
		wc.closedSilently()
	})
	t.Run("wrong password is CONNACK 5", func(t *testing.T) {
		t.Parallel()
		if _, code := dialWire(t, tb.addr, 4, "dev-1", "wrong"); code != packets.Err3NotAuthorized.Code {
			t.Fatalf("CONNACK %#x, want 0x05", code)
		}
	})
	t.Run("QoS 1 publish to $SYS closes the connection", func(t *testing.T) {
		t.Parallel()
		before := tb.counter("acl", aclPublish)
		wc, code := dialWire(t, tb.addr, 4, "dev-2", "s3cret")
		if code != 0 {
			t.Fatalf("CONNACK %#x", code)
		}
		wc.send(publishQoS1("$SYS/x", 7))
		wc.closedSilently() // neither PUBACK (not delivered) nor DISCONNECT (3.1.1 has none)
		if tb.counter("acl", aclPublish) <= before {
			t.Error("refusal not counted")
		}
	})
	t.Run("QoS 1 publish outside the uplink closes without DISCONNECT", func(t *testing.T) {
		t.Parallel()
		wc, _ := dialWire(t, tb.addr, 4, "dev-3", "s3cret")
		wc.send(publishQoS1("espadmin/dev-1/up/status", 8))
		wc.closedSilently()
	})
	t.Run("QoS 2 publish closes the connection", func(t *testing.T) {
		t.Parallel()
		wc, _ := dialWire(t, tb.addr, 4, "dev-5", "s3cret")
		pk := publishQoS1("espadmin/dev-5/up/status", 11)
		pk.FixedHeader.Qos = 2
		wc.send(pk)
		wc.closedSilently() // not a PUBACK the client would not expect
	})
	t.Run("session takeover closes the old connection without DISCONNECT", func(t *testing.T) {
		t.Parallel()
		old, _ := dialWire(t, tb.addr, 4, "dev-4", "s3cret")
		if _, code := dialWire(t, tb.addr, 4, "dev-4", "s3cret"); code != 0 {
			t.Fatalf("second CONNACK %#x", code)
		}
		old.closedSilently()
	})
}

// TestMQTT5Conformance: the same cases for MQTT 5 clients, which have reason codes for them.
func TestMQTT5Conformance(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	tb.devices.add("dev-1", "s3cret", false)
	tb.devices.add("dev-2", "s3cret", false)
	tb.devices.add("dev-3", "s3cret", false)

	t.Run("empty password is bad credentials", func(t *testing.T) {
		t.Parallel()
		if _, code := dialWire(t, tb.addr, 5, "dev-1", ""); code != packets.ErrBadUsernameOrPassword.Code {
			t.Fatalf("CONNACK %#x, want 0x86", code)
		}
	})
	t.Run("QoS 2 publish is DISCONNECT 0x9B", func(t *testing.T) {
		t.Parallel()
		wc, _ := dialWire(t, tb.addr, 5, "dev-3", "s3cret")
		pk := publishQoS1("espadmin/dev-3/up/status", 12)
		pk.FixedHeader.Qos = 2
		wc.send(pk)
		typ, body := wc.read()
		if typ != packets.Disconnect || len(body) < 1 || body[0] != packets.ErrQosNotSupported.Code {
			t.Fatalf("got type %d % x, want DISCONNECT 0x9B (QoS not supported)", typ, body)
		}
	})
	t.Run("QoS 1 publish to $SYS is PUBACK 0x87", func(t *testing.T) {
		t.Parallel()
		wc, code := dialWire(t, tb.addr, 5, "dev-2", "s3cret")
		if code != 0 {
			t.Fatalf("CONNACK %#x", code)
		}
		wc.send(publishQoS1("$SYS/x", 9))
		typ, body := wc.read()
		if typ != packets.Puback || len(body) < 3 || body[0] != 0 || body[1] != 9 || body[2] != packets.ErrNotAuthorized.Code {
			t.Fatalf("got type %d % x, want PUBACK for packet 9 with reason 0x87", typ, body)
		}
		// The session goes on: a publish to its own uplink is acknowledged.
		wc.send(publishQoS1("espadmin/dev-2/up/status", 10))
		typ, body = wc.read()
		if typ != packets.Puback || body[1] != 10 || (len(body) > 2 && body[2] >= 0x80) {
			t.Fatalf("own uplink: type %d % x, want PUBACK success", typ, body)
		}
	})
}
