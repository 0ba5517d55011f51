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
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the whole effective configuration.
type Config struct {
	// DataDir holds everything ESP Admin keeps on local disk by default: the SQLite database,
	// the firmware blobs and the generated master key.
	DataDir  string
	HTTP     HTTP
	MQTT     MQTT
	Database Database
	Storage  Storage
	Log      Log
	Security Security
}

// HTTP configures the management server (REST API, web UI, health and metrics).
type HTTP struct {
	// Addr is the listen address, host:port; an empty host listens on every interface.
	Addr string
	// PublicURL is the base URL users open and devices download from. It appears in links and
	// signed download URLs, so behind a reverse proxy it must be the proxy's URL. Derived from
	// Addr when empty.
	PublicURL string
	// ShutdownTimeout bounds how long in-flight requests may take to finish at shutdown.
	ShutdownTimeout time.Duration
}

// MQTT configures the embedded MQTT broker that devices connect to. The broker itself arrives
// with its own issue; this section is where its settings plug in.
type MQTT struct {
	// Addr is the broker's TCP listen address.
	Addr string
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

// Redaction is what Redacted prints in place of a secret.
const Redaction = "[redacted]"

// Defaults returns the built-in configuration before any file, environment or flag is
// applied. Settings derived from others (database and storage URLs, public URL) are filled in
// by Load once the data dir and listen address are known.
func Defaults() Config {
	var c Config
	for _, s := range settings {
		if err := s.set(&c, s.def); err != nil {
			// The defaults are constants in this package; a bad one is a programming error
			// caught by the package tests.
			panic(fmt.Sprintf("config: bad default for %s: %v", s.key, err))
		}
	}
	return c
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
		{"mqtt.addr", validateListenAddr(c.MQTT.Addr)},
		{"database.url", validateDatabaseURL(c.Database.URL)},
		{"storage.url", validateStorageURL(c.Storage.URL)},
		{"log.level", oneOf(c.Log.Level, "debug", "info", "warn", "error")},
		{"log.format", oneOf(c.Log.Format, "auto", "text", "json")},
		{"security.master_key", validateMasterKey(c.Security.MasterKey)},
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
