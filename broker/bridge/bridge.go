// Package bridge connects ESP Admin to a tenant's own MQTT broker (Mosquitto, EMQX, HiveMQ, a
// cloud broker) with github.com/eclipse/paho.mqtt.golang and offers it through
// messaging.Bus, the interface the embedded broker also satisfies, so the server publishes
// commands and ingests reports the same way whichever broker carries them.
//
// How the known paho pitfalls are handled:
//
//   - The connection loop is ours, not paho's (AutoReconnect and ConnectRetry are off). paho's
//     first-connect retry runs at a fixed interval and keeps the error inside a pending token;
//     owning the loop gives one exponential backoff with jitter for the first connect and every
//     reconnect, a classified error per attempt, and a State the API can show. Bad credentials
//     or a bad CA therefore back off to MaxBackoff instead of looping.
//   - After every successful connect, every active subscription is subscribed again before
//     the state turns connected (the on-connect step): a broker without the session (clean
//     restart, persistence off, session expiry) would otherwise deliver nothing.
//   - The session is persistent (CleanSession false, stable ClientID): QoS 1 messages the
//     broker queued for the bridge while it was away are delivered after reconnect, and QoS 1
//     publishes interrupted by a connection loss stay in paho's in-memory store and are sent
//     again (DUP set, MQTT 3.1.1 §4.4) when the session resumes.
//   - Messages keep their arrival order (SetOrderMatters(true): paho calls the handler in
//     order on its router goroutine, so a log viewer sees no false gaps), which is safe because
//     the one paho handler never blocks: it routes by our own subscription table into a
//     bounded queue per subscription, drained by one goroutine each. A full queue drops the
//     message and counts it (Stats).
//   - Publish refuses QoS 0 and QoS 1 alike with ErrNotConnected while disconnected (paho
//     would silently drop QoS 0 during a reconnect), bounds the number of unacknowledged
//     publishes (MaxInFlight, a semaphore held until paho completes the token, which also
//     bounds paho's in-memory store) and waits for the PUBACK at most PublishTimeout.
//
// Subscribe may be called before Start: those subscriptions are made on the first connect, so
// the messages the broker queued for the persistent session reach their handlers.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/espadmin/espadmin/broker/messaging"
)

var _ messaging.Bus = (*Bridge)(nil)

// Status is the connection status shown per tenant.
type Status string

// Statuses. Failed means the last attempt failed for a reason that needs a settings change
// (credentials, TLS, refused, invalid settings); the bridge still retries with backoff, so a
// fix on the broker's side is picked up. Disconnected means the network or the broker is down.
const (
	StatusConnecting   Status = "connecting"
	StatusConnected    Status = "connected"
	StatusDisconnected Status = "disconnected"
	StatusFailed       Status = "failed"
)

// State is the bridge's connection state: what the API and UI show.
type State struct {
	Status Status
	// LastError is the classified error of the last failed attempt or of the last connection
	// loss; it is kept while connecting again so the UI can say why. Empty once connected.
	LastError string
	// Err is the same error for errors.Is against the Err… classes (nil when LastError is "").
	Err error
	// Since is when Status last changed.
	Since time.Time
}

// Stats are counters for metrics and tests.
type Stats struct {
	ConnectAttempts uint64 // CONNECT attempts, including the successful ones
	Connects        uint64 // successful connects
	Received        uint64 // messages handed to a subscription queue
	Dropped         uint64 // messages dropped because a subscription queue was full
	Unrouted        uint64 // messages matching no active subscription
}

// Deps are the bridge's collaborators.
type Deps struct {
	// Logger receives one line per state change (and a reminder at most once a minute while
	// attempts keep failing the same way). Nil means slog.Default().
	Logger *slog.Logger
	// OnStateChange, when set, is called with every new state, in order, outside the bridge's
	// lock (it may call State); it must not block.
	OnStateChange func(State)
}

// Bridge is a connection to one tenant's broker.
type Bridge struct {
	cfg       Config
	cfgErr    error
	log       *slog.Logger
	onState   func(State)
	inFlight  chan struct{}
	lost      chan error
	stateCond chan struct{} // closed and replaced at every state change

	notifyMu sync.Mutex

	mu      sync.Mutex
	client  mqtt.Client
	state   State
	subs    map[uint64]*subscription
	nextSub uint64
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}

	connectAttempts, connects, received, dropped, unrouted atomic.Uint64
}

// New returns a bridge for cfg; it does not connect until Start. Invalid settings are
// reported by Start (and by Validate beforehand).
func New(cfg Config, deps Deps) *Bridge {
	b := &Bridge{
		cfgErr:    Validate(cfg),
		cfg:       cfg.withDefaults(),
		log:       deps.Logger,
		onState:   deps.OnStateChange,
		lost:      make(chan error, 1),
		stateCond: make(chan struct{}),
		subs:      make(map[uint64]*subscription),
		state:     State{Status: StatusDisconnected, Since: time.Now()},
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.log = b.log.With("broker_url", redactURL(cfg.URL), "client_id", b.cfg.ClientID)
	b.inFlight = make(chan struct{}, b.cfg.MaxInFlight)
	return b
}

// Start validates the settings and starts connecting in the background; it does not wait for
// the broker (an unreachable tenant broker must not hold up the server). Use State,
// OnStateChange or WaitConnected to follow the connection.
func (b *Bridge) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return messaging.ErrClosed
	case b.started:
		return errors.New("bridge: already started")
	case b.cfgErr != nil:
		b.notify(b.setStateLocked(StatusFailed, b.cfgErr))
		b.log.Error("broker settings invalid", "error", b.cfgErr)
		return b.cfgErr
	}
	opts, err := b.clientOptions()
	if err != nil {
		b.notify(b.setStateLocked(StatusFailed, err))
		return err
	}
	b.client = mqtt.NewClient(opts)
	b.started = true
	loopCtx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.done = make(chan struct{})
	go b.run(loopCtx)
	return nil
}

// clientOptions builds paho's options for b.cfg.
func (b *Bridge) clientOptions() (*mqtt.ClientOptions, error) {
	tc, err := tlsConfig(b.cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: ca_cert_pem: %v", ErrInvalidConfig, err)
	}
	o := mqtt.NewClientOptions().
		AddBroker(b.cfg.URL).
		SetClientID(b.cfg.ClientID).
		SetUsername(b.cfg.Username).
		SetPassword(b.cfg.Password).
		SetProtocolVersion(4).          // explicit: no silent fallback to 3.1 doubling each failed attempt
		SetDialer(targetDialer(b.cfg)). // before SetConnectTimeout, which sets its timeout
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false). // we subscribe again ourselves after every connect
		SetOrderMatters(true).
		SetConnectTimeout(b.cfg.ConnectTimeout).
		SetKeepAlive(b.cfg.KeepAlive).
		SetPingTimeout(b.cfg.ConnectTimeout).
		SetWriteTimeout(b.cfg.PublishTimeout).
		// No SetMaxResumePubInFlight: in paho v1.5.1 its helper goroutine from one resume
		// reads the client's stop channel while the next Connect replaces it (a data race
		// the race detector reports). MaxInFlight below bounds the store instead.
		SetStore(newResumeStore()).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { b.dispatch(m) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case b.lost <- err:
			default:
			}
		})
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	return o, nil
}

// run is the connection loop: connect, subscribe again, wait for the loss, back off, repeat.
func (b *Bridge) run(ctx context.Context) {
	defer close(b.done)
	failures := 0
	var lastLog time.Time
	var lastKind string
	for {
		b.setState(StatusConnecting, nil)
		select { // a loss signal from a previous connection is stale now
		case <-b.lost:
		default:
		}
		b.connectAttempts.Add(1)
		err := b.connect(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			b.connects.Add(1)
			connectedAt := time.Now()
			b.subscribeAll(ctx)
			b.setState(StatusConnected, nil)
			b.log.Info("broker connected")
			lastKind = ""
			select {
			case <-ctx.Done():
				return
			case cause := <-b.lost:
				err = classify(cause)
				if !errors.Is(err, ErrDropped) && !errors.Is(err, ErrTimeout) {
					err = fmt.Errorf("%w: %v", ErrDropped, err)
				}
			}
			b.setState(StatusDisconnected, err)
			b.log.Warn("broker connection lost", "error", err, "error_kind", kind(err))
			// A connection that lasted resets the backoff; one dropped right after CONNACK
			// (ACL kick, client ID takeover) keeps growing it.
			if time.Since(connectedAt) > 2*b.cfg.MaxBackoff || time.Since(connectedAt) > time.Minute {
				failures = 0
			}
			lastKind, lastLog = kind(err), time.Now()
		} else {
			status := StatusDisconnected
			if isFailedClass(err) {
				status = StatusFailed
			}
			b.setState(status, err)
			if k := kind(err); k != lastKind || time.Since(lastLog) > time.Minute {
				b.log.Warn("broker connection failed", "error", err, "error_kind", k,
					"status", status, "attempts", b.connectAttempts.Load())
				lastKind, lastLog = k, time.Now()
			}
		}
		delay := backoff(failures, b.cfg.MinBackoff, b.cfg.MaxBackoff)
		failures++
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// connect makes one attempt, bounded by ConnectTimeout (paho bounds each phase; this bounds
// the whole) and by ctx.
func (b *Bridge) connect(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, b.cfg.ConnectTimeout)
	err := checkTarget(cctx, b.cfg)
	cancel()
	if err != nil {
		return err
	}
	tok := b.client.Connect()
	t := time.NewTimer(b.cfg.ConnectTimeout + time.Second)
	defer t.Stop()
	select {
	case <-tok.Done():
		return classify(tok.Error())
	case <-ctx.Done():
		b.client.Disconnect(0)
		return ctx.Err()
	case <-t.C:
		b.client.Disconnect(0)
		return fmt.Errorf("%w: no CONNACK within %s", ErrTimeout, b.cfg.ConnectTimeout)
	}
}

// backoff returns the delay before retry number failures (0-based): MinBackoff doubled per
// failure up to MaxBackoff, with jitter in [d/2, d] so replicas do not retry in step.
func backoff(failures int, minD, maxD time.Duration) time.Duration {
	d := minD
	for i := 0; i < failures && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	half := d / 2
	return half + rand.N(half+1)
}

// setState records a state change and notifies.
func (b *Bridge) setState(s Status, err error) {
	b.mu.Lock()
	changed := b.setStateLocked(s, err)
	b.mu.Unlock()
	b.notify(changed)
}

// notify calls OnStateChange with st when set; notifyMu keeps the calls in order.
func (b *Bridge) notify(st *State) {
	if st == nil || b.onState == nil {
		return
	}
	b.notifyMu.Lock()
	defer b.notifyMu.Unlock()
	b.onState(*st)
}

// setStateLocked records the new state and returns it, or nil when nothing changed.
func (b *Bridge) setStateLocked(s Status, err error) *State {
	prev := b.state
	next := State{Status: s, Since: prev.Since}
	if s != StatusConnected {
		next.Err, next.LastError = prev.Err, prev.LastError // keep the reason while connecting again
	}
	if err != nil {
		next.Err, next.LastError = err, err.Error()
	}
	if s != prev.Status {
		next.Since = time.Now()
	}
	if next.Status == prev.Status && next.LastError == prev.LastError {
		return nil
	}
	b.state = next
	close(b.stateCond)
	b.stateCond = make(chan struct{})
	return &next
}

// State returns the current connection state.
func (b *Bridge) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// WaitConnected waits until the bridge is connected (and has subscribed again) or ctx ends,
// returning the state's last error with ctx's.
func (b *Bridge) WaitConnected(ctx context.Context) error {
	for {
		b.mu.Lock()
		st, ch := b.state, b.stateCond
		b.mu.Unlock()
		if st.Status == StatusConnected {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if st.Err != nil {
				return fmt.Errorf("%w (last error: %w)", ctx.Err(), st.Err)
			}
			return ctx.Err()
		}
	}
}

// Stats returns the counters.
func (b *Bridge) Stats() Stats {
	return Stats{
		ConnectAttempts: b.connectAttempts.Load(),
		Connects:        b.connects.Load(),
		Received:        b.received.Load(),
		Dropped:         b.dropped.Load(),
		Unrouted:        b.unrouted.Load(),
	}
}

// Shutdown stops reconnecting, disconnects cleanly (the broker keeps the persistent session
// and queues QoS 1 messages for the next start), and stops the subscription workers. Publish
// and Subscribe return messaging.ErrClosed afterwards.
func (b *Bridge) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	cancel, done, client := b.cancel, b.done, b.client
	subs := make([]*subscription, 0, len(b.subs))
	for _, s := range b.subs {
		subs = append(subs, s)
	}
	b.subs = map[uint64]*subscription{}
	b.mu.Unlock()

	var err error
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		// Disconnect waits for the DISCONNECT to be written for at most quiesce ms.
		quiesce := uint(250)
		if d, ok := ctx.Deadline(); ok {
			quiesce = uint(max(0, min(time.Until(d), time.Second)).Milliseconds())
		}
		if client.IsConnectionOpen() {
			client.Disconnect(quiesce)
		}
	}
	for _, s := range subs {
		s.stop()
	}
	for _, s := range subs {
		select {
		case <-s.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.setState(StatusDisconnected, nil)
	b.log.Info("broker bridge stopped")
	return err
}

// Publish sends m and, for QoS 1 and 2, waits for the broker's acknowledgement (at most
// PublishTimeout and ctx). While the bridge is not connected it returns ErrNotConnected
// without sending anything, so the caller (the command service) keeps the command queued and
// sends it again later: nothing is queued invisibly.
//
// A QoS 1 publish in flight when the connection drops stays in paho's store and is re-sent
// on reconnect; the caller's wait then ends with ErrPublishTimeout (outcome unknown) or, if
// the resend happens in time, nil as soon as paho re-sends it. Devices drop repeated command
// IDs (docs/protocol.md §4, Duplicates), which makes that resend harmless.
func (b *Bridge) Publish(ctx context.Context, m messaging.Message) error {
	if m.QoS > 2 {
		return fmt.Errorf("bridge: publish: QoS %d", m.QoS)
	}
	if m.Topic == "" || strings.ContainsAny(m.Topic, "+#\x00") {
		return fmt.Errorf("bridge: publish: invalid topic %q", m.Topic)
	}
	b.mu.Lock()
	closed, client, st := b.closed, b.client, b.state
	b.mu.Unlock()
	switch {
	case closed:
		return messaging.ErrClosed
	case client == nil || st.Status != StatusConnected:
		if st.Err != nil {
			return fmt.Errorf("bridge: publish %s: %w (%s: %w)", m.Topic, ErrNotConnected, st.Status, st.Err)
		}
		return fmt.Errorf("bridge: publish %s: %w (%s)", m.Topic, ErrNotConnected, st.Status)
	}

	timer := time.NewTimer(b.cfg.PublishTimeout)
	defer timer.Stop()
	if m.QoS > 0 {
		select {
		case b.inFlight <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("bridge: publish %s: waiting for an in-flight slot: %w", m.Topic, ctx.Err())
		case <-timer.C:
			return fmt.Errorf("bridge: publish %s: %w: %d publishes already awaiting acknowledgement", m.Topic, ErrPublishTimeout, b.cfg.MaxInFlight)
		}
	}
	tok := client.Publish(m.Topic, m.QoS, m.Retain, m.Payload)
	release := func() {
		if m.QoS > 0 {
			<-b.inFlight
		}
	}
	select {
	case <-tok.Done():
		release()
		if err := tok.Error(); err != nil {
			if errors.Is(err, mqtt.ErrNotConnected) {
				return fmt.Errorf("bridge: publish %s: %w", m.Topic, ErrNotConnected)
			}
			return fmt.Errorf("bridge: publish %s: %w", m.Topic, err)
		}
		return nil
	case <-ctx.Done():
		go func() { <-tok.Done(); release() }()
		return fmt.Errorf("bridge: publish %s: %w", m.Topic, ctx.Err())
	case <-timer.C:
		go func() { <-tok.Done(); release() }()
		return fmt.Errorf("bridge: publish %s: %w after %s", m.Topic, ErrPublishTimeout, b.cfg.PublishTimeout)
	}
}

// redactURL drops any userinfo from a URL for logging.
func redactURL(raw string) string {
	if i := strings.Index(raw, "@"); i >= 0 {
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			return raw[:j+3] + "…@" + raw[i+1:]
		}
	}
	return raw
}
