// Package brokertest runs the real embedded broker for tests and benchmarks in other
// packages: MQTT over TCP on 127.0.0.1:0 only (no TLS or WebSocket listener), shut down when
// the test ends. The server side uses the broker itself, a messaging.Bus and
// messaging.Sessions, as serve.go does.
package brokertest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/espadmin/espadmin/broker"
	"github.com/espadmin/espadmin/store/devauth"
	"github.com/espadmin/espadmin/store/sqlstore"
)

// shutdownTimeout bounds the broker's shutdown at the end of a test.
const shutdownTimeout = 5 * time.Second

// Options configure the broker. Zero values take the defaults noted.
type Options struct {
	// Devices authenticates connecting devices; nil means a fresh, migrated SQLite store in
	// a temporary folder, closed when the test ends (it holds no devices: tests that publish
	// through the broker's inline client need none).
	Devices broker.DeviceAuthenticator
	// Registerer receives the broker's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// AuthCache, when set, is the device-auth cache the broker shares with ingestion, as
	// serve wires them; nil gives the broker one of its own.
	AuthCache *devauth.Cache
	// Configure, when set, changes the MQTT settings (broker.DefaultConfig, with
	// only the TCP listener on 127.0.0.1:0) before the broker is built, for example to lift
	// the per-device rate limit in a benchmark.
	Configure func(*broker.Config)
}

// Start builds and starts the broker; it is shut down when tb ends. Devices connect to
// b.Addr("tcp").
func Start(tb testing.TB, o Options) *broker.Broker {
	tb.Helper()
	if o.Devices == nil {
		o.Devices = tempStore(tb)
	}
	cfg := broker.DefaultConfig()
	cfg.Addr, cfg.TLSAddr, cfg.WSAddr = "127.0.0.1:0", "", ""
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	b, err := broker.New(cfg, broker.Deps{Devices: o.Devices, Registerer: o.Registerer, AuthCache: o.AuthCache})
	if err != nil {
		tb.Fatal(err)
	}
	if err := b.Start(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		_ = b.Shutdown(ctx)
	})
	return b
}

// tempStore opens a migrated SQLite store in tb's temporary folder.
func tempStore(tb testing.TB) *sqlstore.Store {
	tb.Helper()
	st, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.ToSlash(filepath.Join(tb.TempDir(), "broker.db")), sqlstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return st
}
