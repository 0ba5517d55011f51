package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// setting describes one configuration value: its key in the YAML file, its flag, its
// environment variable, its default and where it lives in Config. The table below is the only
// place these names are written down.
type setting struct {
	key    string // dotted key in the configuration file, e.g. "http.addr"
	flag   string // command-line flag without dashes; empty for secrets (see package doc)
	env    string // environment variable
	def    string // default as a string; empty for derived defaults
	docDef string // default as documented, when it differs from def
	help   string
	secret bool // also accepted from a file; printed as [redacted]
	field  func(*Config) any
}

// settings is the single table of every setting, in documentation order.
var settings = []setting{
	{
		key: "data_dir", flag: "data-dir", env: "ESPADMIN_DATA_DIR", def: "./data",
		help:  "Folder for the SQLite database, local firmware blobs and the generated master key.",
		field: func(c *Config) any { return &c.DataDir },
	},
	{
		key: "http.addr", flag: "http-addr", env: "ESPADMIN_HTTP_ADDR", def: ":8080",
		help:  "Listen address of the web UI, REST API, /healthz, /readyz and /metrics.",
		field: func(c *Config) any { return &c.HTTP.Addr },
	},
	{
		key: "http.public_url", flag: "public-url", env: "ESPADMIN_PUBLIC_URL",
		docDef: "derived from the HTTP address, e.g. `http://localhost:8080`",
		help:   "Base URL users open and devices download firmware from; set it to the proxy's URL behind a reverse proxy.",
		field:  func(c *Config) any { return &c.HTTP.PublicURL },
	},
	{
		key: "http.shutdown_timeout", flag: "shutdown-timeout", env: "ESPADMIN_SHUTDOWN_TIMEOUT", def: "10s",
		help:  "How long in-flight HTTP requests may take to finish at shutdown (Go duration).",
		field: func(c *Config) any { return &c.HTTP.ShutdownTimeout },
	},
	{
		key: "mqtt.addr", flag: "mqtt-addr", env: "ESPADMIN_MQTT_ADDR", def: ":1883",
		help:  "Listen address of the embedded MQTT broker devices connect to.",
		field: func(c *Config) any { return &c.MQTT.Addr },
	},
	{
		key: "database.url", flag: "database-url", env: "ESPADMIN_DATABASE_URL",
		docDef: "`sqlite://<data-dir>/espadmin.db`",
		help:   "Database: `sqlite://PATH`, `postgres://…`, `mysql://…` or `mongodb://…`. A password in the URL is redacted when printed.",
		field:  func(c *Config) any { return &c.Database.URL },
	},
	{
		key: "storage.url", flag: "storage-url", env: "ESPADMIN_STORAGE_URL",
		docDef: "`<data-dir>/blobs`",
		help:   "Firmware storage: a local folder (a path or `file:///ABSOLUTE/PATH`) or `s3://BUCKET[/PREFIX]`.",
		field:  func(c *Config) any { return &c.Storage.URL },
	},
	{
		key: "storage.s3.endpoint", flag: "s3-endpoint", env: "ESPADMIN_S3_ENDPOINT",
		help:  "S3 endpoint as host[:port]; empty means AWS S3.",
		field: func(c *Config) any { return &c.Storage.S3.Endpoint },
	},
	{
		key: "storage.s3.region", flag: "s3-region", env: "ESPADMIN_S3_REGION",
		help:  "S3 region; empty asks the service for the bucket's region.",
		field: func(c *Config) any { return &c.Storage.S3.Region },
	},
	{
		key: "storage.s3.access_key_id", flag: "s3-access-key-id", env: "ESPADMIN_S3_ACCESS_KEY_ID",
		help:  "S3 access key ID.",
		field: func(c *Config) any { return &c.Storage.S3.AccessKeyID },
	},
	{
		key: "storage.s3.secret_key", env: "ESPADMIN_S3_SECRET_KEY", secret: true,
		help:  "S3 secret access key.",
		field: func(c *Config) any { return &c.Storage.S3.SecretAccessKey },
	},
	{
		key: "storage.s3.path_style", flag: "s3-path-style", env: "ESPADMIN_S3_PATH_STYLE", def: "false",
		help:  "Use path-style bucket addressing (MinIO, Ceph, Garage and most self-hosted services need it).",
		field: func(c *Config) any { return &c.Storage.S3.PathStyle },
	},
	{
		key: "storage.s3.insecure", flag: "s3-insecure", env: "ESPADMIN_S3_INSECURE", def: "false",
		help:  "Talk plain HTTP to the S3 endpoint.",
		field: func(c *Config) any { return &c.Storage.S3.Insecure },
	},
	{
		key: "log.level", flag: "log-level", env: "ESPADMIN_LOG_LEVEL", def: "info",
		help:  "Log level: `debug`, `info`, `warn` or `error`.",
		field: func(c *Config) any { return &c.Log.Level },
	},
	{
		key: "log.format", flag: "log-format", env: "ESPADMIN_LOG_FORMAT", def: "auto",
		help:  "Log format: `text`, `json`, or `auto` (text on a terminal, JSON otherwise).",
		field: func(c *Config) any { return &c.Log.Format },
	},
	{
		key: "security.master_key", env: "ESPADMIN_MASTER_KEY", secret: true,
		docDef: "generated into `<data-dir>/master.key` (mode 0600) on first start",
		help:   "Base64 of 32 random bytes that encrypts secrets at rest (`openssl rand -base64 32`). Keep a backup: without it, stored secrets cannot be read.",
		field:  func(c *Config) any { return &c.Security.MasterKey },
	},
}

// lookup returns the setting with the given key; an unknown key is a programming error.
func lookup(key string) setting {
	for _, s := range settings {
		if s.key == key {
			return s
		}
	}
	panic("config: unknown setting " + key)
}

// fileKey, fileFlag and fileEnv name the companion that reads a secret from a file.
func (s setting) fileKey() string { return s.key + "_file" }
func (s setting) fileFlag() string {
	return strings.TrimPrefix(strings.ToLower(strings.ReplaceAll(s.env, "_", "-")), "espadmin-") + "-file"
}
func (s setting) fileEnv() string { return s.env + "_FILE" }

// label names the setting the way users set it, for error messages.
func (s setting) label() string {
	if s.flag == "" {
		return fmt.Sprintf("%s / %s", s.env, s.fileEnv())
	}
	return fmt.Sprintf("%s / --%s", s.env, s.flag)
}

// isBool reports whether the setting is a boolean, so its flag can be given without a value.
func (s setting) isBool() bool {
	_, ok := s.field(&Config{}).(*bool)
	return ok
}

// set parses v into the setting's field.
func (s setting) set(c *Config, v string) error {
	switch p := s.field(c).(type) {
	case *string:
		*p = v
	case *bool:
		if v == "" {
			*p = false
			return nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not a boolean (true or false)", v)
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 10s, 1m30s)", v)
		}
		*p = d
	default:
		panic(fmt.Sprintf("config: setting %s has unsupported type %T", s.key, p))
	}
	return nil
}

// value formats the setting's current value the way set parses it.
func (s setting) value(c *Config) any {
	switch p := s.field(c).(type) {
	case *string:
		return *p
	case *bool:
		return *p
	case *time.Duration:
		return p.String()
	default:
		panic(fmt.Sprintf("config: setting %s has unsupported type %T", s.key, p))
	}
}
