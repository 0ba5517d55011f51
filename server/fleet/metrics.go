package fleet

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the counters of the fleet services. Every dropped or refused device message is
// counted here, labelled by why, so that nothing is lost silently.
type Metrics struct {
	// Ingested counts uplink messages handed to a worker, by kind.
	Ingested *prometheus.CounterVec
	// Dropped counts uplink messages dropped before or during handling, by reason:
	// queue_full, invalid_topic, unknown_kind, unknown_device, store_error.
	Dropped *prometheus.CounterVec
	// Invalid counts payloads refused by the protocol decoders, by kind and class
	// (protocol.Class: too_large, malformed, unsupported_version, invalid_field, …).
	Invalid *prometheus.CounterVec
	// Unhandled counts valid reports no service consumes yet (config_req, ota, log, error
	// while their services are not configured), by kind.
	Unhandled *prometheus.CounterVec
	// Presence counts presence reports by outcome: online, offline, stale_will (an old
	// session's will ignored), superseded (an online whose connection was already gone),
	// reconciled (an offline status published for a device shown online that the broker
	// did not have connected: PresenceReconciler).
	Presence *prometheus.CounterVec
	// CommandsCreated counts commands stored, by name.
	CommandsCreated *prometheus.CounterVec
	// CommandsPublished counts commands handed to the broker, by outcome (ok, error,
	// no_broker: this process has no broker to publish through).
	CommandsPublished *prometheus.CounterVec
	// Acks counts acknowledgements by outcome: succeeded, failed, duplicate (already final),
	// unknown (no such command), foreign (a command of another device).
	Acks *prometheus.CounterVec
	// CommandsExpired counts commands the sweeper expired.
	CommandsExpired prometheus.Counter
	// EventsDropped counts events a slow event-stream subscriber lost.
	EventsDropped prometheus.Counter
}

// NewMetrics creates the counters and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_ingest_messages_total", Help: "Device uplink messages handed to an ingest worker, by kind.",
		}, []string{"kind"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_ingest_dropped_total", Help: "Device uplink messages dropped, by reason.",
		}, []string{"reason"}),
		Invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_ingest_invalid_total", Help: "Device payloads refused by the protocol decoders, by kind and error class.",
		}, []string{"kind", "class"}),
		Unhandled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_ingest_unhandled_total", Help: "Valid device reports with no consuming service configured, by kind.",
		}, []string{"kind"}),
		Presence: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_presence_reports_total", Help: "Presence reports by outcome.",
		}, []string{"outcome"}),
		CommandsCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_commands_created_total", Help: "Commands stored, by name.",
		}, []string{"name"}),
		CommandsPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_commands_published_total", Help: "Commands handed to the broker, by outcome.",
		}, []string{"outcome"}),
		Acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_command_acks_total", Help: "Command acknowledgements by outcome.",
		}, []string{"outcome"}),
		CommandsExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "espadmin_commands_expired_total", Help: "Commands expired by the sweeper.",
		}),
		EventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "espadmin_events_dropped_total", Help: "Events lost by slow event-stream subscribers.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Ingested, m.Dropped, m.Invalid, m.Unhandled, m.Presence,
			m.CommandsCreated, m.CommandsPublished, m.Acks, m.CommandsExpired, m.EventsDropped)
	}
	return m
}
