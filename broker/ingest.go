package broker

import (
	"context"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
)

// Confirmation timing (docs/protocol.md §7).
const (
	// confirmAttemptTimeout bounds one call of a confirmed handler.
	confirmAttemptTimeout = 5 * time.Second
	// confirmMaxHold is how long a device's PUBACK is withheld while its message cannot be
	// handled (the store is down). After it the connection is closed, so that the device,
	// which resends unacknowledged QoS 1 messages when it reconnects, tries again later.
	confirmMaxHold = 30 * time.Second
	// confirmMaxBackoff caps the wait between two attempts.
	confirmMaxBackoff = 2 * time.Second
)

// ingestHook meters what devices publish once the ACL has let it through, and holds the
// acknowledgement of control-plane messages until the server has handled them.
//
// Control-plane messages (those matching a SubscribeConfirmed filter: acks, OTA progress,
// config requests, metadata, statuses) are handed to their handler on the publishing device's own
// goroutine, before mochi sends PUBACK: the PUBACK goes out only once the handler has stored
// what the message says. While the handler fails (the store is down) the hook retries with a
// backoff, the device waiting for its PUBACK; after confirmMaxHold it closes the connection
// without acknowledging, and the device sends the message again when it reconnects. A
// device is thereby slowed to the pace the server handles its control messages at, but such
// a message is never acknowledged and then lost. This blocks only the publishing device's
// goroutine, never the broker or another device.
//
// Everything else (logs, error reports) is rate limited by a token bucket per
// device (rate per second, burst), which drops a flooding device's excess without touching
// anyone else: QoS 0 silently; QoS 1 is acknowledged and discarded (MQTT 3.1.1 has no
// refusal code, and an unacknowledged message would be resent at once) except for MQTT 5
// clients, which get PUBACK 0x97 Quota exceeded. Accepted messages are counted by uplink
// kind; messages the broker could not queue for a slow client are counted too.
type ingestHook struct {
	mqtt.HookBase
	root    string
	limit   rate.Limit
	burst   int
	metrics *metrics
	now     func() time.Time
	// ctx ends at broker shutdown; retain stores a retained message as mochi would; kick
	// closes a connection whose message could not be handled in time.
	ctx    context.Context
	retain func(cl *mqtt.Client, pk packets.Packet)
	kick   func(cl *mqtt.Client)
	// attemptTimeout and maxHold are confirmAttemptTimeout and confirmMaxHold, shortened
	// by tests.
	attemptTimeout time.Duration
	maxHold        time.Duration

	mu      sync.Mutex
	buckets map[string]*rate.Limiter

	confMu    sync.RWMutex
	confirmed map[int]confirmedFilter
	nextConf  int
}

// confirmedFilter is one SubscribeConfirmed registration.
type confirmedFilter struct {
	levels  []string
	handler messaging.ConfirmedHandler
}

func newIngestHook(ctx context.Context, root string, perSecond, burst float64, m *metrics) *ingestHook {
	return &ingestHook{
		root: root, limit: rate.Limit(perSecond), burst: int(burst), metrics: m, now: time.Now,
		ctx: ctx, retain: func(*mqtt.Client, packets.Packet) {}, kick: func(cl *mqtt.Client) { cl.Stop(packets.ErrServerBusy) },
		attemptTimeout: confirmAttemptTimeout, maxHold: confirmMaxHold,
		buckets: map[string]*rate.Limiter{}, confirmed: map[int]confirmedFilter{},
	}
}

func (h *ingestHook) ID() string { return "espadmin-ingest" }

func (h *ingestHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish, mqtt.OnPublishDropped, mqtt.OnDisconnect:
		return true
	}
	return false
}

// subscribe registers a confirmed handler for filter (MQTT wildcards; a $share/GROUP/ prefix
// is ignored, this broker being one replica).
func (h *ingestHook) subscribe(filter string, fn messaging.ConfirmedHandler) func() {
	if mqtt.IsSharedFilter(filter) {
		filter = sharedTopic(filter)
	}
	h.confMu.Lock()
	h.nextConf++
	id := h.nextConf
	h.confirmed[id] = confirmedFilter{levels: strings.Split(filter, "/"), handler: fn}
	h.confMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.confMu.Lock()
			delete(h.confirmed, id)
			h.confMu.Unlock()
		})
	}
}

// confirmedFor returns the first confirmed handler whose filter matches topic, or nil.
func (h *ingestHook) confirmedFor(topic string) messaging.ConfirmedHandler {
	h.confMu.RLock()
	defer h.confMu.RUnlock()
	if len(h.confirmed) == 0 {
		return nil
	}
	levels := strings.Split(topic, "/")
	for _, c := range h.confirmed {
		if matchLevels(c.levels, levels) {
			return c.handler
		}
	}
	return nil
}

// matchLevels matches a topic's levels against a filter's (MQTT 3.1.1 §4.7).
func matchLevels(filter, topic []string) bool {
	for i, f := range filter {
		if f == "#" {
			return true
		}
		if i >= len(topic) || (f != "+" && f != topic[i]) {
			return false
		}
	}
	return len(filter) == len(topic)
}

func (h *ingestHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	kind := ""
	if _, _, k, err := protocol.ParseTopic(h.root, pk.TopicName); err == nil {
		kind = k
	}
	if fn := h.confirmedFor(pk.TopicName); fn != nil {
		if kind != "" {
			h.metrics.uplink.WithLabelValues(kind).Inc()
		}
		if !h.confirm(cl, pk, fn) {
			return pk, packets.ErrRejectPacket // no PUBACK: the device sends it again
		}
		if pk.FixedHeader.Retain {
			h.retain(cl, pk)
		}
		// Acknowledged (the message is handled) and not passed on: its handler was its
		// subscriber.
		return pk, packets.CodeSuccessIgnore
	}
	if !h.limiter(cl.ID).AllowN(h.now(), 1) {
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
	if kind != "" {
		h.metrics.uplink.WithLabelValues(kind).Inc()
	}
	return pk, nil
}

// limiter returns the device's token bucket. The hook's clock is passed to every AllowN,
// so tests drive it without waiting.
func (h *ingestHook) limiter(deviceID string) *rate.Limiter {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.buckets[deviceID]
	if !ok {
		l = rate.NewLimiter(h.limit, h.burst)
		// A new limiter is full at its creation time; read the hook's clock so that a test
		// clock set in the past or future does not refill or drain it.
		l.SetBurstAt(h.now(), h.burst)
		h.buckets[deviceID] = l
	}
	return l
}

// confirm runs fn until it succeeds and reports whether it did. It gives up, leaving the
// message unacknowledged, when the connection closes, the broker shuts down, or maxHold has
// passed (then it closes the connection so the device resends after reconnecting). A QoS 0
// message is tried once: its sender asked for no acknowledgement and will not resend it.
func (h *ingestHook) confirm(cl *mqtt.Client, pk packets.Packet, fn messaging.ConfirmedHandler) bool {
	m := toMessage(pk)
	m.Payload = append([]byte(nil), pk.Payload...)
	start := time.Now()
	backoff := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(h.ctx, h.attemptTimeout)
		err := fn(ctx, m)
		cancel()
		if err == nil {
			h.metrics.confirm.WithLabelValues(confirmHandled).Inc()
			return true
		}
		if pk.FixedHeader.Qos == 0 {
			h.metrics.dropped.WithLabelValues(dropUnhandled).Inc()
			return false
		}
		if cl.Closed() || h.ctx.Err() != nil {
			h.metrics.confirm.WithLabelValues(confirmWithheld).Inc()
			return false
		}
		if time.Since(start) >= h.maxHold {
			h.metrics.confirm.WithLabelValues(confirmWithheld).Inc()
			h.kick(cl)
			return false
		}
		h.metrics.confirm.WithLabelValues(confirmRetried).Inc()
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-h.ctx.Done():
			t.Stop()
		}
		backoff = min(backoff*2, confirmMaxBackoff)
	}
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
