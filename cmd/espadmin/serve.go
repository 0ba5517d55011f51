package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/espadmin/espadmin/broker"
	"github.com/espadmin/espadmin/broker/bridge"
	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/broker/tenantbus"
	"github.com/espadmin/espadmin/cmd/espadmin/config"
	"github.com/espadmin/espadmin/server"
	"github.com/espadmin/espadmin/server/devconfig"
	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/server/logrelay"
	"github.com/espadmin/espadmin/server/ota"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/backends"
	"github.com/espadmin/espadmin/store/blob"
	"github.com/espadmin/espadmin/store/seal"
)

// Deadlines for the start-up and shutdown steps that have no setting of their own.
const (
	openTimeout       = 30 * time.Second
	storeCloseTimeout = 10 * time.Second
)

// Purposes of keys derived from the master key; never change them once released, or
// existing signatures and ciphertexts stop verifying.
const (
	purposeBlobURLs   = "blob-url-signing"
	purposeOAuthState = "oauth-state-signing"
	// purposeConfigFingerprint keys the HMAC standing for secret config values in content
	// hashes (package devconfig).
	purposeConfigFingerprint = "config-secret-fingerprint"
)

// serve wires the process: config → logger → data dir → master key → store → migrate →
// blob store → HTTP server (→ MQTT broker, its own issue), runs them together and shuts them
// down in order when ctx ends.
func serve(ctx context.Context, cfg config.Config, _, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	started := time.Now()

	if err := ensureDataDir(cfg.DataDir); err != nil {
		return err
	}
	_, statErr := os.Stat(filepath.Join(cfg.DataDir, seal.MasterKeyFile))
	master, err := seal.LoadOrCreateMasterKey(cfg.DataDir, cfg.Security.MasterKey)
	if err != nil {
		return err
	}
	if cfg.Security.MasterKey == "" && errors.Is(statErr, fs.ErrNotExist) {
		log.Warn("generated a new master key; back it up with the database",
			"path", absPath(filepath.Join(cfg.DataDir, seal.MasterKeyFile)))
	}

	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore(st, log)

	version, err := st.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	log.Info("database ready", "backend", st.Backend(), "schema_version", version)

	// blobs is opened below, once the listener fixes the public URL, and before serving.
	var blobs blob.Store
	keyring, err := seal.NewKeyring(master)
	if err != nil {
		return err
	}
	mailer, err := newMailer(cfg.Mail)
	if err != nil {
		return err
	}
	// One registry for the HTTP server, the broker and the fleet services (/metrics).
	metrics := server.NewRegistry()
	const mqttShutdownTimeout = 10 * time.Second
	var (
		mqttBroker *broker.Broker
		bus        messaging.Bus
		sessions   messaging.Sessions
	)
	if cfg.MQTT.Enabled {
		// Built (listeners bound) before the server so the fleet services can use it;
		// started further down.
		mqttBroker, err = broker.New(cfg.MQTT, broker.Deps{Logger: log, Devices: st, Registerer: metrics})
		if err != nil {
			return fmt.Errorf("build MQTT broker: %w", err)
		}
		bus, sessions = mqttBroker, mqttBroker
	}
	// Tenants on their own brokers: one bridge each, loaded below once ingestion has
	// registered on them, refreshed periodically so changes saved on another replica apply.
	brokers := tenantbus.New(tenantbus.Options{
		Store: st, Keyring: keyring, Default: bus, DefaultRoot: protocol.DefaultRoot,
		ReplicaID: cfg.MQTT.ReplicaID, Logger: log.With("component", "tenantbus"),
		Bridge: bridge.Config{AllowPrivate: cfg.MQTT.BridgeAllowPrivate},
	})
	// Live logs and device errors: the relay sends debug commands through the fleet's
	// command service, which exists only once newFleet has run. It watches a device on its
	// tenant's broker (brokers routes), so live logs work with the embedded broker off.
	debugger := &logrelay.CommandsDebugger{}
	relay := logrelay.New(logrelay.Options{
		Bus: bus, Root: protocol.DefaultRoot, Router: brokers, Debugger: debugger, AutoDebug: true,
		DebugDuration: cfg.Logs.DebugDuration, ViewerBuffer: cfg.Logs.ViewerBuffer,
		Registerer: metrics, Logger: log.With("component", "logrelay"),
	})
	deviceErrors := devicerrors.New(devicerrors.Options{
		Store: st, Keyring: keyring, NotifyURL: cfg.Bugsnag.NotifyURL, QueueSize: cfg.Bugsnag.QueueSize,
		Registerer: metrics, Logger: log.With("component", "devicerrors"),
	})
	// Remote updates: ingestion reports OTA progress to the service, which sends update
	// commands through the fleet's command service (set once it exists) and reads firmware
	// storage (set once it is open, below).
	updates := ota.New(ota.Options{Store: st, Keyring: keyring, Logger: log.With("component", "ota"),
		MaxImageSize: int64(cfg.OTA.ReleaseMaxSize)})
	// Remote configuration: ingestion hands boot refreshes to it; it sends config commands
	// through the fleet's command service and learns their acks as an observer.
	remoteConfig := devconfig.New(devconfig.Options{
		Store: st, Keyring: keyring, FingerprintKey: seal.DeriveKey(master, purposeConfigFingerprint),
		Logger: log.With("component", "devconfig"),
	})
	fl := newFleet(cfg, st, keyring, bus, sessions, brokers, metrics, log,
		ingestHooks{logs: relay, errors: deviceErrors, ota: updates, config: remoteConfig})
	remoteConfig.SetCommands(fl.commands)
	remoteConfig.SetHub(fl.hub)
	remoteConfig.SetEndpoint(fl.devices.Endpoint)
	// Platform keys (_mqtt_host, _mqtt_port, _mqtt_ca) name the broker of the device's tenant.
	remoteConfig.SetTenantEndpoint(fl.devices.EndpointFor)
	remoteConfig.SetCredentials(fl.devices)
	fl.commands.Observe(remoteConfig)
	debugger.Commands = fl.commands
	updates.SetCommands(fl.commands)
	updates.SetHub(fl.hub)
	srv := server.New(cfg.HTTP, server.Deps{
		Logger:             log,
		Store:              st,
		Keyring:            keyring,
		Mailer:             mailer,
		Accounts:           cfg.Accounts,
		OAuth:              cfg.OAuth,
		StateKey:           seal.DeriveKey(master, purposeOAuthState),
		Registerer:         metrics,
		Gatherer:           metrics,
		Devices:            fl.devices,
		Commands:           fl.commands,
		Events:             fl.hub,
		Logs:               relay,
		OTA:                updates,
		Config:             remoteConfig,
		Brokers:            brokers,
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
	})
	ln, err := srv.Listen(ctx)
	if err != nil {
		return err
	}
	publicURL := cfg.HTTP.PublicURL
	if _, port, _ := net.SplitHostPort(cfg.HTTP.Addr); port == "0" && publicURL == config.PublicURLFromAddr(cfg.HTTP.Addr) {
		// An ephemeral port is only known now; links must carry the real one.
		publicURL = config.PublicURLFromAddr(ln.Addr().String())
	}
	srv.SetPublicURL(publicURL)
	endpoint, err := deviceEndpoint(cfg, publicURL, mqttBroker)
	if err != nil {
		ln.Close()
		return err
	}
	fl.devices.SetEndpoint(endpoint)
	if err := announceSetup(ctx, srv, publicURL, log); err != nil {
		ln.Close()
		return err
	}

	blobs, err = blob.Open(ctx, cfg.Storage.URL, blob.Options{
		SigningKey:    seal.DeriveKey(master, purposeBlobURLs),
		PublicBaseURL: publicURL,
		S3: blob.S3Options{
			Endpoint:        cfg.Storage.S3.Endpoint,
			Region:          cfg.Storage.S3.Region,
			AccessKeyID:     cfg.Storage.S3.AccessKeyID,
			SecretAccessKey: cfg.Storage.S3.SecretAccessKey,
			PathStyle:       cfg.Storage.S3.PathStyle,
			Insecure:        cfg.Storage.S3.Insecure,
		},
		Logger: log,
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("open firmware storage (ESPADMIN_STORAGE_URL / --storage-url): %w", err)
	}
	updates.SetBlobs(blobs)
	if local, ok := blobs.(*blob.Local); ok {
		srv.Mount(blob.LocalMountPath, local.Handler())
	}

	// MQTT broker: started below, after the blob store and before the HTTP server serves;
	// shut down after HTTP and the fleet workers, before the store. With
	// --mqtt-enabled=false (replicas whose devices use an external broker) there is no
	// embedded broker and bus/sessions stay nil.
	if mqttBroker != nil {
		if err := mqttBroker.Start(ctx); err != nil {
			ln.Close()
			return err
		}
	}

	// Bridges to tenants' own brokers connect in the background; an unreachable one does not
	// hold up the start.
	if err := brokers.Load(ctx); err != nil {
		log.Warn("load tenant broker settings", "error", err)
	}

	// Fleet workers (ingestion, command sweeper) run until HTTP has shut down, and stop
	// before the broker does.
	fleetCtx, stopFleet := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFleet()
	var fleetWG sync.WaitGroup

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ln) })
	runFleet := func(name string, run func(context.Context) error) {
		fleetWG.Add(1)
		g.Go(func() error {
			defer fleetWG.Done()
			if err := run(fleetCtx); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	// Ingestion also serves the tenants' bridges, so it runs without the embedded broker.
	runFleet("ingestion", fl.ingest.Run)
	runFleet("tenant brokers", brokers.Run)
	runFleet("command sweeper", fl.commands.Run)
	runFleet("rollout engine", updates.Run)
	runFleet("log relay", relay.Run)
	runFleet("error forwarding", deviceErrors.Run)
	// Expired sessions and stale login limits: removed at start and every sweepInterval.
	runFleet("housekeeping", func(ctx context.Context) error {
		return runSweeps(ctx, srv.Accounts(), sweepInterval, log.With("component", "housekeeping"))
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
		defer cancel()
		err := srv.Shutdown(sctx)
		stopFleet()
		fleetWG.Wait()
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
		"url", publicURL,
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
