package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// setting describes one configuration value: its key in the YAML file, its flag, its
// environment variable, its default and where it lives in Config. The table below is the only
// place these names are written down. A setting of a sub-struct owned by another package
// (broker.Config, server.HTTPConfig, server.AccountsConfig, server.OAuthConfig) takes its
// default from that package's defaults function and has no def here, so every default is
// written once.
type setting struct {
	key    string // dotted key in the configuration file, e.g. "http.addr"
	flag   string // command-line flag without dashes; empty for secrets (see package doc)
	env    string // environment variable
	def    string // default as a string; empty for derived defaults and package-owned settings
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
		key: "http.addr", flag: "http-addr", env: "ESPADMIN_HTTP_ADDR",
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
		key: "http.shutdown_timeout", flag: "shutdown-timeout", env: "ESPADMIN_SHUTDOWN_TIMEOUT",
		help:  "How long in-flight HTTP requests may take to finish at shutdown (Go duration).",
		field: func(c *Config) any { return &c.HTTP.ShutdownTimeout },
	},
	{
		key: "mqtt.enabled", flag: "mqtt-enabled", env: "ESPADMIN_MQTT_ENABLED", def: "true",
		help:  "Run the embedded MQTT broker. `false` on replicas whose devices use an external broker.",
		field: func(c *Config) any { return &c.MQTT.Enabled },
	},
	{
		key: "mqtt.addr", flag: "mqtt-addr", env: "ESPADMIN_MQTT_ADDR",
		help:  "Plain TCP listen address of the embedded MQTT broker devices connect to; empty disables it.",
		field: func(c *Config) any { return &c.MQTT.Addr },
	},
	{
		key: "mqtt.tls_addr", flag: "mqtt-tls-addr", env: "ESPADMIN_MQTT_TLS_ADDR",
		help:  "MQTT over TLS listen address, used when a certificate and key are set; empty disables it.",
		field: func(c *Config) any { return &c.MQTT.TLSAddr },
	},
	{
		key: "mqtt.tls_cert", flag: "mqtt-tls-cert", env: "ESPADMIN_MQTT_TLS_CERT",
		help:  "PEM certificate chain of the MQTT TLS listener.",
		field: func(c *Config) any { return &c.MQTT.TLSCert },
	},
	{
		key: "mqtt.tls_key", flag: "mqtt-tls-key", env: "ESPADMIN_MQTT_TLS_KEY",
		help:  "PEM private key of the MQTT TLS listener (a file path).",
		field: func(c *Config) any { return &c.MQTT.TLSKey },
	},
	{
		key: "mqtt.ws_addr", flag: "mqtt-ws-addr", env: "ESPADMIN_MQTT_WS_ADDR",
		help:  "MQTT over WebSocket listen address, e.g. `:8083`; empty disables it.",
		field: func(c *Config) any { return &c.MQTT.WSAddr },
	},
	{
		key: "mqtt.ws_path", flag: "mqtt-ws-path", env: "ESPADMIN_MQTT_WS_PATH",
		help:  "The only HTTP path the WebSocket listener upgrades.",
		field: func(c *Config) any { return &c.MQTT.WSPath },
	},
	{
		key: "mqtt.ws_allowed_origins", flag: "mqtt-ws-allowed-origins", env: "ESPADMIN_MQTT_WS_ALLOWED_ORIGINS",
		help:  "Comma-separated `Origin` values a browser WebSocket may come from, e.g. `https://admin.example.com`; `*` allows any. Requests without an Origin header (devices) are always allowed.",
		field: func(c *Config) any { return &c.MQTT.WSAllowedOrigins },
	},
	{
		key: "mqtt.connect_timeout", flag: "mqtt-connect-timeout", env: "ESPADMIN_MQTT_CONNECT_TIMEOUT",
		help:  "A connection that has not sent CONNECT within this time is closed.",
		field: func(c *Config) any { return &c.MQTT.ConnectTimeout },
	},
	{
		key: "mqtt.write_timeout", flag: "mqtt-write-timeout", env: "ESPADMIN_MQTT_WRITE_TIMEOUT",
		help:  "A client whose socket accepts no data for this long is disconnected, so a device that stops reading cannot stall the broker.",
		field: func(c *Config) any { return &c.MQTT.WriteTimeout },
	},
	{
		key: "mqtt.max_packet_size", flag: "mqtt-max-packet-size", env: "ESPADMIN_MQTT_MAX_PACKET_SIZE",
		help:  "Largest MQTT packet accepted, in bytes; a client sending a larger one is disconnected.",
		field: func(c *Config) any { return &c.MQTT.MaxPacketSize },
	},
	{
		key: "mqtt.max_clients", flag: "mqtt-max-clients", env: "ESPADMIN_MQTT_MAX_CLIENTS",
		help:  "Most simultaneously connected MQTT clients.",
		field: func(c *Config) any { return &c.MQTT.MaxClients },
	},
	{
		key: "mqtt.max_pending_writes", flag: "mqtt-max-pending-writes", env: "ESPADMIN_MQTT_MAX_PENDING_WRITES",
		help:  "Outbound messages queued per client (8 bytes each); further messages to a client that does not keep up are dropped and counted.",
		field: func(c *Config) any { return &c.MQTT.MaxPendingWrites },
	},
	{
		key: "mqtt.receive_maximum", flag: "mqtt-receive-maximum", env: "ESPADMIN_MQTT_RECEIVE_MAXIMUM",
		help:  "Unacknowledged QoS 1 messages a client may send at once.",
		field: func(c *Config) any { return &c.MQTT.ReceiveMaximum },
	},
	{
		key: "mqtt.max_inflight", flag: "mqtt-max-inflight", env: "ESPADMIN_MQTT_MAX_INFLIGHT",
		help:  "Unacknowledged QoS 1 messages the broker keeps per client.",
		field: func(c *Config) any { return &c.MQTT.MaxInflight },
	},
	{
		key: "mqtt.buffer_size", flag: "mqtt-buffer-size", env: "ESPADMIN_MQTT_BUFFER_SIZE",
		help:  "Socket read and write buffer per client, in bytes.",
		field: func(c *Config) any { return &c.MQTT.BufferSize },
	},
	{
		key: "mqtt.keepalive_min", flag: "mqtt-keepalive-min", env: "ESPADMIN_MQTT_KEEPALIVE_MIN",
		help:  "Smallest keepalive a client may use; smaller requests are raised to it.",
		field: func(c *Config) any { return &c.MQTT.KeepaliveMin },
	},
	{
		key: "mqtt.keepalive_max", flag: "mqtt-keepalive-max", env: "ESPADMIN_MQTT_KEEPALIVE_MAX",
		help:  "Largest keepalive a client may use; larger requests, and 0 (none), are lowered to it.",
		field: func(c *Config) any { return &c.MQTT.KeepaliveMax },
	},
	{
		key: "mqtt.session_expiry_max", flag: "mqtt-session-expiry-max", env: "ESPADMIN_MQTT_SESSION_EXPIRY_MAX",
		help:  "Longest time a disconnected persistent session (subscriptions, queued QoS 1 messages) is kept.",
		field: func(c *Config) any { return &c.MQTT.SessionExpiryMax },
	},
	{
		key: "mqtt.message_expiry_max", flag: "mqtt-message-expiry-max", env: "ESPADMIN_MQTT_MESSAGE_EXPIRY_MAX",
		help:  "Longest time a queued message is kept before it expires.",
		field: func(c *Config) any { return &c.MQTT.MessageExpiryMax },
	},
	{
		key: "mqtt.rate_limit", flag: "mqtt-rate-limit", env: "ESPADMIN_MQTT_RATE_LIMIT",
		help:  "Log and error messages per second each device may publish on average; the excess is dropped and counted. Acks, OTA reports, config requests, metadata and statuses are never dropped (docs/protocol.md §7).",
		field: func(c *Config) any { return &c.MQTT.RateLimit },
	},
	{
		key: "mqtt.rate_burst", flag: "mqtt-rate-burst", env: "ESPADMIN_MQTT_RATE_BURST",
		help:  "Messages a device may publish in a burst above its rate.",
		field: func(c *Config) any { return &c.MQTT.RateBurst },
	},
	{
		key: "mqtt.auth_cache_ttl", flag: "mqtt-auth-cache-ttl", env: "ESPADMIN_MQTT_AUTH_CACHE_TTL",
		help:  "How long a device's credentials lookup is cached, by the broker and by ingestion alike (0 disables the cache). Rotating, disabling or deleting a device, or deleting its tenant, evicts it at once.",
		field: func(c *Config) any { return &c.MQTT.AuthCacheTTL },
	},
	{
		key: "mqtt.public_host", flag: "mqtt-public-host", env: "ESPADMIN_MQTT_PUBLIC_HOST",
		docDef: "the host of `http.public_url`",
		help:   "Broker host name devices dial, written into provisioning bundles.",
		field:  func(c *Config) any { return &c.MQTT.PublicHost },
	},
	{
		key: "mqtt.public_port", flag: "mqtt-public-port", env: "ESPADMIN_MQTT_PUBLIC_PORT", def: "0",
		docDef: "the port of `mqtt.tls_addr` when TLS is configured, else of `mqtt.addr`",
		help:   "Broker port devices dial, written into provisioning bundles (0 derives it).",
		field:  func(c *Config) any { return &c.MQTT.PublicPort },
	},
	{
		key: "mqtt.device_ca_file", flag: "mqtt-device-ca-file", env: "ESPADMIN_MQTT_DEVICE_CA_FILE",
		help:  "PEM file of the CA devices verify the broker's TLS certificate with; written into provisioning bundles.",
		field: func(c *Config) any { return &c.MQTT.DeviceCAFile },
	},
	{
		key: "mqtt.share_group", flag: "mqtt-share-group", env: "ESPADMIN_MQTT_SHARE_GROUP",
		help:  "With several replicas on one external broker: ingest through the shared subscription `$share/GROUP/…` so each report is handled once.",
		field: func(c *Config) any { return &c.MQTT.ShareGroup },
	},
	{
		key: "mqtt.replica_id", flag: "mqtt-replica-id", env: "ESPADMIN_MQTT_REPLICA_ID",
		help:  "With several replicas: a stable name, distinct per replica, appended to the client IDs of the bridges to tenants' own brokers so each replica keeps its own session.",
		field: func(c *Config) any { return &c.MQTT.ReplicaID },
	},
	{
		key: "mqtt.bridge_allow_private", flag: "mqtt-bridge-allow-private", env: "ESPADMIN_MQTT_BRIDGE_ALLOW_PRIVATE", def: "false",
		help:  "Let tenants point their broker settings (and the connection test) at private, loopback, link-local and CGNAT addresses. Off, only public addresses are dialled, so a tenant admin cannot make the server probe its own network; turn it on when tenants' brokers run on your LAN or on this host.",
		field: func(c *Config) any { return &c.MQTT.BridgeAllowPrivate },
	},
	{
		key: "mqtt.auth_secret", env: "ESPADMIN_MQTT_AUTH_SECRET", secret: true,
		help:  "Shared secret external brokers (EMQX HTTP authentication, mosquitto-go-auth HTTP backend) present to `/api/v1/mqtt/…` to check device credentials; empty turns those endpoints off. At least 16 characters.",
		field: func(c *Config) any { return &c.MQTT.AuthSecret },
	},
	{
		key: "history.fleet_interval", flag: "history-fleet-interval", env: "ESPADMIN_HISTORY_FLEET_INTERVAL", def: "5m",
		help:  "How often each tenant's online and total devices are counted for the dashboard's chart (1s to 24h).",
		field: func(c *Config) any { return &c.History.FleetInterval },
	},
	{
		key: "history.retention", flag: "history-retention", env: "ESPADMIN_HISTORY_RETENTION", def: "720h",
		help:  "How long presence changes, device reports and fleet counts are kept for the charts (1h to 5 years); older ones are swept.",
		field: func(c *Config) any { return &c.History.Retention },
	},
	{
		key: "logs.debug_duration", flag: "logs-debug-duration", env: "ESPADMIN_LOGS_DEBUG_DURATION", def: "15m",
		help:  "How long a device streams logs after one debug command (1s to 4h); the relay renews it while someone watches.",
		field: func(c *Config) any { return &c.Logs.DebugDuration },
	},
	{
		key: "logs.viewer_buffer", flag: "logs-viewer-buffer", env: "ESPADMIN_LOGS_VIEWER_BUFFER", def: "64",
		help:  "Log batches buffered per browser; a browser further behind loses lines and is told how many.",
		field: func(c *Config) any { return &c.Logs.ViewerBuffer },
	},
	{
		key: "logs.allowed_origins", flag: "logs-allowed-origins", env: "ESPADMIN_LOGS_ALLOWED_ORIGINS",
		help:  "Comma-separated origins (scheme://host[:port]), besides the public URL's, whose pages may open live log streams.",
		field: func(c *Config) any { return &c.Logs.AllowedOrigins },
	},
	{
		key: "bugsnag.notify_url", flag: "bugsnag-notify-url", env: "ESPADMIN_BUGSNAG_NOTIFY_URL", def: "https://notify.bugsnag.com",
		help:  "Bugsnag notify endpoint for tenants that set none (an on-premise Bugsnag's URL).",
		field: func(c *Config) any { return &c.Bugsnag.NotifyURL },
	},
	{
		key: "bugsnag.queue_size", flag: "bugsnag-queue-size", env: "ESPADMIN_BUGSNAG_QUEUE_SIZE", def: "1000",
		help:  "Device error reports waiting to be forwarded to Bugsnag; more are dropped and counted.",
		field: func(c *Config) any { return &c.Bugsnag.QueueSize },
	},
	{
		key: "errors.retention", flag: "errors-retention", env: "ESPADMIN_ERRORS_RETENTION", def: "2160h",
		help: "How long device error reports, and the core dumps uploaded with them, are kept (48h to 5 years, " +
			"or `0` to keep them forever); older ones are swept. Error groups stay with their counts, first and last " +
			"sighting and per-device counts; their reports list, trend and backtrace come from the reports kept.",
		field: func(c *Config) any { return &c.Errors.Retention },
	},
	{
		key: "alerts.webhook_allow_private", flag: "alerts-webhook-allow-private", env: "ESPADMIN_ALERTS_WEBHOOK_ALLOW_PRIVATE", def: "false",
		help:  "Let alert webhooks and ntfy channels post to private, loopback, link-local and CGNAT addresses (also after a redirect). Off, only public addresses are reached, so a tenant admin cannot make the server call into its own network; turn it on for receivers on your LAN or on this host.",
		field: func(c *Config) any { return &c.Alerts.WebhookAllowPrivate },
	},
	{
		key: "alerts.retention", flag: "alerts-retention", env: "ESPADMIN_ALERTS_RETENTION", def: "2160h",
		help:  "How long resolved and acknowledged alerts and delivered or failed notifications are kept in the alert history and delivery log (1h to 5 years); older ones are swept. Firing alerts and notifications still being sent are kept however old.",
		field: func(c *Config) any { return &c.Alerts.Retention },
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
		key: "ota.release_max_size", flag: "release-max-size", env: "ESPADMIN_RELEASE_MAX_SIZE", def: "16777216",
		docDef: "`16777216` (16 MiB)",
		help:   "Largest firmware image a release upload accepts, in bytes; larger uploads get 413 and nothing is stored.",
		field:  func(c *Config) any { return &c.OTA.ReleaseMaxSize },
	},
	{
		key: "ota.download_ca_file", flag: "ota-download-ca-file", env: "ESPADMIN_OTA_DOWNLOAD_CA_FILE",
		help: "PEM file of the CA devices verify every firmware download with (provisioning key `ota_ca`). " +
			"Unset, a device verifies a download under the public URL with the broker's CA (`mqtt.device_ca_file`) " +
			"and any other (an S3 presigned URL) with its built-in CA bundle; set it when firmware comes from a host " +
			"with another private CA.",
		field: func(c *Config) any { return &c.OTA.DownloadCAFile },
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
	{
		key: "accounts.signup", flag: "signup", env: "ESPADMIN_SIGNUP",
		help:  "`closed`: accounts come only from the first-run setup URL, `espadmin user create` and invitations; `open`: anyone who reaches the server may sign up (email or OAuth).",
		field: func(c *Config) any { return &c.Accounts.Signup },
	},
	{
		key: "accounts.session_idle_timeout", flag: "session-idle-timeout", env: "ESPADMIN_SESSION_IDLE_TIMEOUT",
		help:  "A browser session unused for this long ends (Go duration).",
		field: func(c *Config) any { return &c.Accounts.SessionIdleTimeout },
	},
	{
		key: "accounts.session_max_age", flag: "session-max-age", env: "ESPADMIN_SESSION_MAX_AGE",
		help:  "Every browser session ends this long after login, used or not (Go duration).",
		field: func(c *Config) any { return &c.Accounts.SessionMaxAge },
	},
	{
		key: "accounts.reset_link_ttl", flag: "reset-link-ttl", env: "ESPADMIN_RESET_LINK_TTL",
		help:  "How long a password-reset link stays valid (Go duration).",
		field: func(c *Config) any { return &c.Accounts.ResetLinkTTL },
	},
	{
		key: "mail.smtp_url", env: "ESPADMIN_SMTP_URL", secret: true,
		help:  "Outgoing mail server, `smtp://user:pass@host:587` (STARTTLS) or `smtps://user:pass@host:465`; empty disables mail (admins then use `espadmin user reset-link`).",
		field: func(c *Config) any { return &c.Mail.SMTPURL },
	},
	{
		key: "mail.from", flag: "mail-from", env: "ESPADMIN_MAIL_FROM",
		help:  "Sender address of outgoing mail, e.g. `ESP Admin <espadmin@example.com>`; required with an SMTP URL.",
		field: func(c *Config) any { return &c.Mail.From },
	},
	{
		key: "oauth.github.client_id", flag: "oauth-github-client-id", env: "ESPADMIN_OAUTH_GITHUB_CLIENT_ID",
		help:  "GitHub OAuth app client ID; enables \"Sign in with GitHub\". Callback: `PUBLIC_URL/api/v1/auth/oauth/github/callback`.",
		field: func(c *Config) any { return &c.OAuth.GitHub.ClientID },
	},
	{
		key: "oauth.github.client_secret", env: "ESPADMIN_OAUTH_GITHUB_CLIENT_SECRET", secret: true,
		help:  "GitHub OAuth app client secret.",
		field: func(c *Config) any { return &c.OAuth.GitHub.ClientSecret },
	},
	{
		key: "oauth.google.client_id", flag: "oauth-google-client-id", env: "ESPADMIN_OAUTH_GOOGLE_CLIENT_ID",
		help:  "Google OAuth client ID; enables \"Sign in with Google\". Callback: `PUBLIC_URL/api/v1/auth/oauth/google/callback`.",
		field: func(c *Config) any { return &c.OAuth.Google.ClientID },
	},
	{
		key: "oauth.google.client_secret", env: "ESPADMIN_OAUTH_GOOGLE_CLIENT_SECRET", secret: true,
		help:  "Google OAuth client secret.",
		field: func(c *Config) any { return &c.OAuth.Google.ClientSecret },
	},
	{
		key: "oauth.gitlab.client_id", flag: "oauth-gitlab-client-id", env: "ESPADMIN_OAUTH_GITLAB_CLIENT_ID",
		help:  "GitLab (gitlab.com) application ID; enables \"Sign in with GitLab\". Callback: `PUBLIC_URL/api/v1/auth/oauth/gitlab/callback`.",
		field: func(c *Config) any { return &c.OAuth.GitLab.ClientID },
	},
	{
		key: "oauth.gitlab.client_secret", env: "ESPADMIN_OAUTH_GITLAB_CLIENT_SECRET", secret: true,
		help:  "GitLab application secret.",
		field: func(c *Config) any { return &c.OAuth.GitLab.ClientSecret },
	},
	{
		key: "oauth.oidc.discovery_url", flag: "oidc-discovery-url", env: "ESPADMIN_OIDC_DISCOVERY_URL",
		help:  "OpenID Connect discovery URL (`https://idp.example.com/.well-known/openid-configuration`); with the client ID and secret, enables a generic OIDC login. Callback: `PUBLIC_URL/api/v1/auth/oauth/oidc/callback`.",
		field: func(c *Config) any { return &c.OAuth.OIDC.DiscoveryURL },
	},
	{
		key: "oauth.oidc.client_id", flag: "oidc-client-id", env: "ESPADMIN_OIDC_CLIENT_ID",
		help:  "OpenID Connect client ID.",
		field: func(c *Config) any { return &c.OAuth.OIDC.ClientID },
	},
	{
		key: "oauth.oidc.client_secret", env: "ESPADMIN_OIDC_CLIENT_SECRET", secret: true,
		help:  "OpenID Connect client secret.",
		field: func(c *Config) any { return &c.OAuth.OIDC.ClientSecret },
	},
	{
		key: "oauth.oidc.name", flag: "oidc-name", env: "ESPADMIN_OIDC_NAME",
		help:  "Name of the OpenID Connect provider on the login page, e.g. `Company SSO`.",
		field: func(c *Config) any { return &c.OAuth.OIDC.Name },
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
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		*p = n
	default:
		panic(fmt.Sprintf("config: setting %s has unsupported type %T", s.key, p))
	}
	return nil
}

// defaultValue is the setting's default as a value set parses: the table's, else the owning
// package's.
func (s setting) defaultValue() string {
	if s.def != "" {
		return s.def
	}
	d := packageDefaults()
	if p, ok := s.field(&d).(*time.Duration); ok {
		return shortDuration(*p)
	}
	return fmt.Sprint(s.value(&d))
}

// defaultText is the setting's default as documented: docDef, else defaultValue ("empty"
// when that is an empty string).
func (s setting) defaultText() string {
	if s.docDef != "" {
		return s.docDef
	}
	if v := s.defaultValue(); v != "" {
		return "`" + v + "`"
	}
	return "empty"
}

// shortDuration writes d without zero trailing units: 5m rather than 5m0s, 24h rather than
// 24h0m0s.
func shortDuration(d time.Duration) string {
	v := d.String()
	if strings.HasSuffix(v, "m0s") {
		v = strings.TrimSuffix(v, "0s")
	}
	if strings.HasSuffix(v, "h0m") {
		v = strings.TrimSuffix(v, "0m")
	}
	return v
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
	case *int:
		return *p
	default:
		panic(fmt.Sprintf("config: setting %s has unsupported type %T", s.key, p))
	}
}
