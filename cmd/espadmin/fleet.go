package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/espadmin/espadmin/broker"
	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/broker/tenantbus"
	"github.com/espadmin/espadmin/cmd/espadmin/config"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/devauth"
	"github.com/espadmin/espadmin/store/seal"
)

// fleetServices are the device services of package fleet, wired for serve.
type fleetServices struct {
	hub      *fleet.Hub
	devices  *fleet.Devices
	commands *fleet.Commands
	ingest   *fleet.Ingest
	// presence reconciles presence with the embedded broker's connections; nil without it.
	presence *fleet.PresenceReconciler
}

// ingestHooks are the services of later features that ingestion hands reports to.
type ingestHooks struct {
	logs   fleet.LogSink
	errors fleet.ErrorReporter
	ota    fleet.OTAReporter
	config fleet.ConfigRequester
}

// newFleet builds the device services on the broker (bus and sessions are nil when the
// embedded broker is disabled: commands of tenants on it then stay queued and nothing of
// theirs is ingested here). brokers routes each tenant on its own broker: commands go
// through its bridge, ingestion subscribes on every bridge and bundles point at it.
func newFleet(cfg config.Config, st store.Store, deviceAuth *devauth.Cache, keyring *seal.Keyring, bus messaging.Bus, sessions messaging.Sessions,
	brokers *tenantbus.Manager, reg prometheus.Registerer, log *slog.Logger, hooks ingestHooks) *fleetServices {
	log = log.With("component", "fleet")
	metrics := fleet.NewMetrics(reg)
	hub := fleet.NewHub(func(n int) { metrics.EventsDropped.Add(float64(n)) })
	commands := fleet.NewCommands(fleet.CommandsOptions{
		Store: st, Bus: bus, Root: protocol.DefaultRoot, Router: brokers, Hub: hub, Metrics: metrics, Logger: log,
	})
	ingest := fleet.NewIngest(fleet.IngestOptions{
		Bus: bus, Store: st, DeviceAuth: deviceAuth, Commands: commands, Hub: hub, Metrics: metrics, Logger: log,
		Root: protocol.DefaultRoot, ShareGroup: cfg.MQTT.ShareGroup,
		Logs: hooks.logs, Errors: hooks.errors, OTA: hooks.ota, ConfigRequests: hooks.config,
	})
	devices := fleet.NewDevices(fleet.DevicesOptions{
		Store: st, Keyring: keyring, Sessions: sessions, Caches: []fleet.Forgetter{ingest}, Hub: hub, Logger: log,
		TenantEndpoint: func(tenantID string) (fleet.Endpoint, bool) {
			e, ok := brokers.Endpoint(tenantID)
			return fleet.Endpoint{Root: e.Root, MQTTHost: e.Host, MQTTPort: e.Port, TLS: e.TLS, CAPEM: e.CAPEM}, ok
		},
	})
	brokers.OnBridge(ingest.Attach)
	fs := &fleetServices{hub: hub, devices: devices, commands: commands, ingest: ingest}
	if b, ok := bus.(*broker.Broker); ok && b != nil {
		fs.presence = fleet.NewPresenceReconciler(fleet.ReconcilerOptions{
			Store: st, Broker: b, Router: brokers, Root: protocol.DefaultRoot, Metrics: metrics, Logger: log,
		})
	}
	return fs
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
	return e, nil
}
