package bridge

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
)

// Defaults applied by New and Test to zero fields of Config.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultKeepAlive      = 30 * time.Second
	DefaultPublishTimeout = 10 * time.Second
	DefaultMinBackoff     = time.Second
	DefaultMaxBackoff     = 2 * time.Minute
	DefaultMaxInFlight    = 256
	DefaultQueueSize      = 1024
	DefaultClientID       = "espadmin-server"
)

// Bounds of the settings a tenant types in, so that neither a save nor a connection test
// carries arbitrarily large values to the store or to the tenant's broker.
const (
	MaxURLLength        = 2048
	MaxCredentialLength = 1024
	MaxCACertLength     = 64 << 10
)

// Config says how to reach a tenant's broker. It mirrors store.BrokerSettings with the
// password already opened (package seal) plus tuning knobs that have sensible defaults.
type Config struct {
	// URL is tcp://host:port, ssl://host:port, ws://host[:port]/path or wss://host[:port]/path.
	URL      string
	Username string
	Password string
	// CACertPEM, when set, is the only CA trusted for ssl:// and wss://; empty means the
	// system's roots.
	CACertPEM string
	// TopicRoot is the root of the device topics (protocol.ValidRoot); empty means
	// protocol.DefaultRoot.
	TopicRoot string
	// ClientID must be stable: the broker keeps the bridge's persistent session (its
	// subscriptions and the QoS 1 messages queued while it was away) under it. Empty means
	// the username, or DefaultClientID without one. Replicas need distinct IDs.
	ClientID string
	// ShareGroup, when set, turns every subscription into $share/ShareGroup/filter (MQTT 5
	// §4.8.2, also honoured by Mosquitto 2, EMQX and HiveMQ for 3.1.1 clients), so that among
	// several replicas each message goes to one of them only.
	ShareGroup string
	// AllowPrivate lets the bridge connect to private, loopback and link-local addresses
	// (target.go). Off, only public addresses are dialled, so a tenant's settings cannot
	// reach the server's own network. An operator setting, never a tenant's.
	AllowPrivate bool

	ConnectTimeout time.Duration // TCP + TLS + CONNACK; default DefaultConnectTimeout
	KeepAlive      time.Duration // MQTT keep alive (§3.1.2.10); default DefaultKeepAlive
	PublishTimeout time.Duration // wait for a PUBACK; default DefaultPublishTimeout
	MinBackoff     time.Duration // first retry delay; default DefaultMinBackoff
	MaxBackoff     time.Duration // retry delay cap; default DefaultMaxBackoff
	MaxInFlight    int           // QoS 1/2 publishes awaiting acknowledgement; default DefaultMaxInFlight
	QueueSize      int           // messages buffered per subscription; default DefaultQueueSize
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.TopicRoot == "" {
		c.TopicRoot = protocol.DefaultRoot
	}
	if c.ClientID == "" {
		c.ClientID = c.Username
		if c.ClientID == "" {
			c.ClientID = DefaultClientID
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ConnectTimeout, DefaultConnectTimeout)
	def(&c.KeepAlive, DefaultKeepAlive)
	def(&c.PublishTimeout, DefaultPublishTimeout)
	def(&c.MinBackoff, DefaultMinBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	return c
}

// schemes are the URL schemes paho can dial that we support; tls reports whether it uses TLS.
var schemes = map[string]bool{"tcp": false, "ssl": true, "ws": false, "wss": true}

// Validate checks cfg without connecting: URL scheme, host and port; the CA certificate; the
// topic root, client ID and share group. It returns a *store.InvalidError naming each bad
// field (by the snake_case name of its Config field, as the API reports it; the first reason
// found for a field), wrapped so that errors.Is(err, ErrInvalidConfig) holds.
func Validate(cfg Config) error {
	fields := map[string]string{}
	add := func(field, format string, args ...any) {
		if _, dup := fields[field]; !dup {
			fields[field] = fmt.Sprintf(format, args...)
		}
	}
	isTLS := false
	u, err := url.Parse(cfg.URL)
	switch {
	case strings.TrimSpace(cfg.URL) == "":
		add("url", "required")
	case err != nil:
		add("url", "not a URL: %v", err)
	default:
		var known bool
		isTLS, known = schemes[u.Scheme]
		if !known {
			add("url", "scheme %q is not supported; use tcp://, ssl://, ws:// or wss://", u.Scheme)
			break
		}
		if u.Hostname() == "" {
			add("url", "host is missing")
		} else if p := literalTargetProblem(u.Hostname()); p != "" && !cfg.AllowPrivate {
			add("url", "%s", p)
		}
		if len(cfg.URL) > MaxURLLength {
			add("url", "must be at most %d bytes", MaxURLLength)
		}
		if u.User != nil {
			add("url", "credentials belong in username and password, not in the URL")
		}
		port := u.Port()
		switch {
		case port == "" && (u.Scheme == "tcp" || u.Scheme == "ssl"):
			add("url", "port is missing (MQTT usually listens on 1883, MQTT over TLS on 8883)")
		case port != "":
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				add("url", "port %q is not in 1-65535", port)
			}
		}
		if (u.Scheme == "tcp" || u.Scheme == "ssl") && u.Path != "" && u.Path != "/" {
			add("url", "a path is only meaningful for ws:// and wss://")
		}
	}
	if cfg.CACertPEM != "" {
		if _, err := parseCA(cfg.CACertPEM); err != nil {
			add("ca_cert_pem", "%v", err)
		} else if _, badURL := fields["url"]; u != nil && !isTLS && !badURL {
			add("ca_cert_pem", "a CA certificate is set but the URL does not use TLS (ssl:// or wss://)")
		}
	}
	if len(cfg.Username) > MaxCredentialLength {
		add("username", "must be at most %d bytes", MaxCredentialLength)
	}
	if len(cfg.Password) > MaxCredentialLength {
		add("password", "must be at most %d bytes", MaxCredentialLength)
	}
	if len(cfg.CACertPEM) > MaxCACertLength {
		add("ca_cert_pem", "must be at most %d bytes", MaxCACertLength)
	}
	if cfg.Password != "" && cfg.Username == "" {
		// MQTT 3.1.1 §3.1.2.9: a password needs a username.
		add("username", "required when a password is set")
	}
	if cfg.TopicRoot != "" && !protocol.ValidRoot(cfg.TopicRoot) {
		add("topic_root", "must be 1-%d bytes of levels of [A-Za-z0-9_.-] separated by '/'", protocol.MaxRootLength)
	}
	if cfg.ClientID != "" && (len(cfg.ClientID) > 128 || strings.ContainsAny(cfg.ClientID, "\x00/+#")) {
		add("client_id", "must be at most 128 bytes without NUL, '/', '+' or '#'")
	}
	if cfg.ShareGroup != "" && (len(cfg.ShareGroup) > 64 || strings.ContainsAny(cfg.ShareGroup, "\x00/+#")) {
		// MQTT 5 §4.8.2: a ShareName must not contain '/', '+' or '#'.
		add("share_group", "must be at most 64 bytes without NUL, '/', '+' or '#'")
	}
	for name, d := range map[string]time.Duration{"connect_timeout": cfg.ConnectTimeout, "keep_alive": cfg.KeepAlive,
		"publish_timeout": cfg.PublishTimeout, "min_backoff": cfg.MinBackoff, "max_backoff": cfg.MaxBackoff} {
		if d < 0 {
			add(name, "must not be negative")
		}
	}
	if cfg.MaxBackoff > 0 && cfg.MinBackoff > cfg.MaxBackoff {
		add("min_backoff", "must not exceed max_backoff")
	}
	if cfg.MaxInFlight < 0 || cfg.MaxInFlight > 65535 {
		add("max_in_flight", "must be 0-65535 (MQTT packet identifiers are 16 bits)")
	}
	if cfg.QueueSize < 0 {
		add("queue_size", "must not be negative")
	}
	if len(fields) == 0 {
		return nil
	}
	return fmt.Errorf("bridge: %w: %w", ErrInvalidConfig, &store.InvalidError{Fields: fields})
}

// parseCA parses every CERTIFICATE block of s into a pool; at least one is required.
func parseCA(s string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest := []byte(s)
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q is not a CERTIFICATE", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %v", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return pool, nil
}

// tlsConfig returns the TLS configuration for cfg's URL (nil for tcp:// and ws://).
func tlsConfig(cfg Config) (*tls.Config, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || !schemes[u.Scheme] {
		return nil, err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if cfg.CACertPEM != "" {
		pool, err := parseCA(cfg.CACertPEM)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// hostPort returns the host:port of a URL for dial checks and log lines.
func hostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if schemes[u.Scheme] {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
