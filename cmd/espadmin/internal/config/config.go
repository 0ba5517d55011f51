// Package config holds ESP Admin's configuration: one Config value with a sub-struct per
// concern, built once in cmd/espadmin and passed down by value.
//
// Every setting is described exactly once, in the settings table (settings.go). That table
// drives the command-line flags, the ESPADMIN_* environment variables, the keys of the optional
// YAML file, the redacted printout and the generated table in docs/configuration.md, so the four
// cannot drift apart.
//
// Precedence, lowest first: built-in defaults, the configuration file (--config or
// ESPADMIN_CONFIG), the environment, then flags. Every secret can also be read from a file
// (ESPADMIN_MASTER_KEY_FILE, --master-key-file, security.master_key_file, ...); secrets have no
// plain command-line flag because command lines are visible to every user of the machine.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/espadmin/espadmin/broker"
	"github.com/espadmin/espadmin/server"
	"github.com/espadmin/espadmin/server/devicerrors"
)

// Config is the whole effective configuration.
type Config struct {
	// DataDir holds everything ESP Admin keeps on local disk by default: the SQLite database,
	// the firmware blobs and the generated master key.
	DataDir  string
	HTTP     server.HTTPConfig
	MQTT     MQTT
	Database Database
	Storage  Storage
	Log      Log
	Security Security
	Accounts server.AccountsConfig
	Mail     Mail
	OAuth    server.OAuthConfig
	Logs     Logs
	Bugsnag  Bugsnag
	OTA      OTA
	History  History
	Alerts   Alerts
	Errors   Errors
}

// History configures the presence and health history (devices' presence changes and
// reports, the fleet's counts) behind the dashboard's and device page's charts.
type History struct {
	// FleetInterval is how often each tenant's online and total devices are counted.
	FleetInterval time.Duration
	// Retention is how long samples are kept; older ones are swept.
	Retention time.Duration
}

// Alerts configures alert notifications (package server/alerts, docs/alerts.md).
type Alerts struct {
	// WebhookAllowPrivate lets webhook and ntfy channels reach private, loopback and
	// link-local addresses.
	WebhookAllowPrivate bool
	// Retention is how long resolved and acknowledged alerts and finished deliveries are
	// kept; older ones are swept.
	Retention time.Duration
}

// Errors configures the device error reports behind the error groups (package devicerrors,
// docs/logs-and-errors.md).
type Errors struct {
	// Retention is how long raw error reports, and the core dumps uploaded for them, are
	// kept; older ones are swept. The groups' counts stay. 0 keeps them forever.
	Retention time.Duration
}

// OTA configures remote software updates (package ota, docs/ota.md).
type OTA struct {
	// ReleaseMaxSize caps an uploaded firmware image in bytes. The largest app partition of
	// common ESP32 partition tables (ota_0/ota_1 of 16 MB flash) is about 7.9 MB.
	ReleaseMaxSize int
	// DownloadCAFile is a PEM file with the CA devices verify firmware downloads with; it is
	// written into provisioning bundles (ota_ca). Empty: no ota_ca.
	DownloadCAFile string
}

// Logs configures the live device log relay (package logrelay, docs/logs-and-errors.md).
type Logs struct {
	// DebugDuration is the duration_s of the debug commands the relay sends: the device stops
	// streaming by itself after it; the relay renews it while viewers remain.
	DebugDuration time.Duration
	// ViewerBuffer is each viewer's buffer in frames (a frame is one batch of up to 64 lines).
	ViewerBuffer int
	// AllowedOrigins lists, comma separated, the origins besides the public URL's whose pages
	// may open log streams.
	AllowedOrigins string
}

// Bugsnag configures the forwarding of device errors (package devicerrors).
type Bugsnag struct {
	// NotifyURL is the notify endpoint for tenants that set none (on-premise Bugsnag).
	NotifyURL string
	// QueueSize bounds the reports waiting to be forwarded; more are dropped and counted.
	QueueSize int
}

// MQTT holds the mqtt.* settings: the embedded broker's own (package broker) and what the
// rest of the process needs to know about the broker devices use, embedded or not.
type MQTT struct {
	// Enabled runs the embedded broker; false for replicas whose devices use an external broker.
	Enabled bool
	// Config is the embedded broker's listeners and limits.
	broker.Config

	// PublicHost and PublicPort are the broker address written into provisioning bundles;
	// empty or 0 derive them from the public URL's host and the (TLS) listen address.
	PublicHost string
	PublicPort int
	// DeviceCAFile is a PEM file with the CA devices verify the TLS listener with; it is
	// written into provisioning bundles.
	DeviceCAFile string
	// ShareGroup, when set, makes ingestion subscribe with $share/GROUP/… so that several
	// server replicas on one (external, clustered) broker each handle a part of the reports.
	ShareGroup string
	// ReplicaID is appended to the client IDs of tenants' broker bridges so that replicas
	// sharing a tenant broker keep distinct persistent sessions.
	ReplicaID string
	// BridgeAllowPrivate lets tenants' broker bridges and connection tests dial private,
	// loopback and link-local addresses (bridge.Config.AllowPrivate).
	BridgeAllowPrivate bool
	// AuthSecret is the shared secret external brokers present to the device authentication
	// endpoints (/api/v1/mqtt/…); empty turns those endpoints off.
	AuthSecret string
}

// Database selects the store backend by URL scheme.
type Database struct {
	// URL is sqlite://PATH, postgres://..., mysql://... or mongodb://...; a password in it is
	// treated as a secret when printed.
	URL string
}

// Storage selects where firmware binaries are kept.
type Storage struct {
	// URL is a local folder (a path or file://PATH) or s3://BUCKET[/PREFIX].
	URL string
	// S3 holds the connection settings used when URL is s3://.
	S3 S3
}

// S3 configures an S3-compatible object store.
type S3 struct {
	// Endpoint is host[:port] of the service; empty means AWS S3.
	Endpoint        string
	Region          string
	AccessKeyID     string
	SecretAccessKey string
	// PathStyle addresses buckets as endpoint/bucket instead of bucket.endpoint, which most
	// self-hosted services (MinIO, Ceph, Garage) need.
	PathStyle bool
	// Insecure uses plain HTTP to the endpoint.
	Insecure bool
}

// Log configures log/slog output.
type Log struct {
	// Level is debug, info, warn or error.
	Level string
	// Format is auto, text or json; auto means text on a terminal and JSON otherwise.
	Format string
}

// Security holds the key material ESP Admin needs at start.
type Security struct {
	// MasterKey is the base64 encoding of 32 bytes that encrypts secrets at rest. When empty,
	// a key is generated into DataDir/master.key on first start.
	MasterKey string
}

// Mail configures outgoing email (password resets, verification, invitations).
type Mail struct {
	// SMTPURL is smtp://user:pass@host:587 (STARTTLS when offered) or smtps://…:465
	// (implicit TLS); empty disables mail, and admins produce reset links with the CLI.
	SMTPURL string
	// From is the sender address.
	From string
}

// Enabled reports whether mail can be sent.
func (m Mail) Enabled() bool { return m.SMTPURL != "" }

// Redaction is what Redacted prints in place of a secret.
const Redaction = "[redacted]"

// Defaults returns the built-in configuration before any file, environment or flag is
// applied: the defaults of the packages that own a sub-struct, then those the settings table
// gives for the rest. Settings derived from others (database and storage URLs, public URL)
// are filled in by Load once the data dir and listen address are known.
func Defaults() Config {
	c := packageDefaults()
	for _, s := range settings {
		if s.def == "" {
			continue
		}
		if err := s.set(&c, s.def); err != nil {
			// The defaults are constants in this package; a bad one is a programming error
			// caught by the package tests.
			panic(fmt.Sprintf("config: bad default for %s: %v", s.key, err))
		}
	}
	return c
}

// packageDefaults is the configuration holding only the defaults of the packages that own a
// sub-struct.
func packageDefaults() Config {
	return Config{
		HTTP:     server.DefaultHTTPConfig(),
		MQTT:     MQTT{Config: broker.DefaultConfig()},
		Accounts: server.DefaultAccountsConfig(),
		OAuth:    server.DefaultOAuthConfig(),
	}
}

// derive fills in the settings whose defaults depend on other settings.
func (c *Config) derive() {
	if c.Database.URL == "" {
		c.Database.URL = DefaultDatabaseURL(c.DataDir)
	}
	if c.Storage.URL == "" {
		c.Storage.URL = filepath.Join(c.DataDir, "blobs")
	}
	if c.HTTP.PublicURL == "" {
		c.HTTP.PublicURL = PublicURLFromAddr(c.HTTP.Addr)
	}
}

// DefaultDatabaseURL is the SQLite database inside dataDir. The path is made absolute so the
// URL means the same thing whatever the working directory of a later command.
func DefaultDatabaseURL(dataDir string) string {
	p := filepath.Join(dataDir, "espadmin.db")
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return "sqlite://" + filepath.ToSlash(p)
}

// PublicURLFromAddr derives the URL a user on this machine opens from a listen address:
// a wildcard or empty host becomes localhost.
func PublicURLFromAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://localhost"
	}
	switch host {
	case "", "0.0.0.0", "::", "[::]":
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Validate checks every setting and returns the first problem, naming the environment
// variable and flag to fix.
func (c Config) Validate() error {
	checks := []struct {
		key string
		err error
	}{
		{"data_dir", nonEmpty(c.DataDir)},
		{"http.addr", validateListenAddr(c.HTTP.Addr)},
		{"http.public_url", validatePublicURL(c.HTTP.PublicURL)},
		{"http.shutdown_timeout", positive(c.HTTP.ShutdownTimeout)},
		{"mqtt.addr", optionalListenAddr(c.MQTT.Addr)},
		{"mqtt.tls_addr", optionalListenAddr(c.MQTT.TLSAddr)},
		{"mqtt.tls_key", validateTLSPair(c.MQTT.TLSCert, c.MQTT.TLSKey)},
		{"mqtt.ws_addr", optionalListenAddr(c.MQTT.WSAddr)},
		{"mqtt.ws_path", validateWSPath(c.MQTT.WSPath)},
		{"mqtt.connect_timeout", positive(c.MQTT.ConnectTimeout)},
		{"mqtt.write_timeout", positive(c.MQTT.WriteTimeout)},
		{"mqtt.max_packet_size", intRange(c.MQTT.MaxPacketSize, 1024, 256<<20)},
		{"mqtt.max_clients", intRange(c.MQTT.MaxClients, 1, 10_000_000)},
		{"mqtt.max_pending_writes", intRange(c.MQTT.MaxPendingWrites, 1, 1<<20)},
		{"mqtt.receive_maximum", intRange(c.MQTT.ReceiveMaximum, 1, 65535)},
		{"mqtt.max_inflight", intRange(c.MQTT.MaxInflight, 1, 65535)},
		{"mqtt.buffer_size", intRange(c.MQTT.BufferSize, 256, 1<<20)},
		{"mqtt.keepalive_min", keepaliveRange(c.MQTT.KeepaliveMin, c.MQTT.KeepaliveMin)},
		{"mqtt.keepalive_max", keepaliveRange(c.MQTT.KeepaliveMax, c.MQTT.KeepaliveMin)},
		{"mqtt.session_expiry_max", nonNegative(c.MQTT.SessionExpiryMax)},
		{"mqtt.message_expiry_max", positive(c.MQTT.MessageExpiryMax)},
		{"mqtt.rate_limit", intRange(c.MQTT.RateLimit, 1, 1_000_000)},
		{"mqtt.rate_burst", intRange(c.MQTT.RateBurst, 1, 1_000_000)},
		{"mqtt.auth_cache_ttl", nonNegative(c.MQTT.AuthCacheTTL)},
		{"mqtt.public_port", intRange(c.MQTT.PublicPort, 0, 65535)},
		{"mqtt.share_group", validateShareGroup(c.MQTT.ShareGroup)},
		{"mqtt.replica_id", validateShareGroup(c.MQTT.ReplicaID)},
		{"mqtt.auth_secret", validateAuthSecret(c.MQTT.AuthSecret)},
		{"logs.debug_duration", durationBetween(c.Logs.DebugDuration, time.Second, 4*time.Hour)},
		{"logs.viewer_buffer", intBetween(c.Logs.ViewerBuffer, 1, 100000)},
		{"logs.allowed_origins", validateOrigins(c.Logs.AllowedOrigins)},
		{"bugsnag.notify_url", validatePublicURL(c.Bugsnag.NotifyURL)},
		{"bugsnag.queue_size", intBetween(c.Bugsnag.QueueSize, 1, 1000000)},
		{"ota.release_max_size", intRange(c.OTA.ReleaseMaxSize, 64<<10, 1<<30)},
		{"history.fleet_interval", durationBetween(c.History.FleetInterval, time.Second, 24*time.Hour)},
		{"history.retention", durationBetween(c.History.Retention, time.Hour, 5*365*24*time.Hour)},
		{"alerts.retention", durationBetween(c.Alerts.Retention, time.Hour, 5*365*24*time.Hour)},
		{"errors.retention", zeroOrBetween(c.Errors.Retention, devicerrors.MinRetention, 5*365*24*time.Hour)},
		{"database.url", validateDatabaseURL(c.Database.URL)},
		{"storage.url", validateStorageURL(c.Storage.URL)},
		{"log.level", oneOf(c.Log.Level, "debug", "info", "warn", "error")},
		{"log.format", oneOf(c.Log.Format, "auto", "text", "json")},
		{"security.master_key", validateMasterKey(c.Security.MasterKey)},
		{"accounts.signup", oneOf(c.Accounts.Signup, server.SignupOpen, server.SignupClosed)},
		{"accounts.session_idle_timeout", positive(c.Accounts.SessionIdleTimeout)},
		{"accounts.session_max_age", positive(c.Accounts.SessionMaxAge)},
		{"accounts.reset_link_ttl", positive(c.Accounts.ResetLinkTTL)},
		{"mail.smtp_url", validateSMTPURL(c.Mail.SMTPURL)},
		{"mail.from", validateMailFrom(c.Mail)},
		{"oauth.github.client_secret", pairSet(c.OAuth.GitHub.ClientID, c.OAuth.GitHub.ClientSecret)},
		{"oauth.google.client_secret", pairSet(c.OAuth.Google.ClientID, c.OAuth.Google.ClientSecret)},
		{"oauth.gitlab.client_secret", pairSet(c.OAuth.GitLab.ClientID, c.OAuth.GitLab.ClientSecret)},
		{"oauth.oidc.discovery_url", validateOIDC(c.OAuth.OIDC)},
	}
	for _, ch := range checks {
		if ch.err != nil {
			return fmt.Errorf("invalid %s: %w", lookup(ch.key).label(), ch.err)
		}
	}
	return nil
}

// IsS3 reports whether firmware binaries go to S3-compatible storage.
func (s Storage) IsS3() bool { return strings.HasPrefix(s.URL, "s3://") }

func nonEmpty(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func positive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be positive, got %s", d)
	}
	return nil
}

func oneOf(v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
}

func validateListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has an invalid port", addr)
	}
	return nil
}

func validatePublicURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http:// or https:// URL", raw)
	}
	return nil
}

// databaseSchemes are the URL schemes a store backend exists for.
var databaseSchemes = []string{"sqlite", "postgres", "postgresql", "mysql", "mongodb", "mongodb+srv"}

func validateDatabaseURL(raw string) error {
	if raw == "" {
		return errors.New("must not be empty")
	}
	if p, ok := strings.CutPrefix(raw, "sqlite:"); ok && !strings.HasPrefix(p, "//") {
		raw = "sqlite://" + p // the short form sqlite:path.db
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || scheme == "" {
		return errors.New("missing scheme (want sqlite://, postgres://, mysql:// or mongodb://)")
	}
	scheme = strings.ToLower(scheme)
	known := false
	for _, s := range databaseSchemes {
		known = known || scheme == s
	}
	if !known {
		return fmt.Errorf("unsupported scheme %q (want sqlite, postgres, mysql or mongodb)", scheme)
	}
	if scheme == "sqlite" {
		if strings.TrimSpace(strings.SplitN(rest, "?", 2)[0]) == "" {
			return errors.New("sqlite:// needs a file path, e.g. sqlite:///var/lib/espadmin/espadmin.db")
		}
		return nil
	}
	// url.Parse errors quote the whole URL, password included; report only what is wrong.
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("malformed %s URL: %v", scheme, err)
	}
	if u.Host == "" {
		return fmt.Errorf("%s URL has no host", scheme)
	}
	return nil
}

func validateStorageURL(raw string) error {
	if raw == "" {
		return errors.New("must not be empty")
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil // a plain local path
	}
	switch strings.ToLower(scheme) {
	case "file":
		if !strings.HasPrefix(rest, "/") {
			return errors.New("file:// needs an absolute folder path, e.g. file:///var/lib/espadmin/blobs")
		}
	case "s3":
		bucket, _, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return errors.New("s3:// needs a bucket, e.g. s3://firmware or s3://firmware/prefix")
		}
	default:
		return fmt.Errorf("unsupported scheme %q (want a folder path, file:// or s3://)", scheme)
	}
	return nil
}

// DecodeMasterKey decodes a configured master key: standard base64 of exactly 32 bytes.
func DecodeMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, errors.New("not valid base64 (generate one with: openssl rand -base64 32)")
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("decodes to %d bytes, want 32 (generate one with: openssl rand -base64 32)", len(key))
	}
	return key, nil
}

func validateMasterKey(s string) error {
	if s == "" {
		return nil
	}
	_, err := DecodeMasterKey(s)
	return err
}

// Redacted returns a copy with every secret replaced by Redaction and passwords removed from
// URLs, for printing and logging.
func (c Config) Redacted() Config {
	for _, s := range settings {
		if s.secret {
			if p := s.field(&c).(*string); *p != "" {
				*p = Redaction
			}
		}
	}
	c.Database.URL = RedactURL(c.Database.URL)
	c.Storage.URL = RedactURL(c.Storage.URL)
	return c
}

// String renders the redacted configuration as YAML, so it can never leak a secret.
func (c Config) String() string {
	out, err := c.Redacted().YAML()
	if err != nil {
		return "config: " + err.Error()
	}
	return string(out)
}

// sensitiveParams are query parameters that carry credentials in database URLs.
var sensitiveParams = []string{"password", "sslpassword", "secret", "token", "authsource_password"}

// RedactURL replaces the password in a URL's user info, and credential query parameters,
// with Redaction. Strings that do not parse as URLs are returned unchanged unless they look
// like they carry user info, in which case everything before the @ is hidden.
func RedactURL(raw string) string {
	scheme, _, hasScheme := strings.Cut(raw, "://")
	if !hasScheme {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		if at := strings.LastIndex(raw, "@"); at >= 0 {
			return scheme + "://" + Redaction + raw[at:]
		}
		return raw
	}
	const placeholder = "REDACTEDPLACEHOLDER"
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), placeholder)
	}
	q := u.Query()
	changed := false
	for k := range q {
		for _, p := range sensitiveParams {
			if strings.EqualFold(k, p) {
				q.Set(k, placeholder)
				changed = true
			}
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return strings.ReplaceAll(u.String(), placeholder, Redaction)
}

func validateSMTPURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
		return errors.New("want smtp://[user:pass@]host[:port] or smtps://[user:pass@]host[:port]")
	}
	return nil
}

func validateMailFrom(m Mail) error {
	if m.SMTPURL == "" {
		return nil
	}
	if _, err := mail.ParseAddress(m.From); err != nil {
		return fmt.Errorf("%q is not an email address (required when ESPADMIN_SMTP_URL is set)", m.From)
	}
	return nil
}

// pairSet checks an OAuth client: a client ID needs its secret.
func pairSet(id, secret string) error {
	if id != "" && secret == "" {
		return errors.New("must be set when the client ID is set")
	}
	return nil
}

func validateOIDC(o server.OIDCProvider) error {
	if o.ClientID == "" && o.DiscoveryURL == "" {
		return nil
	}
	if o.ClientID == "" || o.ClientSecret == "" {
		return errors.New("OpenID Connect needs ESPADMIN_OIDC_CLIENT_ID and ESPADMIN_OIDC_CLIENT_SECRET too")
	}
	u, err := url.Parse(o.DiscoveryURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL of .well-known/openid-configuration", o.DiscoveryURL)
	}
	return nil
}

// optionalListenAddr accepts an empty address (the listener is disabled) or host:port.
func optionalListenAddr(addr string) error {
	if addr == "" {
		return nil
	}
	return validateListenAddr(addr)
}

func validateTLSPair(cert, key string) error {
	if (cert == "") != (key == "") {
		return errors.New("ESPADMIN_MQTT_TLS_CERT and ESPADMIN_MQTT_TLS_KEY must be set together")
	}
	return nil
}

func validateWSPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q must start with /", p)
	}
	return nil
}

func intRange(v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("must be between %d and %d, got %d", lo, hi, v)
	}
	return nil
}

func nonNegative(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("must not be negative, got %s", d)
	}
	return nil
}

// keepaliveRange checks a keepalive bound: whole seconds from 1 s to MQTT's 65,535 s, and
// not below the minimum.
func keepaliveRange(d, lowest time.Duration) error {
	if d < time.Second || d > 65535*time.Second || d%time.Second != 0 {
		return fmt.Errorf("must be whole seconds between 1s and 65535s, got %s", d)
	}
	if d < lowest {
		return fmt.Errorf("must not be below ESPADMIN_MQTT_KEEPALIVE_MIN (%s), got %s", lowest, d)
	}
	return nil
}

// validateShareGroup accepts an empty group or one MQTT topic level without wildcards
// (MQTT 5 §4.8.2: a ShareName must not contain "/", "+" or "#").
func validateShareGroup(g string) error {
	if g != "" && (strings.ContainsAny(g, "/+#$\x00") || len(g) > 64) {
		return fmt.Errorf("must be up to 64 characters without / + # $")
	}
	return nil
}

// validateAuthSecret accepts no secret (endpoints off) or one long enough not to be guessed.
func validateAuthSecret(s string) error {
	if s != "" && len(s) < 16 {
		return fmt.Errorf("must be at least 16 characters (or empty to turn the device authentication endpoints off)")
	}
	return nil
}

// durationBetween checks lo <= d <= hi.
func durationBetween(d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return fmt.Errorf("must be from %s to %s", lo, hi)
	}
	return nil
}

// zeroOrBetween checks d == 0 (off) or lo <= d <= hi.
func zeroOrBetween(d, lo, hi time.Duration) error {
	if d != 0 && durationBetween(d, lo, hi) != nil {
		return fmt.Errorf("must be 0 (keep forever) or from %s to %s", lo, hi)
	}
	return nil
}

// intBetween checks lo <= n <= hi.
func intBetween(n, lo, hi int) error {
	if n < lo || n > hi {
		return fmt.Errorf("must be from %d to %d", lo, hi)
	}
	return nil
}

// validateOrigins checks a comma-separated list of origins: scheme://host[:port], nothing else.
func validateOrigins(list string) error {
	for _, o := range SplitList(list) {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("%q is not an origin (scheme://host[:port])", o)
		}
	}
	return nil
}

// SplitList splits a comma-separated setting, trimming spaces and dropping empty items.
func SplitList(list string) []string {
	var out []string
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
