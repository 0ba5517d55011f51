package broker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// errStoreDown stands for a store that does not answer.
var errStoreDown = errors.New("store down")

// confirmedSink is a confirmed handler whose store can be switched off.
type confirmedSink struct {
	down  atomic.Bool
	calls atomic.Int64
	mu    sync.Mutex
	got   []messaging.Message
}

func (s *confirmedSink) handle(_ context.Context, m messaging.Message) error {
	s.calls.Add(1)
	if s.down.Load() {
		return errStoreDown
	}
	s.mu.Lock()
	s.got = append(s.got, m)
	s.mu.Unlock()
	return nil
}

func (s *confirmedSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// TestConfirmedWithholdsPUBACK: a control message is acknowledged only once its handler has
// stored it: while the handler fails, the device's publish stays unacknowledged; once it
// succeeds, the PUBACK arrives, and the message reaches no plain subscription.
func TestConfirmedWithholdsPUBACK(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	tb.devices.add("dev-a", "sa", false)
	sink := &confirmedSink{}
	sink.down.Store(true)
	unsub, err := tb.SubscribeConfirmed(protocol.UplinkFilter(protocol.DefaultRoot, protocol.KindAck), sink.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	plain := serverSubscribe(t, tb.Broker, protocol.UplinkFilter(protocol.DefaultRoot, ""))
	c := mustDial(t, "tcp://"+tb.addr, "dev-a", "sa")

	tok := c.Publish(upTopic("dev-a", protocol.KindAck), 1, false, `{"v":1,"id":"c1","result":"ok"}`)
	poll.Until(t, 10*time.Second, "the handler tried again", func() bool { return sink.calls.Load() >= 3 })
	select {
	case <-tok.Done():
		t.Fatal("PUBACK sent for a message the handler could not store")
	default:
	}
	sink.down.Store(false)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("no PUBACK once the handler succeeded: %v", tok.Error())
	}
	if sink.count() != 1 {
		t.Fatalf("handler stored %d messages, want 1", sink.count())
	}
	// A log message after it goes to the plain subscription: once it is there, the ack
	// would have been too, had it been passed on.
	mustPublish(t, c, upTopic("dev-a", protocol.KindLog), 1, false, `{"v":1}`)
	poll.Until(t, 5*time.Second, "the log on the plain subscription", func() bool { return plain.count("espadmin/dev-a/up/log") == 1 })
	if n := plain.count("espadmin/dev-a/up/ack"); n != 0 {
		t.Errorf("confirmed ack also reached a plain subscription %d times", n)
	}
	if n := testutil.ToFloat64(tb.metrics.confirm.WithLabelValues(confirmRetried)); n < 2 {
		t.Errorf("retried = %v, want at least 2", n)
	}
}

// TestConfirmedNotRateLimited: control messages are never dropped by the publish rate limit
// (each waits for its handler instead), while a flood of logs from the same device is.
func TestConfirmedNotRateLimited(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *Config) { c.RateLimit = 1; c.RateBurst = 2 })
	tb.devices.add("dev-a", "sa", false)
	sink := &confirmedSink{}
	unsub, err := tb.SubscribeConfirmed(protocol.UplinkFilter(protocol.DefaultRoot, protocol.KindAck), sink.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	c := mustDial(t, "tcp://"+tb.addr, "dev-a", "sa")
	const acks = 100
	var toks []paho.Token
	for range acks {
		toks = append(toks, c.Publish(upTopic("dev-a", protocol.KindAck), 1, false, `{"v":1,"id":"c1","result":"ok"}`))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("ack %d: no PUBACK: %v", i, tok.Error())
		}
	}
	if sink.count() != acks {
		t.Errorf("handler got %d acks, want %d", sink.count(), acks)
	}
	for range 10 {
		c.Publish(upTopic("dev-a", protocol.KindLog), 0, false, `{"v":1}`)
	}
	poll.Until(t, 5*time.Second, "the log flood limited", func() bool { return tb.counter("dropped", dropRateLimited) >= 7 })
}

// TestConfirmedGivesUp: a message that cannot be stored within the hold time is never
// acknowledged; the connection is closed so that the device resends it after reconnecting.
func TestConfirmedGivesUp(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	tb.ingest.maxHold = 300 * time.Millisecond
	tb.devices.add("dev-a", "sa", false)
	sink := &confirmedSink{}
	sink.down.Store(true)
	unsub, err := tb.SubscribeConfirmed(protocol.UplinkFilter(protocol.DefaultRoot, protocol.KindAck), sink.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	var lost atomic.Bool
	c := mustDial(t, "tcp://"+tb.addr, "dev-a", "sa", func(o *paho.ClientOptions) {
		o.SetAutoReconnect(false)
		o.SetConnectionLostHandler(func(paho.Client, error) { lost.Store(true) })
	})
	c.Publish(upTopic("dev-a", protocol.KindAck), 1, false, `{"v":1,"id":"c1","result":"ok"}`)
	poll.Until(t, 10*time.Second, "the connection closed", lost.Load)
	if n := testutil.ToFloat64(tb.metrics.confirm.WithLabelValues(confirmWithheld)); n != 1 {
		t.Errorf("withheld = %v, want 1", n)
	}
	if sink.count() != 0 {
		t.Errorf("handler stored %d messages", sink.count())
	}
}

// TestRateLimiterClock: the token bucket follows the hook's clock, not the wall clock.
func TestRateLimiterClock(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	h := newIngestHook(context.Background(), protocol.DefaultRoot, 2, 3, newMetrics(&Broker{}))
	h.now = func() time.Time { return now }
	l := h.limiter("dev-a")
	for i := range 3 {
		if !l.AllowN(h.now(), 1) {
			t.Fatalf("message %d of the burst refused", i)
		}
	}
	if l.AllowN(h.now(), 1) {
		t.Fatal("message over the burst allowed")
	}
	now = now.Add(time.Second)
	for i := range 2 {
		if !l.AllowN(h.now(), 1) {
			t.Fatalf("message %d after a second refused (rate 2/s)", i)
		}
	}
	if l.AllowN(h.now(), 1) {
		t.Fatal("third message after a second allowed")
	}
}

// TestConnectionIDAfterSubscribe: a connection counts for command delivery only once it has
// subscribed to its commands, and each new connection gets a new ID.
func TestConnectionIDAfterSubscribe(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	tb.devices.add("dev-a", "sa", false)
	c := mustDial(t, "tcp://"+tb.addr, "dev-a", "sa")
	poll.Until(t, 5*time.Second, "online", func() bool { return tb.Online("dev-a") })
	if _, ok := tb.ConnectionID("dev-a"); ok {
		t.Fatal("connection ID before the device subscribed to its commands")
	}
	mustSubscribe(t, c, protocol.DownlinkFilter(protocol.DefaultRoot, "dev-a"), func(paho.Client, paho.Message) {})
	first, ok := tb.ConnectionID("dev-a")
	if !ok {
		t.Fatal("no connection ID after SUBSCRIBE")
	}
	c.Disconnect(100)
	c = mustDial(t, "tcp://"+tb.addr, "dev-a", "sa")
	defer c.Disconnect(100)
	mustSubscribe(t, c, protocol.DownlinkFilter(protocol.DefaultRoot, "dev-a"), func(paho.Client, paho.Message) {})
	poll.Until(t, 5*time.Second, "a new connection ID", func() bool {
		id, ok := tb.ConnectionID("dev-a")
		return ok && id != first
	})
}
