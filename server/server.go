// Package server is ESP Admin's HTTP server: the REST API, the web UI, the health and
// metrics endpoints and any handler mounted by other packages (such as signed blob downloads).
//
// All routes are registered in routes.go so the API reads top to bottom. Handlers return
// errors; one error handler (errors.go) turns every error into one JSON shape.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/espadmin/espadmin/broker/tenantbus"
	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/server/alerts"
	"github.com/espadmin/espadmin/server/devconfig"
	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/server/logrelay"
	"github.com/espadmin/espadmin/server/mail"
	"github.com/espadmin/espadmin/server/ota"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
	"github.com/espadmin/espadmin/ui"
)

// Timeouts of the underlying http.Server. They are always set so a slow or idle client cannot
// hold a connection forever. Handlers that legitimately need longer (WebSocket log streams,
// large downloads and uploads) extend their own deadlines with http.ResponseController.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 60 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 120 * time.Second
)

// DefaultBodyLimit caps request bodies on every route, in bytes; upload routes set their own
// limit with BodyLimit.
const DefaultBodyLimit = 1 << 20

// readyTimeout bounds one readiness check, so /readyz answers even when the database hangs.
const readyTimeout = 3 * time.Second

// Deps are the collaborators the server needs: the services behind the API, built before the
// server (nil services answer 503 on their routes).
type Deps struct {
	// Logger receives request logs and the details of internal errors. Nil discards.
	Logger *slog.Logger
	// Registerer and Gatherer hold the HTTP metrics and serve /metrics. When both are nil a
	// fresh registry with the Go and process collectors is used.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Ready reports whether the server can do useful work (the store answers). Nil means
	// always ready.
	Ready func(ctx context.Context) error

	// Store is the database. Nil leaves the API without accounts (only tests do that).
	Store store.Store
	// Keyring seals secrets at rest.
	Keyring *seal.Keyring
	// Mailer sends password-reset, verification and invitation mail; nil means mail is not
	// configured (admins then make reset links with `espadmin user reset-link`).
	Mailer mail.Sender
	// Now is the clock; nil means time.Now. Tests inject one to expire sessions.
	Now func() time.Time
	// Accounts configures sign-up and session lifetimes.
	Accounts AccountsConfig
	// OAuth enables external login providers.
	OAuth OAuthConfig
	// StateKey signs the short-lived OAuth state cookie (HMAC-SHA256); derive it from the
	// master key so every replica accepts the others' cookies.
	StateKey []byte
	// HTTPClient calls OAuth providers; nil means a client with a 15 s timeout.
	HTTPClient *http.Client
	// PasswordHash overrides the argon2id cost (tests use a cheap one); zero means the default.
	PasswordHash account.HashParams

	// Logs relays live device logs to WebSocket viewers (package logrelay); nil answers 503.
	Logs *logrelay.Relay
	// AllowedOrigins are the origins, besides the public URL's, whose pages may open log
	// streams (http.allowed_origins).
	AllowedOrigins []string

	// Devices, Commands and Events are the fleet services behind the device, command and
	// event routes (package fleet); when nil those routes answer 503.
	Devices  *fleet.Devices
	Commands *fleet.Commands
	Events   *fleet.Hub
	// Config is the remote configuration service (package devconfig); when nil the
	// configuration routes answer 503.
	Config *devconfig.Service
	// OTA is the update service behind the project, release and rollout routes (package
	// ota); when nil those routes answer 503.
	OTA *ota.Service
	// CoreDumps takes the core dumps devices upload and hands them out (package
	// devicerrors); when nil the core dump routes answer 503.
	CoreDumps *devicerrors.CoreDumps
	// Regroup re-keys a release's crash groups by function once its ELF file is uploaded
	// (package devicerrors); nil leaves the groups of reports that came before keyed by
	// address.
	Regroup *devicerrors.Regrouper
	// Alerts manages alert rules and channels (package alerts); when nil their writes answer
	// 503 and the history still reads.
	Alerts *alerts.Service

	// Brokers routes tenants to their own MQTT brokers (package tenantbus); the broker
	// settings routes apply saved settings through it and read its connection states. When
	// nil, settings are saved and take effect at the next start.
	Brokers *tenantbus.Manager
	// BrokerAllowPrivate lets tenants' broker settings and connection tests name private,
	// loopback and link-local addresses (mqtt.bridge_allow_private, bridge.Config.AllowPrivate).
	BrokerAllowPrivate bool
	// MQTTAuthSecret is the shared secret external brokers present to the device
	// authentication endpoints (mqtt.auth_secret); empty turns those endpoints off (404).
	MQTTAuthSecret string

	// Mounts are other packages' handlers, each served for every method and every path under
	// its prefix (which ends in "/"), for example the local blob store's signed downloads at
	// blob.LocalMountPath.
	Mounts map[string]http.Handler
}

// Server is the HTTP server.
type Server struct {
	cfg     HTTPConfig
	deps    Deps
	log     *slog.Logger
	echo    *echo.Echo
	http    *http.Server
	metrics *httpMetrics
	// openAPI is the JSON of GET /api/v1/openapi.json, built from the route table when the
	// routes are registered.
	openAPI []byte

	now          func() time.Time
	accounts     *account.Service
	publicURL    string
	publicRoutes map[string]bool
	oauth        *oauthProviders
	// bodyLimits are the routes ("METHOD /path") whose body limit replaces DefaultBodyLimit.
	bodyLimits map[string]func() int64
	// ui renders the web UI's pages (routes.go, ui.go).
	ui *ui.UI
	// deviceAuth rate-limits the device authentication endpoints (deviceauth.go).
	deviceAuth *deviceAuthLimiter
}

// NewRegistry returns a Prometheus registry with the Go runtime and process collectors, for
// the server and every other component of the process to register on. The global registry is
// not used so that tests can build several servers in one process.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return r
}

// New builds the server and registers its routes. It does not listen yet.
func New(cfg HTTPConfig, deps Deps) *Server {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registerer == nil && deps.Gatherer == nil {
		r := NewRegistry()
		deps.Registerer, deps.Gatherer = r, r
	}
	if deps.Ready == nil {
		deps.Ready = func(context.Context) error { return nil }
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Logger.SetOutput(discard{})

	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	s := &Server{
		cfg:          cfg,
		deps:         deps,
		log:          deps.Logger,
		echo:         e,
		metrics:      newHTTPMetrics(deps.Registerer),
		now:          deps.Now,
		publicURL:    strings.TrimRight(cfg.PublicURL, "/"),
		publicRoutes: map[string]bool{},
		bodyLimits:   map[string]func() int64{},
		deviceAuth:   newDeviceAuthLimiter(),
	}
	if deps.Store != nil {
		s.accounts = account.New(deps.Store, account.Options{
			SignupOpen:    deps.Accounts.SignupOpen(),
			SessionIdle:   deps.Accounts.SessionIdleTimeout,
			SessionMaxAge: deps.Accounts.SessionMaxAge,
			ResetTTL:      deps.Accounts.ResetLinkTTL,
			Now:           deps.Now,
			Hash:          deps.PasswordHash,
		})
	}
	s.oauth = newOAuthProviders(s)
	e.HTTPErrorHandler = s.handleError
	s.http = &http.Server{
		Addr:              cfg.Addr,
		Handler:           e,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          slog.NewLogLogger(deps.Logger.Handler(), slog.LevelWarn),
	}
	s.routes()
	for prefix, h := range deps.Mounts {
		s.mount(prefix, h)
	}
	return s
}

// Accounts returns the account service (nil without a store), for the command line and the
// tenancy handlers.
func (s *Server) Accounts() *account.Service { return s.accounts }

// Handler returns the server's root handler, for tests that do not need a socket.
func (s *Server) Handler() http.Handler { return s.echo }

// Listen opens the HTTP listen address addr (http.addr). The process listens before it
// builds the server, so the real address of port 0 is in the public URL the server and the
// services behind it are built with.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http: listen on %s (ESPADMIN_HTTP_ADDR / --http-addr): %w", addr, err)
	}
	return ln, nil
}

// Serve serves on ln until Shutdown; it returns nil after a shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.log.Info("http server listening", "addr", ln.Addr().String())
	if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests until ctx ends; then
// it closes the remaining connections and returns the context's error.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
		return fmt.Errorf("http: shutdown: %w", err)
	}
	return nil
}

// discard silences echo's own logger; the server logs through slog.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
