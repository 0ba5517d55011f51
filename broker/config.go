package broker

import "time"

// Config configures the embedded broker's listeners and limits (docs/broker.md). Every
// listener address may be empty to disable that listener. The process builds it from its
// settings (mqtt.*); DefaultConfig holds the defaults those settings start from.
type Config struct {
	// Addr is the plain TCP listen address.
	Addr string
	// TLSAddr is the MQTT-over-TLS listen address, used when TLSCert and TLSKey are set.
	TLSAddr string
	// TLSCert and TLSKey are PEM files of the TLS listener's certificate chain and key.
	TLSCert string
	TLSKey  string
	// WSAddr is the MQTT-over-WebSocket listen address; WSPath the only path it serves.
	WSAddr string
	WSPath string
	// WSAllowedOrigins lists the Origin header values a WebSocket upgrade may carry, comma
	// separated ("*" allows any). Requests without an Origin header (devices, not browsers)
	// are always allowed.
	WSAllowedOrigins string
	// ConnectTimeout closes a connection that has not sent CONNECT within it.
	ConnectTimeout time.Duration
	// WriteTimeout bounds every socket write to a client; a client that does not read for
	// that long is disconnected so it cannot hold the broker's per-client lock.
	WriteTimeout time.Duration
	// MaxPacketSize is the largest MQTT packet accepted, in bytes.
	MaxPacketSize int
	// MaxClients caps simultaneously connected clients.
	MaxClients int
	// MaxPendingWrites is the per-client outbound queue length; messages beyond it are dropped.
	MaxPendingWrites int
	// ReceiveMaximum is how many unacknowledged QoS 1/2 publishes a client may have in flight
	// towards the broker.
	ReceiveMaximum int
	// MaxInflight is how many unacknowledged QoS 1/2 messages the broker keeps per client.
	MaxInflight int
	// BufferSize is each client's socket read and write buffer, in bytes.
	BufferSize int
	// KeepaliveMin and KeepaliveMax clamp the keepalive a client asks for; 0 (no keepalive)
	// becomes KeepaliveMax.
	KeepaliveMin time.Duration
	KeepaliveMax time.Duration
	// SessionExpiryMax caps how long a disconnected persistent session is kept.
	SessionExpiryMax time.Duration
	// MessageExpiryMax caps how long a queued message is kept.
	MessageExpiryMax time.Duration
	// RateLimit is each device's sustained publish rate in messages per second; RateBurst
	// the burst above it. A device's excess is dropped and counted.
	RateLimit int
	RateBurst int
	// AuthCacheTTL is how long a device's credentials lookup is cached.
	AuthCacheTTL time.Duration
}

// DefaultConfig returns the broker's defaults: plain TCP on :1883, TLS on :8883 once a
// certificate is given, WebSocket off, and limits sized for about 10,000 idle devices
// (docs/broker.md explains each).
func DefaultConfig() Config {
	return Config{
		Addr:             ":1883",
		TLSAddr:          ":8883",
		WSPath:           "/mqtt",
		ConnectTimeout:   10 * time.Second,
		WriteTimeout:     10 * time.Second,
		MaxPacketSize:    65536,
		MaxClients:       20000,
		MaxPendingWrites: 128,
		ReceiveMaximum:   32,
		MaxInflight:      128,
		BufferSize:       2048,
		KeepaliveMin:     10 * time.Second,
		KeepaliveMax:     5 * time.Minute,
		SessionExpiryMax: time.Hour,
		MessageExpiryMax: 24 * time.Hour,
		RateLimit:        50,
		RateBurst:        100,
		AuthCacheTTL:     30 * time.Second,
	}
}
