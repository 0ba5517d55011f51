package main

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/espadmin/espadmin/broker"
	"github.com/espadmin/espadmin/broker/bridge"
	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/broker/tenantbus"
	"github.com/espadmin/espadmin/cmd/espadmin/internal/config"
	"github.com/espadmin/espadmin/server/alerts"
	"github.com/espadmin/espadmin/server/devconfig"
	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/server/logrelay"
	"github.com/espadmin/espadmin/server/mail"
	"github.com/espadmin/espadmin/server/ota"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/blob"
	"github.com/espadmin/espadmin/store/devauth"
	"github.com/espadmin/espadmin/store/seal"
)

// services are the services behind the API and the background workers, built by
// buildServices.
type services struct {
	brokers  *tenantbus.Manager
	hub      *fleet.Hub
	commands *fleet.Commands
	devices  *fleet.Devices
	config   *devconfig.Service
	ota      *ota.Service
	relay    *logrelay.Relay
	errors   *devicerrors.Service
	// coreDumps collects the core dumps devices announce in crash reports.
	coreDumps *devicerrors.CoreDumps
	// regroup re-keys a release's crash groups by function when its ELF file is uploaded.
	regroup *devicerrors.Regrouper
	ingest  *fleet.Ingest
	// presence reconciles presence with the embedded broker's connections; nil without it.
	presence *fleet.PresenceReconciler
	// history records fleet counts over time and sweeps the history's retention.
	history *fleet.History
	// alerts evaluates the tenants' alert rules on the event hub; dispatch sends what it
	// queued in the outbox.
	alerts   *alerts.Engine
	dispatch *alerts.Dispatcher
	// alertRetention sweeps the alert history and delivery log past alerts.retention.
	alertRetention *alerts.Retention
	// errorRetention sweeps error reports and their core dumps past errors.retention; nil
	// when errors.retention is 0 (kept forever).
	errorRetention *devicerrors.Retention
}

// serviceDeps are what the services are built on.
type serviceDeps struct {
	store   store.Store
	keyring *seal.Keyring
	master  []byte
	// broker is the embedded broker; nil when it is disabled: commands of tenants on it then
	// stay queued and nothing of theirs is ingested here.
	broker *broker.Broker
	blobs  blob.Store
	// deviceAuth caches device credentials for the broker and ingestion alike.
	deviceAuth *devauth.Cache
	// endpoint is where provisioning bundles send devices (deviceEndpoint).
	endpoint fleet.Endpoint
	metrics  prometheus.Registerer
	log      *slog.Logger
	// publicURL is where links in notifications point.
	publicURL string
	// mailer sends email alerts; nil without SMTP settings.
	mailer mail.Sender
	// hub is the tenants' event stream, built before the broker (which reports failed
	// logins on it), with the fleet metrics it counts drops in.
	hub          *fleet.Hub
	fleetMetrics *fleet.Metrics
}

// buildServices builds the services in dependency order, each with everything it needs:
// tenant brokers → (the event hub, built before the broker) → commands → devices → remote configuration → updates → live
// logs → device errors → ingestion, which hands reports to the services before it.
//
// The graph has three cycles, broken without setting anything on a built service:
//   - commands ↔ config: the config service sends through commands and learns the acks of
//     what it sent; it registers as an ack observer right after it is built (Observe).
//   - tenant brokers ↔ ingestion: commands route through the tenant brokers, built first, and
//     ingestion subscribes on each of their bridges; it registers right after it is built
//     (OnBridge), before runAll loads the bridges.
//   - devices → ingestion → config → devices: the device service drops deleted, rotated and
//     disabled devices (and deleted tenants) from the device-auth cache ingestion reads; that
//     cache is a value of its own (package devauth), built before both and shared with the
//     broker.
func buildServices(cfg config.Config, d serviceDeps) *services {
	st, log := d.store, d.log
	fleetLog := log.With("component", "fleet")
	s := &services{}

	// bus and sessions stay nil interfaces (not typed nils) without the embedded broker.
	var (
		bus      messaging.Bus
		sessions messaging.Sessions
	)
	if d.broker != nil {
		bus, sessions = d.broker, d.broker
	}
	// Tenants on their own brokers: one bridge each, loaded by runAll, refreshed periodically
	// so changes saved on another replica apply.
	s.brokers = tenantbus.New(tenantbus.Options{
		Store: st, Keyring: d.keyring, Default: bus, DefaultRoot: protocol.DefaultRoot,
		ReplicaID: cfg.MQTT.ReplicaID, Logger: log.With("component", "tenantbus"),
		Bridge: bridge.Config{AllowPrivate: cfg.MQTT.BridgeAllowPrivate},
	})
	fleetMetrics := d.fleetMetrics
	s.hub = d.hub
	s.commands = fleet.NewCommands(fleet.CommandsOptions{
		Store: st, Bus: bus, Root: protocol.DefaultRoot, Router: s.brokers, Hub: s.hub, Metrics: fleetMetrics, Logger: fleetLog,
	})
	s.devices = fleet.NewDevices(fleet.DevicesOptions{
		Store: st, Keyring: d.keyring, Sessions: sessions, Caches: []fleet.Forgetter{d.deviceAuth}, Hub: s.hub, Logger: fleetLog,
		Endpoint: d.endpoint,
		TenantEndpoint: func(tenantID string) (fleet.Endpoint, bool) {
			e, ok := s.brokers.Endpoint(tenantID)
			return fleet.Endpoint{Root: e.Root, MQTTHost: e.Host, MQTTPort: e.Port, TLS: e.TLS, CAPEM: e.CAPEM}, ok
		},
	})
	// Remote configuration: platform keys (_mqtt_host, _mqtt_port, _mqtt_ca) name the broker
	// of the device's tenant; staged secrets switch through the device service.
	s.config = devconfig.New(devconfig.Options{
		Store: st, Keyring: d.keyring, FingerprintKey: seal.DeriveKey(d.master, purposeConfigFingerprint),
		Commands: s.commands, Hub: s.hub, Endpoint: s.devices.Endpoint, TenantEndpoint: s.devices.EndpointFor,
		Credentials: s.devices, Logger: log.With("component", "devconfig"),
	})
	s.commands.Observe(s.config)
	s.ota = ota.New(ota.Options{
		Store: st, Blobs: d.blobs, Keyring: d.keyring, Commands: s.commands, Hub: s.hub,
		Logger: log.With("component", "ota"), MaxImageSize: int64(cfg.OTA.ReleaseMaxSize),
	})
	// Live logs watch a device on its tenant's broker (brokers routes), so they work with the
	// embedded broker off; debug commands go through the command service.
	s.relay = logrelay.New(logrelay.Options{
		Bus: bus, Root: protocol.DefaultRoot, Router: s.brokers, Debugger: &logrelay.CommandsDebugger{Commands: s.commands},
		AutoDebug: true, DebugDuration: cfg.Logs.DebugDuration, ViewerBuffer: cfg.Logs.ViewerBuffer,
		Registerer: d.metrics, Logger: log.With("component", "logrelay"),
	})
	s.coreDumps = devicerrors.NewCoreDumps(devicerrors.CoreDumpOptions{
		Blobs: d.blobs, Commands: s.commands, Key: seal.DeriveKey(d.master, purposeCoreDumpURLs),
		PublicURL: d.endpoint.ServerURL, Logger: log.With("component", "coredumps"),
	})
	s.errors = devicerrors.New(devicerrors.Options{
		Store: st, Keyring: d.keyring, NotifyURL: cfg.Bugsnag.NotifyURL, QueueSize: cfg.Bugsnag.QueueSize,
		Symbols: s.ota, CoreDumps: s.coreDumps, Registerer: d.metrics, Logger: log.With("component", "devicerrors"), Hub: s.hub,
	})
	s.regroup = devicerrors.NewRegrouper(devicerrors.RegroupOptions{
		Store: st, Symbols: s.ota, Logger: log.With("component", "devicerrors"),
	})
	s.ingest = fleet.NewIngest(fleet.IngestOptions{
		Bus: bus, Store: st, Commands: s.commands, Hub: s.hub, Metrics: fleetMetrics, Logger: fleetLog,
		Root: protocol.DefaultRoot, ShareGroup: cfg.MQTT.ShareGroup, DeviceAuth: d.deviceAuth,
		Logs: s.relay, Errors: s.errors, OTA: s.ota, ConfigRequests: s.config,
	})
	s.brokers.OnBridge(s.ingest.Attach)
	s.alerts = alerts.New(alerts.Options{Store: st, Hub: s.hub, PublicURL: d.publicURL, Logger: log.With("component", "alerts")})
	s.dispatch = alerts.NewDispatcher(alerts.DispatchOptions{
		Store: st, Keyring: d.keyring, Owner: cfg.MQTT.ReplicaID, AllowPrivate: cfg.Alerts.WebhookAllowPrivate,
		Mailer: d.mailer, Logger: log.With("component", "alerts"),
		Push: &alerts.PushSender{Store: st, Keyring: d.keyring, Subscriber: alerts.VAPIDSubscriber(d.publicURL, cfg.Mail.From),
			Client: alerts.NewHTTPClient(cfg.Alerts.WebhookAllowPrivate, alerts.DefaultSendTimeout)},
	})
	s.alertRetention = alerts.NewRetention(alerts.RetentionOptions{Store: st, Retention: cfg.Alerts.Retention, Logger: log.With("component", "alerts")})
	if cfg.Errors.Retention > 0 {
		s.errorRetention = devicerrors.NewRetention(devicerrors.RetentionOptions{
			Store: st, Blobs: d.blobs, Retention: cfg.Errors.Retention, Logger: log.With("component", "devicerrors"),
		})
	}
	if d.broker != nil {
		s.presence = fleet.NewPresenceReconciler(fleet.ReconcilerOptions{
			Store: st, Broker: d.broker, Router: s.brokers, Root: protocol.DefaultRoot, Metrics: fleetMetrics, Logger: fleetLog,
		})
	}
	s.history = fleet.NewHistory(fleet.HistoryOptions{Store: st, Interval: cfg.History.FleetInterval, Retention: cfg.History.Retention, Logger: fleetLog})
	return s
}

// deviceEndpoint is where provisioning bundles send devices: the configured public host and
// port, or the public URL's host and the bound broker port (TLS when configured).
func deviceEndpoint(cfg config.Config, publicURL string, b *broker.Broker) (fleet.Endpoint, error) {
	e := fleet.Endpoint{Root: protocol.DefaultRoot, ServerURL: publicURL, MQTTHost: cfg.MQTT.PublicHost, MQTTPort: cfg.MQTT.PublicPort}
	if e.MQTTHost == "" {
		if u, err := url.Parse(publicURL); err == nil {
			e.MQTTHost = u.Hostname()
		}
	}
	e.TLS = cfg.MQTT.TLSCert != "" && cfg.MQTT.TLSAddr != ""
	if e.MQTTPort == 0 {
		addr := cfg.MQTT.Addr
		if e.TLS {
			addr = cfg.MQTT.TLSAddr
		}
		if b != nil {
			proto := "tcp"
			if e.TLS {
				proto = "tls"
			}
			if bound := b.Addr(proto); bound != "" {
				addr = bound
			}
		}
		if _, port, err := net.SplitHostPort(addr); err == nil {
			e.MQTTPort, _ = strconv.Atoi(port)
		}
	}
	if cfg.MQTT.DeviceCAFile != "" {
		pem, err := os.ReadFile(cfg.MQTT.DeviceCAFile)
		if err != nil {
			return e, fmt.Errorf("read ESPADMIN_MQTT_DEVICE_CA_FILE / --mqtt-device-ca-file: %w", err)
		}
		e.CAPEM = string(pem)
	}
	if cfg.OTA.DownloadCAFile != "" {
		ca, err := os.ReadFile(cfg.OTA.DownloadCAFile)
		if err != nil {
			return e, fmt.Errorf("read ESPADMIN_OTA_DOWNLOAD_CA_FILE / --ota-download-ca-file: %w", err)
		}
		if err := checkDownloadCA(ca); err != nil {
			return e, fmt.Errorf("ESPADMIN_OTA_DOWNLOAD_CA_FILE / --ota-download-ca-file %s: %w", cfg.OTA.DownloadCAFile, err)
		}
		e.OTACAPEM = string(ca)
	}
	return e, nil
}

// errBadDownloadCA reports a download CA file a device could not use.
var errBadDownloadCA = errors.New("not a usable download CA")

// checkDownloadCA refuses a download CA that is not PEM certificates only, or that is longer
// than a device reads (a config value's limit, which the agent's buffer is sized for).
func checkDownloadCA(data []byte) error {
	if len(data) > protocol.MaxConfigValueLength {
		return fmt.Errorf("%w: %d bytes, at most %d", errBadDownloadCA, len(data), protocol.MaxConfigValueLength)
	}
	n := 0
	for rest := data; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return fmt.Errorf("%w: text outside PEM blocks", errBadDownloadCA)
			}
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("%w: a %s block", errBadDownloadCA, b.Type)
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: no PEM certificate", errBadDownloadCA)
	}
	return nil
}
