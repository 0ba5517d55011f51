package broker

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons of espadmin_mqtt_connects_total.
const (
	connectOK               = "ok"
	connectBadSecret        = "bad_secret"
	connectUnknownDevice    = "unknown_device"
	connectDisabled         = "disabled"
	connectClientIDMismatch = "client_id_mismatch"
	connectInvalidUsername  = "invalid_username"
	connectStoreError       = "store_error"
	connectWillRefused      = "will_refused"
	connectTimeout          = "connect_timeout"
)

// Kinds of espadmin_mqtt_acl_denied_total.
const (
	aclSubscribe = "subscribe" // a SUBSCRIBE filter (or a concrete filter outside the device's downlink)
	aclReceive   = "receive"   // a delivery refused at delivery time
	aclPublish   = "publish"   // a PUBLISH outside the device's uplink
	aclRetain    = "retain"    // a retained PUBLISH other than status
	aclWill      = "will"      // a last will other than the device's offline status
)

// Reasons of espadmin_mqtt_messages_dropped_total.
const (
	dropRateLimited          = "rate_limited"
	dropACL                  = "acl"
	dropMalformedTopic       = "malformed_topic"
	dropOversized            = "oversized_packet"
	dropClientQueueFull      = "client_queue_full"
	dropSubscriberQueueFull  = "subscriber_queue_full"
	dropSlowClientDisconnect = "slow_client_disconnected"
	dropQoSNotSupported      = "qos_not_supported" // a QoS 2 PUBLISH (the broker offers QoS 0 and 1)
	dropUnhandled            = "unhandled_qos0"
)

// Outcomes of a control-plane message held until the server handled it (ingest.go).
const (
	confirmHandled  = "handled"
	confirmRetried  = "retried"
	confirmWithheld = "withheld"
)

type metrics struct {
	connects  *prometheus.CounterVec
	aclDenied *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	uplink    *prometheus.CounterVec
	kicked    prometheus.Counter
	authCache *prometheus.CounterVec
	confirm   *prometheus.CounterVec

	collectors []prometheus.Collector
}

func newMetrics(b *Broker) *metrics {
	m := &metrics{
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_mqtt_connects_total",
			Help: "MQTT connection attempts by result: ok or the reason it was refused.",
		}, []string{"result"}),
		aclDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_mqtt_acl_denied_total",
			Help: "Device actions refused by the access rules, by kind.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_mqtt_messages_dropped_total",
			Help: "Messages (or, for oversized_packet and slow_client_disconnected, connections) dropped by the broker, by reason.",
		}, []string{"reason"}),
		uplink: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_mqtt_uplink_messages_total",
			Help: "Device messages accepted by the broker, by uplink kind.",
		}, []string{"kind"}),
		kicked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "espadmin_mqtt_sessions_kicked_total",
			Help: "Device sessions closed by the server (credentials rotated, device disabled or deleted).",
		}),
		authCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_mqtt_auth_cache_total",
			Help: "Credentials lookups at CONNECT by outcome: hit (served from the cache) or miss (read from the store).",
		}, []string{"outcome"}),
		confirm: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_mqtt_confirmed_messages_total",
			Help: "Control-plane messages acknowledged only once the server handled them, by outcome: handled, retried (one failed attempt, the device waiting) or withheld (never acknowledged; the device resends it).",
		}, []string{"outcome"}),
	}
	for _, o := range []string{confirmHandled, confirmRetried, confirmWithheld} {
		m.confirm.WithLabelValues(o)
	}
	for _, r := range []string{connectOK, connectBadSecret, connectUnknownDevice, connectDisabled,
		connectClientIDMismatch, connectInvalidUsername, connectStoreError, connectWillRefused, connectTimeout} {
		m.connects.WithLabelValues(r)
	}
	for _, k := range []string{aclSubscribe, aclReceive, aclPublish, aclRetain, aclWill} {
		m.aclDenied.WithLabelValues(k)
	}
	for _, r := range []string{dropRateLimited, dropACL, dropMalformedTopic, dropOversized, dropQoSNotSupported, dropClientQueueFull,
		dropSubscriberQueueFull, dropSlowClientDisconnect, dropUnhandled} {
		m.dropped.WithLabelValues(r)
	}
	info := func(f func() int64) func() float64 { return func() float64 { return float64(f()) } }
	m.collectors = []prometheus.Collector{
		m.connects, m.aclDenied, m.dropped, m.uplink, m.kicked, m.authCache, m.confirm,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "espadmin_mqtt_clients_connected",
			Help: "MQTT clients connected now.",
		}, info(func() int64 { return atomic.LoadInt64(&b.srv.Info.ClientsConnected) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "espadmin_mqtt_messages_received_total",
			Help: "PUBLISH packets received from clients (before access checks).",
		}, info(func() int64 { return atomic.LoadInt64(&b.srv.Info.MessagesReceived) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "espadmin_mqtt_messages_sent_total",
			Help: "PUBLISH packets written to clients.",
		}, info(func() int64 { return atomic.LoadInt64(&b.srv.Info.MessagesSent) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "espadmin_mqtt_inflight_dropped_total",
			Help: "QoS 1 messages not queued because a client's in-flight store was full.",
		}, info(func() int64 { return atomic.LoadInt64(&b.srv.Info.InflightDropped) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "espadmin_mqtt_inflight_messages",
			Help: "QoS 1 messages waiting for a client's acknowledgement.",
		}, info(func() int64 { return atomic.LoadInt64(&b.srv.Info.Inflight) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "espadmin_mqtt_subscription_queue_depth",
			Help: "Messages waiting in the server's subscription queues (sum over subscriptions).",
		}, func() float64 { return float64(b.subscriptionDepth()) }),
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range m.collectors {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (b *Broker) subscriptionDepth() int {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	n := 0
	for _, s := range b.subs {
		n += s.depth()
	}
	return n
}
