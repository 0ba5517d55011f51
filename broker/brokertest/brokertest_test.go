package brokertest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/espadmin/espadmin/broker"
	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// TestStart: the broker listens on a loopback TCP port, delivers through its inline client,
// and takes the Configure hook's settings.
func TestStart(t *testing.T) {
	t.Parallel()
	configured := false
	b := Start(t, Options{Configure: func(c *broker.Config) { configured = c.Addr == "127.0.0.1:0" }})
	if !configured {
		t.Error("Configure did not see the loopback listener")
	}
	host, _, err := net.SplitHostPort(b.Addr("tcp"))
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr(tcp) = %q (%v), want 127.0.0.1:port", b.Addr("tcp"), err)
	}
	if b.Addr("tls") != "" || b.Addr("ws") != "" {
		t.Errorf("TLS %q or WebSocket %q listener open", b.Addr("tls"), b.Addr("ws"))
	}
	c, err := net.DialTimeout("tcp", b.Addr("tcp"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	got := make(chan string, 1)
	unsub, err := b.Subscribe(t.Context(), "probe/#", 0, func(m messaging.Message) {
		select {
		case got <- m.Topic:
		default: // a later probe; the first is enough
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	var topic string
	poll.Wait(t, "the probe delivered", func() bool {
		if err := b.Publish(context.Background(), messaging.Message{Topic: "probe/1", Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		select {
		case topic = <-got:
			return true
		default:
			return false
		}
	})
	if topic != "probe/1" {
		t.Errorf("delivered on %q", topic)
	}
}
