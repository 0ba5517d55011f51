// Package broker is ESP Admin's embedded MQTT broker: mochi-mqtt wrapped with the listeners,
// capabilities and hooks that confine each device to its own topics (docs/broker.md).
//
// The broker serves the server through the messaging seam: it is a messaging.Bus (publish and
// subscribe through mochi's in-process inline client, the only privileged client) and a
// messaging.Sessions (kick a device's live connection). It never imports the server.
//
// One hook per concern, each providing exactly its events:
//   - auth: device ID, client ID and secret hash at CONNECT, with a short-lived cache;
//   - acl: SUBSCRIBE filters, PUBLISH topics and retain flags, last wills, and delivery;
//   - presence: who is online, offline status on clean leaves;
//   - ingest: per-device publish rate limit and message counters;
//   - limits: keepalive clamp.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/devauth"
)

// DeviceAuthenticator looks up a device's credentials; store.Store satisfies it.
type DeviceAuthenticator interface {
	DeviceAuth(ctx context.Context, deviceID string) (store.DeviceAuth, error)
}

// Deps are what the broker needs from the rest of the process.
type Deps struct {
	Logger *slog.Logger
	// Devices authenticates connecting devices (required).
	Devices DeviceAuthenticator
	// AuthCache, when set, is the device-auth cache the broker shares with the server's
	// services (built on Devices), so that forgetting a device or a tenant there reaches the
	// broker too. Nil builds one of the broker's own with cfg.AuthCacheTTL.
	AuthCache *devauth.Cache
	// Registerer receives the broker's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// TopicRoot is the protocol's topic root; empty means protocol.DefaultRoot.
	TopicRoot string
	// AuthFailed, when set, is called on the connecting client's goroutine for every known
	// device that presented a wrong secret (alert rules on repeated failures); it must not
	// block.
	AuthFailed func(tenantID, deviceID string)
}

// Timeouts that have no setting of their own.
const (
	// authLookupTimeout bounds one credentials lookup in the store.
	authLookupTimeout = 5 * time.Second
	// authCacheSize bounds the credentials cache (entries of about 150 bytes).
	authCacheSize = 100_000
	// defaultSubscriptionQueue is each Subscribe handler's queue length.
	defaultSubscriptionQueue = 8192
	// sysTopicInterval is how often mochi refreshes $SYS topics; devices cannot read them
	// and the refresh stops the world to read memory statistics, so it runs rarely.
	sysTopicInterval = 60
)

// Broker is the embedded MQTT broker.
type Broker struct {
	cfg     Config
	log     *slog.Logger
	root    string
	srv     *mqtt.Server
	metrics *metrics

	auth     *authHook
	acl      *aclHook
	presence *presenceHook
	ingest   *ingestHook
	limits   *limitsHook
	conform  *conformanceHook

	listeners []mqttListener
	readPool  *readPool // read chunks of TCP connections (listeners.go)

	subMu   sync.Mutex
	subs    map[int]*subscription
	nextSub int

	// admitMu, closing and handoff order new connections against Shutdown: mochi counts
	// connections in a WaitGroup it also Waits on at Close, and a connection handed to mochi
	// during Close would Add concurrently with that Wait. Shutdown stops admitting, waits
	// until every admitted connection has reached mochi, then closes it.
	admitMu sync.Mutex
	closing bool
	handoff sync.WaitGroup

	closed  atomic.Bool
	started atomic.Bool
	ctx     context.Context // ends at Shutdown; bounds store lookups and workers
	cancel  context.CancelFunc
	workers sync.WaitGroup
}

var (
	_ messaging.Bus        = (*Broker)(nil)
	_ messaging.Sessions   = (*Broker)(nil)
	_ messaging.Confirmer  = (*Broker)(nil)
	_ messaging.Connection = (*Broker)(nil)
)

// New builds the broker from cfg; nothing listens until Start.
func New(cfg Config, deps Deps) (*Broker, error) {
	if deps.Devices == nil {
		return nil, errors.New("broker: Deps.Devices is required")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "mqtt")
	root := deps.TopicRoot
	if root == "" {
		root = protocol.DefaultRoot
	}
	if !protocol.ValidRoot(root) {
		return nil, fmt.Errorf("broker: invalid topic root %q", root)
	}
	if cfg.MaxPacketSize <= 0 || cfg.MaxClients <= 0 || cfg.MaxPendingWrites <= 0 ||
		cfg.ReceiveMaximum <= 0 || cfg.MaxInflight <= 0 || cfg.BufferSize <= 0 {
		return nil, errors.New("broker: size limits must be positive (start from DefaultConfig)")
	}

	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		cfg:      cfg,
		log:      log,
		root:     root,
		subs:     map[int]*subscription{},
		ctx:      ctx,
		cancel:   cancel,
		readPool: newReadPool(cfg.BufferSize),
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(cfg.MaxPacketSize)
	caps.MaximumClients = int64(cfg.MaxClients)
	caps.MaximumClientWritesPending = int32(cfg.MaxPendingWrites)
	caps.ReceiveMaximum = uint16(cfg.ReceiveMaximum)
	caps.MaximumInflight = uint16(cfg.MaxInflight)
	caps.MaximumSessionExpiryInterval = uint32(min(cfg.SessionExpiryMax/time.Second, math.MaxUint32))
	caps.MaximumMessageExpiryInterval = int64(cfg.MessageExpiryMax / time.Second)
	caps.MaximumQos = 1        // the protocol uses QoS 0 and 1 only
	caps.TopicAliasMaximum = 0 // no inbound topic aliases: ACL checks the topic as sent
	caps.Compatibilities.ObscureNotAuthorized = false

	// mochi logs every refused packet and full client queue at warn level; those are counted
	// in metrics instead, so only its errors reach the process log.
	mochiLog := slog.New(levelFilter{Handler: log.Handler(), min: slog.LevelError})
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetWriteBufferSize: cfg.BufferSize,
		// mochi keeps its read buffer for the life of each connection; TCP connections are
		// buffered by deadlineConn instead, in cfg.BufferSize chunks held only while bytes
		// are pending (TLS and WebSocket connections buffer in their own layers).
		ClientNetReadBufferSize: mochiReadBuffer,
		Logger:                  mochiLog,
		SysTopicResendInterval:  sysTopicInterval,
		InlineClient:            true,
	})

	b.metrics = newMetrics(b)
	if deps.Registerer != nil {
		if err := b.metrics.register(deps.Registerer); err != nil {
			cancel()
			return nil, fmt.Errorf("broker: register metrics: %w", err)
		}
	}

	cache := deps.AuthCache
	if cache == nil {
		cache = devauth.New(deps.Devices, devauth.Options{TTL: cfg.AuthCacheTTL, Size: authCacheSize})
	}
	b.auth = newAuthHook(cache, b.metrics, log, ctx)
	b.auth.failed = deps.AuthFailed
	b.acl = &aclHook{root: root, srv: b.srv, metrics: b.metrics}
	b.presence = newPresenceHook(b)
	b.ingest = newIngestHook(ctx, root, float64(cfg.RateLimit), float64(cfg.RateBurst), b.metrics)
	b.ingest.retain = b.retain
	b.ingest.kick = b.kick
	b.limits = &limitsHook{min: cfg.KeepaliveMin, max: cfg.KeepaliveMax}
	b.conform = &conformanceHook{srv: b.srv, metrics: b.metrics}
	for _, h := range []mqtt.Hook{b.limits, b.acl, b.auth, b.presence, b.ingest, b.conform} {
		if err := b.srv.AddHook(h, nil); err != nil {
			cancel()
			return nil, fmt.Errorf("broker: add hook %s: %w", h.ID(), err)
		}
	}

	if cfg.Addr != "" {
		b.listeners = append(b.listeners, newNetListener("tcp", "tcp", cfg.Addr, nil, b))
	}
	if cfg.TLSCert != "" && cfg.TLSAddr != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("broker: load TLS certificate (ESPADMIN_MQTT_TLS_CERT / ESPADMIN_MQTT_TLS_KEY): %w", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		b.listeners = append(b.listeners, newNetListener("tls", "tls", cfg.TLSAddr, tc, b))
	}
	if cfg.WSAddr != "" {
		b.listeners = append(b.listeners, newWSListener("ws", cfg.WSAddr, cfg.WSPath, splitOrigins(cfg.WSAllowedOrigins), b))
	}
	for _, l := range b.listeners {
		if err := b.srv.AddListener(l); err != nil {
			b.closeListeners()
			cancel()
			return nil, fmt.Errorf("broker: listen %s on %s (%s): %w", l.Protocol(), l.Address(), listenerSetting[l.Protocol()], err)
		}
	}
	return b, nil
}

// listenerSetting names the setting that chooses each listener's address, for the error
// that says a port is taken.
var listenerSetting = map[string]string{
	"tcp": "ESPADMIN_MQTT_ADDR / --mqtt-addr",
	"tls": "ESPADMIN_MQTT_TLS_ADDR / --mqtt-tls-addr",
	"ws":  "ESPADMIN_MQTT_WS_ADDR / --mqtt-ws-addr",
}

// Start starts serving on every configured listener (they are bound already by New, so the
// addresses are known at once) and starts the broker's workers.
func (b *Broker) Start(ctx context.Context) error {
	if b.closed.Load() {
		return messaging.ErrClosed
	}
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("broker: already started")
	}
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("broker: serve: %w", err)
	}
	for _, l := range b.listeners {
		b.log.Info("mqtt listening", "protocol", l.Protocol(), "addr", l.Address())
	}
	return nil
}

// Addr returns the bound address of the listener for protocol "tcp", "tls" or "ws", or ""
// when that listener is disabled.
func (b *Broker) Addr(protocol string) string {
	for _, l := range b.listeners {
		if l.Protocol() == protocol {
			return l.Address()
		}
	}
	return ""
}

// Shutdown disconnects every client, closes the listeners and stops the workers, waiting at
// most until ctx ends.
func (b *Broker) Shutdown(ctx context.Context) error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	b.admitMu.Lock()
	b.closing = true
	b.admitMu.Unlock()
	done := make(chan struct{})
	go func() {
		b.handoff.Wait()
		if b.started.Load() {
			_ = b.srv.Close()
			b.srv.Listeners.ClientsWg.Wait()
		} else {
			b.closeListeners()
		}
		b.cancel()
		b.subMu.Lock()
		for id, s := range b.subs {
			s.stop()
			delete(b.subs, id)
		}
		b.subMu.Unlock()
		b.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		b.cancel()
		return fmt.Errorf("broker: shutdown: %w", ctx.Err())
	}
}

// admit reserves a hand-off of a new connection to mochi; false once Shutdown has begun.
// serveConn releases it.
func (b *Broker) admit() bool {
	b.admitMu.Lock()
	defer b.admitMu.Unlock()
	if b.closing {
		return false
	}
	b.handoff.Add(1)
	return true
}

func (b *Broker) closeListeners() {
	for _, l := range b.listeners {
		l.Close(func(string) {})
	}
}

// Publish sends m as the server. It returns once the broker has handed the message to every
// matching subscriber's queue (QoS 1 messages are then retried by the broker per client).
func (b *Broker) Publish(ctx context.Context, m messaging.Message) error {
	if b.closed.Load() {
		return messaging.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.Topic == "" || strings.ContainsAny(m.Topic, "+#") || m.QoS > 1 {
		return fmt.Errorf("broker: publish: invalid topic %q or QoS %d", m.Topic, m.QoS)
	}
	if len(m.Payload) > b.cfg.MaxPacketSize-len(m.Topic)-16 {
		return fmt.Errorf("broker: publish: payload of %d bytes exceeds ESPADMIN_MQTT_MAX_PACKET_SIZE", len(m.Payload))
	}
	if err := b.srv.Publish(m.Topic, m.Payload, m.Retain, m.QoS); err != nil {
		return fmt.Errorf("broker: publish %s: %w", m.Topic, err)
	}
	return nil
}

// Subscribe delivers messages matching filter to h through a bounded queue served by its own
// goroutine, so h never runs on (nor blocks) a client's goroutine. Retained messages already
// matching filter are queued first, waiting for room rather than dropping; a live message
// that finds the queue full is dropped and counted. "$share/GROUP/…" filters work as well
// (one replica per group, which with one embedded broker is this process).
func (b *Broker) Subscribe(ctx context.Context, filter string, qos byte, h messaging.Handler) (func(), error) {
	if b.closed.Load() {
		return nil, messaging.ErrClosed
	}
	if h == nil {
		return nil, errors.New("broker: subscribe: nil handler")
	}
	if !mqtt.IsValidFilter(filter, false) {
		return nil, fmt.Errorf("broker: subscribe: invalid filter %q", filter)
	}
	size := defaultSubscriptionQueue
	b.subMu.Lock()
	b.nextSub++
	id := b.nextSub
	s := newSubscription(id, filter, size, h, b.metrics)
	b.subs[id] = s
	b.subMu.Unlock()

	b.workers.Add(1)
	go func() {
		defer b.workers.Done()
		s.run()
	}()

	sub := packets.Subscription{Filter: filter, Identifier: id, Qos: qos}
	b.srv.Topics.InlineSubscribe(mqtt.InlineSubscription{
		Subscription: sub,
		Handler: func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
			s.offer(pk)
		},
	})
	// Retained messages, read after subscribing so none published in between is missed (a
	// message may then arrive twice, live and retained; both carry the latest state).
	matchFilter := filter
	if mqtt.IsSharedFilter(filter) {
		matchFilter = sharedTopic(filter)
	}
	for _, pk := range b.srv.Topics.Messages(matchFilter) {
		if err := s.put(ctx, pk); err != nil {
			b.unsubscribe(id, filter)
			return nil, err
		}
	}
	var once sync.Once
	return func() { once.Do(func() { b.unsubscribe(id, filter) }) }, nil
}

// SubscribeConfirmed hands devices' messages matching filter to h before they are
// acknowledged (messaging.Confirmer): the PUBACK waits until h succeeds, h runs on the
// publishing device's goroutine, and those messages reach no plain subscription and are not
// rate limited (see ingestHook). Messages the server publishes itself (the offline status of
// a clean leave) and last wills are not devices' publishes: they reach plain subscriptions.
func (b *Broker) SubscribeConfirmed(filter string, h messaging.ConfirmedHandler) (func(), error) {
	if b.closed.Load() {
		return nil, messaging.ErrClosed
	}
	if h == nil {
		return nil, errors.New("broker: subscribe confirmed: nil handler")
	}
	if !mqtt.IsValidFilter(filter, false) {
		return nil, fmt.Errorf("broker: subscribe confirmed: invalid filter %q", filter)
	}
	return b.ingest.subscribe(filter, h), nil
}

// retain stores a confirmed retained message as mochi does for any retained publish.
func (b *Broker) retain(_ *mqtt.Client, pk packets.Packet) {
	if b.srv.Options.Capabilities.RetainAvailable == 0 {
		return
	}
	b.srv.Topics.RetainMessage(pk.Copy(false))
}

// kick closes a device's connection whose message could not be handled in time: MQTT 5
// clients are told Server busy (0x89); MQTT 3.1.1 has no DISCONNECT from the server.
func (b *Broker) kick(cl *mqtt.Client) {
	if cl.Properties.ProtocolVersion == 5 {
		_ = b.srv.DisconnectClient(cl, packets.ErrServerBusy)
		return
	}
	cl.Stop(packets.ErrServerBusy)
}

func (b *Broker) unsubscribe(id int, filter string) {
	b.srv.Topics.InlineUnsubscribe(id, filter)
	b.subMu.Lock()
	s := b.subs[id]
	delete(b.subs, id)
	b.subMu.Unlock()
	if s != nil {
		s.stop()
	}
}

// sharedTopic strips "$share/GROUP/" from a shared subscription filter.
func sharedTopic(filter string) string {
	parts := strings.SplitN(filter, "/", 3)
	if len(parts) < 3 {
		return filter
	}
	return parts[2]
}

// Disconnect closes deviceID's live connection at once, drops its subscriptions, queued
// messages and session, and forgets its cached credentials, so its next CONNECT is checked
// against the store again. A device that is not connected is not an error.
func (b *Broker) Disconnect(deviceID string) error {
	b.auth.Forget(deviceID)
	cl, ok := b.srv.Clients.Get(deviceID)
	if !ok || cl.Net.Inline {
		return nil
	}
	b.metrics.kicked.Inc()
	// DisconnectClient sends DISCONNECT (MQTT 5 only) and closes the socket; the connection's
	// goroutine then publishes its will (or the broker's offline status) as for any lost link.
	_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	b.srv.UnsubscribeClient(cl)
	cl.ClearInflights()
	if cur, ok := b.srv.Clients.Get(deviceID); ok && cur == cl {
		b.srv.Clients.Delete(deviceID)
	}
	return nil
}

// Forget drops the cached credentials of deviceID.
func (b *Broker) Forget(deviceID string) { b.auth.Forget(deviceID) }

// ForgetTenant drops the cached credentials of every device of tenantID (deleted), so none
// of them connects again on a cached answer; their live connections are closed with
// Disconnect.
func (b *Broker) ForgetTenant(tenantID string) { b.auth.cache.ForgetTenant(tenantID) }

// Online reports whether deviceID has a live connection to this broker.
func (b *Broker) Online(deviceID string) bool { return b.presence.Online(deviceID) }

// ConnectionID identifies deviceID's live connection (messaging.Connection); it changes at
// every new connection. A connection counts only once it has subscribed to its commands
// (or resumed a session that had), so a command is never published to one that would
// receive nothing.
func (b *Broker) ConnectionID(deviceID string) (uint64, bool) {
	return b.presence.connectionID(deviceID)
}

// OnlineCount is the number of devices with a live connection.
func (b *Broker) OnlineCount() int { return b.presence.count() }

// levelFilter drops records below min.
type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{Handler: f.Handler.WithAttrs(a), min: f.min}
}

func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{Handler: f.Handler.WithGroup(name), min: f.min}
}

func splitOrigins(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
