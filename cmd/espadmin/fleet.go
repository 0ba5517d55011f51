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
	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/broker/tenantbus"
	"github.com/espadmin/espadmin/cmd/espadmin/config"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
)

// fleetServices are the device services of package fleet, wired for serve.
type fleetServices struct {
	hub      *fleet.Hub
	devices  *fleet.Devices
	commands *fleet.Commands
	ingest   *fleet.Ingest
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
func newFleet(cfg config.Config, st store.Store, keyring *seal.Keyring, bus messaging.Bus, sessions messaging.Sessions,
	brokers *tenantbus.Manager, reg prometheus.Registerer, log *slog.Logger, hooks ingestHooks) *fleetServices {
	log = log.With("component", "fleet")
	metrics := fleet.NewMetrics(reg)
	hub := fleet.NewHub(func(n int) { metrics.EventsDropped.Add(float64(n)) })
	commands := fleet.NewCommands(fleet.CommandsOptions{
		Store: st, Bus: bus, Root: protocol.DefaultRoot, Router: brokers, Hub: hub, Metrics: metrics, Logger: log,
	})
	ingest := fleet.NewIngest(fleet.IngestOptions{
		Bus: bus, Store: st, Commands: commands, Hub: hub, Metrics: metrics, Logger: log,
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
	return &fleetServices{hub: hub, devices: devices, commands: commands, ingest: ingest}
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
