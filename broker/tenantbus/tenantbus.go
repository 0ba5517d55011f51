// Package tenantbus routes each tenant's device traffic to the broker its settings choose:
// the embedded broker (the default) or the tenant's own broker through a bridge
// (package broker/bridge). The fleet services ask it for a tenant's messaging.Bus and topic
// root; it starts a bridge when a tenant switches to its own broker (or at boot), restarts it
// when the settings change and stops it when the tenant switches back.
//
// Every replica runs its own bridges. A replica learns about a change saved on another one
// at the next Refresh (Run calls it every RefreshInterval), so after a save the replica that
// served the request applies it at once and the others within one interval.
package tenantbus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/espadmin/espadmin/broker/bridge"
	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
)

// DefaultRefreshInterval is how often Run re-reads every tenant's broker settings.
const DefaultRefreshInterval = 30 * time.Second

// Store is what the manager reads: the tenants and their settings.
type Store interface {
	ListTenants(ctx context.Context, opts store.ListOptions) (store.Page[store.Tenant], error)
	TenantSettings(ctx context.Context, tenantID string) (store.TenantSettings, error)
}

// Subscriber is called once for every bridge the manager creates, before it connects, so
// that its subscriptions are made on the first connect (and again after every reconnect, by
// the bridge). Ingestion registers one (fleet.Ingest.Attach).
type Subscriber func(ctx context.Context, tenantID, root string, bus messaging.Bus) error

// Options configure a Manager.
type Options struct {
	Store   Store
	Keyring *seal.Keyring
	// Default is the embedded broker; nil when it is disabled (--mqtt-enabled=false).
	Default messaging.Bus
	// DefaultRoot is the embedded broker's topic root; empty means protocol.DefaultRoot.
	DefaultRoot string
	// ReplicaID is appended to each bridge's client ID ("ID-REPLICA") so that replicas
	// sharing a tenant broker keep distinct persistent sessions (mqtt.replica_id). It also
	// replaces ReplicaPlaceholder in a tenant's broker username, for brokers that force the
	// client ID to the username (Mosquitto's use_username_as_clientid): each replica then
	// logs in with its own account.
	ReplicaID string
	// Bridge holds tuning applied to every bridge (timeouts, backoff, queue sizes) and the
	// operator's AllowPrivate; its connection fields are ignored.
	Bridge bridge.Config
	// RefreshInterval is how often Run re-reads the settings; 0 means DefaultRefreshInterval.
	RefreshInterval time.Duration
	Logger          *slog.Logger
}

// Manager owns the tenants' bridges.
type Manager struct {
	o Options

	mu          sync.Mutex
	tenants     map[string]*tenantBridge
	subscribers []Subscriber
	closed      bool
}

// tenantBridge is one running bridge and the settings it was built from.
type tenantBridge struct {
	bridge   *bridge.Bridge
	settings store.BrokerSettings
	root     string
}

// ReplicaPlaceholder in a tenant's broker username is replaced by the replica's ID
// (Options.ReplicaID), e.g. "espadmin-{replica_id}" logs in as "espadmin-a" on replica a.
const ReplicaPlaceholder = "{replica_id}"

// PasswordAD is the associated data sealing a tenant's broker password, so a sealed password
// cannot be moved to another tenant.
func PasswordAD(tenantID string) []byte { return []byte("tenant-broker-password:" + tenantID) }

// New returns a manager; nothing runs until Load or Apply.
func New(o Options) *Manager {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DefaultRoot == "" {
		o.DefaultRoot = protocol.DefaultRoot
	}
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	return &Manager{o: o, tenants: map[string]*tenantBridge{}}
}

// OnBridge registers a subscriber for every bridge created from now on. Register before
// Load so that the bridges made at boot get it.
func (m *Manager) OnBridge(s Subscriber) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subscribers = append(m.subscribers, s)
}

// Route returns the bus and topic root of a tenant's devices and whether that is the
// tenant's own broker. For a tenant on the embedded broker the bus is Options.Default
// (possibly nil).
func (m *Manager) Route(tenantID string) (bus messaging.Bus, root string, external bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if tb, ok := m.tenants[tenantID]; ok {
		return tb.bridge, tb.root, true
	}
	return m.o.Default, m.o.DefaultRoot, false
}

// Bus returns the bus of a tenant's devices (see Route).
func (m *Manager) Bus(tenantID string) messaging.Bus {
	bus, _, _ := m.Route(tenantID)
	return bus
}

// State returns the connection state of a tenant's bridge; false when the tenant uses the
// embedded broker (or this replica has not loaded its settings yet).
func (m *Manager) State(tenantID string) (bridge.State, bool) {
	m.mu.Lock()
	tb, ok := m.tenants[tenantID]
	m.mu.Unlock()
	if !ok {
		return bridge.State{}, false
	}
	return tb.bridge.State(), true
}

// Endpoint is where a tenant's devices connect when it uses its own broker.
type Endpoint struct {
	Host  string
	Port  int
	TLS   bool
	CAPEM string
	Root  string
}

// Endpoint returns where a tenant's devices connect: host, port and TLS from the settings'
// URL, its CA certificate and topic root; false for a tenant on the embedded broker. The port
// of a ws:// or wss:// URL is the broker's WebSocket port, which devices do not use: devices
// then get the standard MQTT ports on the same host, 1883 (ws) and 8883 (wss).
func (m *Manager) Endpoint(tenantID string) (Endpoint, bool) {
	m.mu.Lock()
	tb, found := m.tenants[tenantID]
	m.mu.Unlock()
	if !found {
		return Endpoint{}, false
	}
	u, err := url.Parse(tb.settings.URL)
	if err != nil {
		return Endpoint{}, false
	}
	e := Endpoint{Host: u.Hostname(), Port: 1883, TLS: u.Scheme == "ssl" || u.Scheme == "wss", CAPEM: tb.settings.CACertPEM, Root: tb.root}
	if e.TLS {
		e.Port = 8883
	}
	if (u.Scheme == "tcp" || u.Scheme == "ssl") && u.Port() != "" {
		e.Port, _ = strconv.Atoi(u.Port())
	}
	return e, true
}

// Load reads every tenant's settings and applies them (see Refresh).
func (m *Manager) Load(ctx context.Context) error {
	return m.Refresh(ctx)
}

// Refresh reads every tenant's broker settings and starts, restarts or stops bridges to
// match. A tenant whose settings cannot be read keeps its bridge; the error is returned
// after the others were applied.
func (m *Manager) Refresh(ctx context.Context) error {
	seen := map[string]bool{}
	var errs []error
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := m.o.Store.ListTenants(ctx, opts)
		if err != nil {
			return fmt.Errorf("tenantbus: list tenants: %w", err)
		}
		for _, t := range page.Items {
			seen[t.ID] = true
			if err := m.Reload(ctx, t.ID); err != nil {
				errs = append(errs, err)
			}
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	// Tenants deleted meanwhile.
	m.mu.Lock()
	var gone []string
	for id := range m.tenants {
		if !seen[id] {
			gone = append(gone, id)
		}
	}
	m.mu.Unlock()
	for _, id := range gone {
		m.stop(ctx, id)
	}
	return errors.Join(errs...)
}

// Reload reads one tenant's settings and applies them.
func (m *Manager) Reload(ctx context.Context, tenantID string) error {
	st, err := m.o.Store.TenantSettings(ctx, tenantID)
	if errors.Is(err, store.ErrNotFound) {
		return m.Apply(ctx, tenantID, store.BrokerSettings{Mode: store.BrokerBuiltin})
	}
	if err != nil {
		return fmt.Errorf("tenantbus: read settings of tenant %s: %w", tenantID, err)
	}
	return m.Apply(ctx, tenantID, st.Broker)
}

// Apply makes a tenant's routing match bs: a bridge for external mode (started, or restarted
// when the settings differ from the running one's), none for builtin. A bridge whose
// settings are wrong still exists and reports StatusFailed, so the state route says why.
func (m *Manager) Apply(ctx context.Context, tenantID string, bs store.BrokerSettings) error {
	if bs.Mode != store.BrokerExternal {
		m.stop(ctx, tenantID)
		return nil
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return messaging.ErrClosed
	}
	cur, ok := m.tenants[tenantID]
	subs := append([]Subscriber(nil), m.subscribers...)
	m.mu.Unlock()
	if ok && sameSettings(cur.settings, bs) {
		return nil
	}
	if ok {
		m.stop(ctx, tenantID)
	}
	cfg, err := m.config(tenantID, bs)
	log := m.o.Logger.With("tenant_id", tenantID)
	if err != nil {
		// The password cannot be opened (another master key): the bridge reports it.
		log.Error("open tenant broker password", "error", err)
	}
	b := bridge.New(cfg, bridge.Deps{Logger: log.With("component", "bridge")})
	tb := &tenantBridge{bridge: b, settings: bs, root: cfg.TopicRoot}
	if tb.root == "" {
		tb.root = protocol.DefaultRoot
	}
	for _, s := range subs {
		if err := s(ctx, tenantID, tb.root, b); err != nil {
			log.Error("subscribe on tenant broker", "error", err)
		}
	}
	// Start reports invalid settings through the bridge's state (StatusFailed) and its own
	// log line; an unreachable broker is retried in the background.
	_ = b.Start(context.WithoutCancel(ctx))
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = b.Shutdown(ctx)
		return messaging.ErrClosed
	}
	m.tenants[tenantID] = tb
	m.mu.Unlock()
	log.Info("tenant broker bridge started", "broker_url", redact(bs.URL))
	return nil
}

// config builds the bridge configuration of a tenant's settings.
func (m *Manager) config(tenantID string, bs store.BrokerSettings) (bridge.Config, error) {
	cfg := m.o.Bridge
	cfg.URL, cfg.CACertPEM, cfg.TopicRoot = bs.URL, bs.CACertPEM, bs.TopicRoot
	cfg.Username = strings.ReplaceAll(bs.Username, ReplicaPlaceholder, m.o.ReplicaID)
	// Bridges subscribe filters as given: ingestion shares its own subscription
	// (fleet.IngestOptions.ShareGroup) while the log relay's per-device subscriptions stay
	// plain, so that every replica with a viewer receives the device's lines.
	cfg.ShareGroup = ""
	cfg.ClientID = bs.ClientID
	if cfg.ClientID == "" {
		cfg.ClientID = "espadmin-" + tenantID
	}
	if m.o.ReplicaID != "" {
		cfg.ClientID += "-" + m.o.ReplicaID
	}
	if len(bs.PasswordSealed) > 0 {
		if m.o.Keyring == nil {
			return cfg, errors.New("tenantbus: no keyring to open the broker password")
		}
		p, err := m.o.Keyring.Open(bs.PasswordSealed, PasswordAD(tenantID))
		if err != nil {
			return cfg, fmt.Errorf("tenantbus: open broker password: %w", err)
		}
		cfg.Password = string(p)
	}
	return cfg, nil
}

// stop shuts down a tenant's bridge, if any.
func (m *Manager) stop(ctx context.Context, tenantID string) {
	m.mu.Lock()
	tb, ok := m.tenants[tenantID]
	delete(m.tenants, tenantID)
	m.mu.Unlock()
	if !ok {
		return
	}
	if err := tb.bridge.Shutdown(ctx); err != nil {
		m.o.Logger.Warn("stop tenant broker bridge", "tenant_id", tenantID, "error", err)
		return
	}
	m.o.Logger.Info("tenant broker bridge stopped", "tenant_id", tenantID)
}

// Run refreshes the settings every RefreshInterval until ctx ends, then stops every bridge.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.o.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			return m.Shutdown(sctx)
		case <-t.C:
			if err := m.Refresh(ctx); err != nil && ctx.Err() == nil {
				m.o.Logger.Warn("refresh tenant broker settings", "error", err)
			}
		}
	}
}

// Shutdown stops every bridge; Apply fails afterwards.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	ids := make([]string, 0, len(m.tenants))
	for id := range m.tenants {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.stop(ctx, id)
	}
	return ctx.Err()
}

// sameSettings reports whether two settings would build the same bridge.
func sameSettings(a, b store.BrokerSettings) bool {
	return a.Mode == b.Mode && a.URL == b.URL && a.Username == b.Username && bytes.Equal(a.PasswordSealed, b.PasswordSealed) &&
		a.CACertPEM == b.CACertPEM && a.TopicRoot == b.TopicRoot && a.ClientID == b.ClientID
}

// redact drops any userinfo from a URL for logging (Validate refuses it, but the log line
// is written before validation is certain).
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}
