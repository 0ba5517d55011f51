package broker

import (
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/espadmin/espadmin/broker/protocol"
)

// ingestHook meters what devices publish once the ACL has let it through: a token bucket per
// device (rate per second, burst) drops a flooding device's excess without touching anyone
// else, and accepted messages are counted by uplink kind. Messages the broker could not queue
// for a slow client are counted too.
//
// A message over the limit is dropped, not refused: QoS 0 silently; QoS 1 is acknowledged and
// discarded (MQTT 3.1.1 has no refusal code, and an unacknowledged message would be resent at
// once) except for MQTT 5 clients, which get PUBACK 0x97 Quota exceeded.
type ingestHook struct {
	mqtt.HookBase
	root    string
	rate    float64
	burst   float64
	metrics *metrics
	now     func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

func newIngestHook(root string, rate, burst float64, m *metrics) *ingestHook {
	return &ingestHook{root: root, rate: rate, burst: burst, metrics: m, now: time.Now, buckets: map[string]*bucket{}}
}

func (h *ingestHook) ID() string { return "espadmin-ingest" }

func (h *ingestHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish, mqtt.OnPublishDropped, mqtt.OnDisconnect:
		return true
	}
	return false
}

func (h *ingestHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	h.mu.Lock()
	bk, ok := h.buckets[cl.ID]
	if !ok {
		bk = &bucket{tokens: h.burst, last: h.now()}
		h.buckets[cl.ID] = bk
	}
	h.mu.Unlock()
	if !bk.take(h.now(), h.rate, h.burst) {
		h.metrics.dropped.WithLabelValues(dropRateLimited).Inc()
		switch {
		case pk.FixedHeader.Qos == 0:
			return pk, packets.ErrRejectPacket
		case cl.Properties.ProtocolVersion == 5:
			return pk, packets.ErrQuotaExceeded
		default:
			return pk, packets.CodeSuccessIgnore // acknowledged, not delivered
		}
	}
	if _, _, kind, err := protocol.ParseTopic(h.root, pk.TopicName); err == nil {
		h.metrics.uplink.WithLabelValues(kind).Inc()
	}
	return pk, nil
}

func (h *ingestHook) OnPublishDropped(cl *mqtt.Client, _ packets.Packet) {
	h.metrics.dropped.WithLabelValues(dropClientQueueFull).Inc()
}

func (h *ingestHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if cl.IsTakenOver() {
		return
	}
	h.mu.Lock()
	delete(h.buckets, cl.ID)
	h.mu.Unlock()
}

// bucket is a token bucket; take reports whether one token was available.
type bucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time, rate, burst float64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(burst, b.tokens+el*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// limitsHook clamps the keepalive a client asks for into [min, max]; 0 (no keepalive, so a
// dead link would never be noticed) becomes max. MQTT 5 clients are told the server's value
// in CONNACK; MQTT 3.1.1 clients cannot be, and are held to 1.5 × the clamped value.
type limitsHook struct {
	mqtt.HookBase
	min, max time.Duration
}

func (h *limitsHook) ID() string { return "espadmin-limits" }

func (h *limitsHook) Provides(b byte) bool { return b == mqtt.OnConnect }

func (h *limitsHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	lo, hi := uint16(h.min/time.Second), uint16(h.max/time.Second)
	ka := cl.State.Keepalive
	switch {
	case ka == 0 || ka > hi:
		ka = hi
	case ka < lo:
		ka = lo
	}
	if ka != cl.State.Keepalive {
		cl.State.Keepalive = ka
		cl.State.ServerKeepalive = true
	}
	return nil
}
