package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/espadmin/espadmin/broker"
	"github.com/espadmin/espadmin/cmd/espadmin/internal/config"
	"github.com/espadmin/espadmin/server"
	"github.com/espadmin/espadmin/server/alerts"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/server/mail"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/backends"
	"github.com/espadmin/espadmin/store/blob"
	"github.com/espadmin/espadmin/store/devauth"
	"github.com/espadmin/espadmin/store/seal"
)

// Deadlines for the start-up and shutdown steps that have no setting of their own.
const (
	openTimeout         = 30 * time.Second
	storeCloseTimeout   = 10 * time.Second
	mqttShutdownTimeout = 10 * time.Second
)

// Purposes of keys derived from the master key; never change them once released, or
// existing signatures and ciphertexts stop verifying.
const (
	purposeBlobURLs   = "blob-url-signing"
	purposeOAuthState = "oauth-state-signing"
	// purposeConfigFingerprint keys the HMAC standing for secret config values in content
	// hashes (package devconfig).
	purposeConfigFingerprint = "config-secret-fingerprint"
	// purposeCoreDumpURLs keys the HMAC of core dump upload URLs (package devicerrors).
	purposeCoreDumpURLs = "coredump-upload-signing"
)

// serve runs the server. It builds everything in one pass, in dependency order, each part
// complete when it is built (nothing is set afterwards): data folder → store (migrated) →
// master key, checked against the store → HTTP listener, which fixes the public URL → firmware storage → MQTT broker →
// the services (services.go) → HTTP server. Then it runs them together until ctx ends and
// shuts them down in order: HTTP, background workers, broker, store.
func serve(ctx context.Context, cfg config.Config, _, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	started := time.Now()

	if err := ensureDataDir(cfg.DataDir); err != nil {
		return err
	}
	mailer, err := newMailer(cfg.Mail)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore(st, log)
	before, err := st.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("read database schema version: %w", err)
	}
	version, err := st.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	log.Info("database ready", "backend", st.Backend(), "schema_version", version)
	// The key must open the database's key check; a new one only for an empty database.
	master, err := openMasterKey(ctx, cfg, st, before == 0, log)
	if err != nil {
		return err
	}
	keyring, err := seal.NewKeyring(master)
	if err != nil {
		return err
	}

	// Listening comes before everything that writes the public URL into links, signed
	// download URLs and provisioning bundles: with port 0 the port is only known now.
	ln, err := server.Listen(ctx, cfg.HTTP.Addr)
	if err != nil {
		return err
	}
	defer ln.Close() // for the error returns below; closed already once the server has run
	cfg.HTTP.PublicURL = publicURL(cfg.HTTP, ln.Addr())

	blobs, err := openBlobs(ctx, cfg, master, log)
	if err != nil {
		return err
	}
	// One registry for the HTTP server, the broker and the services (/metrics).
	metrics := server.NewRegistry()
	// The embedded broker is built with its listeners bound, so their addresses are known for
	// provisioning bundles; runAll starts it. There is none with --mqtt-enabled=false
	// (replicas whose devices use an external broker).
	// One cache of device credentials for the broker and ingestion: forgetting a device or a
	// tenant there reaches both.
	deviceAuth := devauth.New(st, devauth.Options{TTL: cfg.MQTT.AuthCacheTTL})
	// The tenants' event hub exists before the broker, which reports failed device logins
	// on it (alert rules watch them).
	fleetMetrics := fleet.NewMetrics(metrics)
	hub := fleet.NewHub(func(n int) { fleetMetrics.EventsDropped.Add(float64(n)) })
	var mqttBroker *broker.Broker
	if cfg.MQTT.Enabled {
		mqttBroker, err = broker.New(cfg.MQTT.Config, broker.Deps{Logger: log, Devices: st, AuthCache: deviceAuth, Registerer: metrics,
			AuthFailed: func(tenantID, deviceID string) {
				hub.Publish(fleet.Event{Type: fleet.EventAuthFailed, TenantID: tenantID, DeviceID: deviceID})
			}})
		if err != nil {
			return fmt.Errorf("build MQTT broker: %w", err)
		}
	}
	endpoint, err := deviceEndpoint(cfg, cfg.HTTP.PublicURL, mqttBroker)
	if err != nil {
		return err
	}
	svc := buildServices(cfg, serviceDeps{
		store: st, keyring: keyring, master: master, broker: mqttBroker, blobs: blobs,
		deviceAuth: deviceAuth, endpoint: endpoint, metrics: metrics, log: log, publicURL: cfg.HTTP.PublicURL,
		mailer: mailer, hub: hub, fleetMetrics: fleetMetrics,
	})
	srv := buildServer(cfg, st, keyring, master, mailer, blobs, metrics, svc, log)
	if err := announceSetup(ctx, srv, cfg.HTTP.PublicURL, log); err != nil {
		return err
	}
	return runAll(ctx, cfg, log, started, ln, srv, mqttBroker, svc)
}

// publicURL is the configured public URL, with the real port when the listener was asked for
// port 0 and the URL was derived from the listen address (links must carry the real port).
func publicURL(cfg server.HTTPConfig, bound net.Addr) string {
	if _, port, _ := net.SplitHostPort(cfg.Addr); port == "0" && cfg.PublicURL == config.PublicURLFromAddr(cfg.Addr) {
		return config.PublicURLFromAddr(bound.String())
	}
	return cfg.PublicURL
}

// openBlobs opens firmware storage; local download URLs are signed for the public URL.
func openBlobs(ctx context.Context, cfg config.Config, master []byte, log *slog.Logger) (blob.Store, error) {
	blobs, err := blob.Open(ctx, cfg.Storage.URL, blob.Options{
		SigningKey:    seal.DeriveKey(master, purposeBlobURLs),
		PublicBaseURL: cfg.HTTP.PublicURL,
		Logger:        log,
		S3: blob.S3Options{
			Endpoint:        cfg.Storage.S3.Endpoint,
			Region:          cfg.Storage.S3.Region,
			AccessKeyID:     cfg.Storage.S3.AccessKeyID,
			SecretAccessKey: cfg.Storage.S3.SecretAccessKey,
			PathStyle:       cfg.Storage.S3.PathStyle,
			Insecure:        cfg.Storage.S3.Insecure,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open firmware storage (ESPADMIN_STORAGE_URL / --storage-url): %w", err)
	}
	return blobs, nil
}

// buildServer builds the HTTP server on the services; local firmware storage serves its
// signed downloads through it.
func buildServer(cfg config.Config, st store.Store, keyring *seal.Keyring, master []byte, mailer mail.Sender,
	blobs blob.Store, metrics *prometheus.Registry, svc *services, log *slog.Logger) *server.Server {
	deps := server.Deps{
		Logger:     log,
		Store:      st,
		Keyring:    keyring,
		Mailer:     mailer,
		Accounts:   cfg.Accounts,
		OAuth:      cfg.OAuth,
		StateKey:   seal.DeriveKey(master, purposeOAuthState),
		Registerer: metrics,
		Gatherer:   metrics,
		Devices:    svc.devices,
		Commands:   svc.commands,
		Events:     svc.hub,
		Logs:       svc.relay,
		OTA:        svc.ota,
		CoreDumps:  svc.coreDumps,
		Regroup:    svc.regroup,
		Alerts: alerts.NewService(alerts.ServiceOptions{
			Store: st, Keyring: keyring, Engine: svc.alerts, Dispatcher: svc.dispatch,
			AllowPrivate: cfg.Alerts.WebhookAllowPrivate, PublicURL: cfg.HTTP.PublicURL,
		}),
		Config:             svc.config,
		Brokers:            svc.brokers,
		BrokerAllowPrivate: cfg.MQTT.BridgeAllowPrivate,
		MQTTAuthSecret:     cfg.MQTT.AuthSecret,
		AllowedOrigins:     config.SplitList(cfg.Logs.AllowedOrigins),
		Ready: func(ctx context.Context) error {
			if err := st.Ping(ctx); err != nil {
				return fmt.Errorf("database: %w", err)
			}
			if err := blobs.Ping(ctx); err != nil {
				return fmt.Errorf("firmware storage: %w", err)
			}
			return nil
		},
	}
	if local, ok := blobs.(*blob.Local); ok {
		deps.Mounts = map[string]http.Handler{blob.LocalMountPath: local.Handler()}
	}
	return server.New(cfg.HTTP, deps)
}

// runAll starts the broker and the tenants' bridges, serves HTTP and runs the background
// workers until ctx ends, then shuts down in order: HTTP, the workers, the broker. The
// caller closes the store last.
func runAll(ctx context.Context, cfg config.Config, log *slog.Logger, started time.Time, ln net.Listener,
	srv *server.Server, mqttBroker *broker.Broker, svc *services) error {
	if mqttBroker != nil {
		if err := mqttBroker.Start(ctx); err != nil {
			return err
		}
	}
	// Bridges to tenants' own brokers connect in the background; an unreachable one does not
	// hold up the start.
	if err := svc.brokers.Load(ctx); err != nil {
		log.Warn("load tenant broker settings", "error", err)
	}

	// Background workers run until HTTP has shut down, and stop before the broker does.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var workers sync.WaitGroup

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ln) })
	runWorker := func(name string, run func(context.Context) error) {
		workers.Add(1)
		g.Go(func() error {
			defer workers.Done()
			if err := run(workCtx); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	// Ingestion also serves the tenants' bridges, so it runs without the embedded broker.
	runWorker("ingestion", svc.ingest.Run)
	if svc.presence != nil {
		runWorker("presence reconciliation", svc.presence.Run)
	}
	runWorker("tenant brokers", svc.brokers.Run)
	runWorker("command sweeper", svc.commands.Run)
	runWorker("rollout engine", svc.ota.Run)
	runWorker("log relay", svc.relay.Run)
	runWorker("error forwarding", svc.errors.Run)
	runWorker("error regrouping", svc.regroup.Run)
	// Fleet counts over time for the dashboard, and the history's retention sweep.
	runWorker("fleet history", svc.history.Run)
	runWorker("alert engine", svc.alerts.Run)
	runWorker("alert dispatch", svc.dispatch.Run)
	runWorker("alert retention", svc.alertRetention.Run)
	if svc.errorRetention != nil {
		runWorker("error report retention", svc.errorRetention.Run)
	}
	// Expired sessions and stale login limits: removed at start and every sweepInterval.
	runWorker("housekeeping", func(ctx context.Context) error {
		return runSweeps(ctx, srv.Accounts(), sweepInterval, log.With("component", "housekeeping"))
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
		defer cancel()
		err := srv.Shutdown(sctx)
		stopWork()
		workers.Wait()
		if mqttBroker != nil {
			mctx, cancel := context.WithTimeout(context.Background(), mqttShutdownTimeout)
			defer cancel()
			if berr := mqttBroker.Shutdown(mctx); berr != nil {
				log.Error("shut down MQTT broker", "error", berr)
			}
		}
		return err
	})

	log.Info("espadmin is ready",
		"url", cfg.HTTP.PublicURL,
		"data_dir", absPath(cfg.DataDir),
		"database", config.RedactURL(cfg.Database.URL),
		"storage", config.RedactURL(cfg.Storage.URL),
		"mqtt", mqttSummary(mqttBroker),
		"startup_ms", time.Since(started).Milliseconds(),
	)
	if err := g.Wait(); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// openStore opens the database the configuration names, with the setting in the error.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (store.Store, error) {
	octx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	st, err := backends.Open(octx, cfg.Database.URL, backends.Options{Logger: log})
	if err != nil {
		// The backends' errors name the URL, password redacted.
		return nil, fmt.Errorf("open database (ESPADMIN_DATABASE_URL / --database-url): %w", err)
	}
	return st, nil
}

// closeStore closes the store last, bounded so a hung driver cannot stop the process from
// exiting.
func closeStore(st store.Store, log *slog.Logger) {
	done := make(chan error, 1)
	go func() { done <- st.Close() }()
	select {
	case err := <-done:
		if err != nil {
			log.Error("close database", "error", err)
		}
	case <-time.After(storeCloseTimeout):
		log.Error("close database: gave up waiting", "timeout", storeCloseTimeout.String())
	}
}

// mqttSummary describes the embedded broker's listeners for the ready log line.
func mqttSummary(b *broker.Broker) string {
	if b == nil {
		return "disabled (external broker)"
	}
	var parts []string
	for _, p := range []string{"tcp", "tls", "ws"} {
		if a := b.Addr(p); a != "" {
			parts = append(parts, p+"://"+a)
		}
	}
	if len(parts) == 0 {
		return "no listener"
	}
	return strings.Join(parts, " ")
}
