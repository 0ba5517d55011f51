package logrelay

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
)

// Defaults of Options.
const (
	DefaultDebugDuration = protocol.DefaultDebugDuration * time.Second
	DefaultViewerBuffer  = 64  // frames (each at most protocol.MaxLogLines lines)
	DefaultDeviceQueue   = 256 // raw payloads waiting for a device's fan-out goroutine
	DefaultControlQueue  = 1024
	DefaultTick          = time.Second
	debugTimeout         = 10 * time.Second
)

// Frame types sent to viewers.
const (
	FrameLines   = "lines"   // log lines, in device order
	FrameDropped = "dropped" // this viewer read too slowly and lost Count lines
	FrameGap     = "gap"     // Count lines never reached the server (Reason transit or device)
	FrameDebug   = "debug"   // debug was switched on or off for the device
)

// Line is one log line as viewers receive it. TS is the device's uptime in milliseconds
// (esp_log_timestamp()), not wall time: devices may have no clock.
type Line struct {
	Seq   int64  `json:"seq"`
	Level string `json:"level"`
	Tag   string `json:"tag,omitempty"`
	Msg   string `json:"msg"`
	TS    int64  `json:"ts"`
}

// Frame is one message to a viewer, encoded as a JSON WebSocket text message.
type Frame struct {
	Type  string `json:"type"`
	Lines []Line `json:"lines,omitempty"`
	// Count is the number of lines lost, for dropped and gap frames.
	Count int64 `json:"count,omitempty"`
	// Reason of a gap: "transit" (a sequence jump: batches lost between device and server)
	// or "device" (the device's own ring buffer overflowed).
	Reason string `json:"reason,omitempty"`
	// FromSeq is the first missing sequence number of a transit gap.
	FromSeq int64 `json:"from_seq,omitempty"`
	// Enabled and Level describe a debug frame.
	Enabled *bool  `json:"enabled,omitempty"`
	Level   string `json:"level,omitempty"`
}

// Debugger switches a device's debug mode. CommandsDebugger does it through the fleet's
// command path.
type Debugger interface {
	Debug(ctx context.Context, tenantID, deviceID string, p protocol.DebugParams) error
}

// CommandsDebugger sends debug commands through fleet.Commands, so they are stored and
// acknowledged like any other command. Set Commands before the first viewer arrives.
type CommandsDebugger struct {
	Commands *fleet.Commands
}

// Debug sends one debug command. It may wait for an offline device as long as the debug
// session would last: after that the command has no use.
func (d *CommandsDebugger) Debug(ctx context.Context, tenantID, deviceID string, p protocol.DebugParams) error {
	if d.Commands == nil {
		return errors.New("logrelay: no command service")
	}
	params, err := json.Marshal(p)
	if err != nil {
		return err
	}
	ttl := time.Duration(p.DurationS) * time.Second
	if ttl < fleet.MinCommandTTL {
		ttl = fleet.MinCommandTTL
	}
	_, err = d.Commands.Send(ctx, tenantID, fleet.SendRequest{
		Name: protocol.CommandDebug, Params: params, TTL: ttl,
		Target: fleet.Target{DeviceIDs: []string{deviceID}}, CreatedBy: "logrelay",
	})
	return err
}

// Options configure a Relay. Zero values take the defaults.
type Options struct {
	Bus  messaging.Bus
	Root string
	// Router, when set, replaces Bus and Root per tenant (tenantbus.Manager): a device of a
	// tenant on its own broker is watched through that tenant's bridge. The relay's
	// subscriptions there are per device and must reach every replica with a viewer, so
	// they are plain (not shared) subscriptions.
	Router   fleet.Router
	Debugger Debugger
	// AutoDebug makes the first viewer turn debug on and the last one leaving turn it off.
	AutoDebug bool
	// DebugDuration is the duration_s sent with debug on; the device stops by itself after
	// it. While viewers remain the relay renews it at 90 % of the duration.
	DebugDuration time.Duration
	// ViewerBuffer is each viewer's buffer, in frames.
	ViewerBuffer int
	// DeviceQueue bounds the payloads waiting for one device's fan-out.
	DeviceQueue int
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
	// Now is the clock of renewals; nil means time.Now.
	Now func() time.Time
	// Tick is how often Run looks for sessions to renew.
	Tick time.Duration
}

// Metrics are the relay's counters.
type Metrics struct {
	Viewers      prometheus.Gauge
	Lines        prometheus.Counter     // lines fanned out (once per batch, not per viewer)
	ViewerDrops  prometheus.Counter     // lines lost by slow viewers
	Dropped      *prometheus.CounterVec // payloads dropped before fan-out, by reason
	Invalid      *prometheus.CounterVec // payloads refused by the decoder, by class
	Ingested     prometheus.Counter     // batches ingestion handed over (not relayed; see package doc)
	DebugSent    *prometheus.CounterVec // debug commands, by outcome
	TransitLines prometheus.Counter     // lines missing from device sequences
	Rerouted     prometheus.Counter     // streams moved to a tenant's new broker
}

func newMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Viewers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "espadmin_logrelay_viewers", Help: "Open live log streams."}),
		Lines:   prometheus.NewCounter(prometheus.CounterOpts{Name: "espadmin_logrelay_lines_total", Help: "Log lines relayed to viewers."}),
		ViewerDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "espadmin_logrelay_viewer_dropped_lines_total", Help: "Log lines lost by viewers that read too slowly."}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_logrelay_dropped_total", Help: "Log payloads dropped before fan-out, by reason."}, []string{"reason"}),
		Invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_logrelay_invalid_total", Help: "Log payloads refused by the protocol decoder, by class."}, []string{"class"}),
		Ingested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "espadmin_logrelay_ingested_batches_total", Help: "Log batches ingestion handed to the relay (relayed through the per-device subscription instead)."}),
		DebugSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_logrelay_debug_commands_total", Help: "Debug commands the relay sent, by outcome."}, []string{"outcome"}),
		TransitLines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "espadmin_logrelay_gap_lines_total", Help: "Log lines missing from device sequences (lost in transit)."}),
		Rerouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "espadmin_logrelay_rerouted_total", Help: "Live log streams moved to a tenant's new broker after its broker settings changed."}),
	}
	if reg != nil {
		reg.MustRegister(m.Viewers, m.Lines, m.ViewerDrops, m.Dropped, m.Invalid, m.Ingested, m.DebugSent, m.TransitLines, m.Rerouted)
	}
	return m
}

// Relay fans device log lines out to viewers. It is safe for concurrent use.
type Relay struct {
	o       Options
	metrics *Metrics
	control chan debugRequest

	mu     sync.Mutex
	feeds  map[string]*feed
	closed bool
	done   chan struct{}
}

var _ fleet.LogSink = (*Relay)(nil)

type debugRequest struct {
	tenantID, deviceID string
	params             protocol.DebugParams
}

// New returns a relay; Run must run for debug commands to be sent and renewed.
func New(o Options) *Relay {
	if o.Root == "" {
		o.Root = protocol.DefaultRoot
	}
	if o.DebugDuration <= 0 {
		o.DebugDuration = DefaultDebugDuration
	}
	if o.DebugDuration > protocol.MaxDebugDuration*time.Second {
		o.DebugDuration = protocol.MaxDebugDuration * time.Second
	}
	if o.DebugDuration < time.Second {
		o.DebugDuration = time.Second
	}
	if o.ViewerBuffer <= 0 {
		o.ViewerBuffer = DefaultViewerBuffer
	}
	if o.DeviceQueue <= 0 {
		o.DeviceQueue = DefaultDeviceQueue
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Tick <= 0 {
		o.Tick = DefaultTick
	}
	return &Relay{
		o: o, metrics: newMetrics(o.Registerer), control: make(chan debugRequest, DefaultControlQueue),
		feeds: map[string]*feed{}, done: make(chan struct{}),
	}
}

// Metrics returns the relay's counters.
func (r *Relay) Metrics() *Metrics { return r.metrics }

// Logs is the fleet.LogSink: it only counts. Lines reach viewers through the relay's own
// per-device subscription, which also works when another replica ingested the batch.
func (r *Relay) Logs(fleet.DeviceRef, protocol.LogBatch) { r.metrics.Ingested.Inc() }

// ErrClosed is returned by Watch after Close.
var ErrClosed = errors.New("logrelay: closed")

// Watch adds a viewer of deviceID (which the caller has checked belongs to tenantID). level
// is the lowest level the viewer wants ("" means info). With AutoDebug the first viewer
// turns debug on, and a viewer asking for a more verbose level than the current one raises
// it for all viewers.
func (r *Relay) Watch(ctx context.Context, tenantID, deviceID, level string) (*Viewer, error) {
	if level == "" {
		level = protocol.LevelInfo
	}
	v := &Viewer{frames: make(chan Frame, r.o.ViewerBuffer), done: make(chan struct{}), level: level}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	f := r.feeds[deviceID]
	created := false
	if f == nil {
		f = &feed{r: r, tenantID: tenantID, deviceID: deviceID, viewers: map[*Viewer]struct{}{},
			queue: make(chan messaging.Message, r.o.DeviceQueue), stop: make(chan struct{}), nextSeq: -1}
		r.feeds[deviceID] = f
		created = true
	}
	v.feed = f
	f.viewers[v] = struct{}{}
	raise := created || verbosity(level) > verbosity(f.level)
	if raise {
		f.level = maxLevel(f.level, level)
	}
	r.mu.Unlock()
	r.metrics.Viewers.Inc()

	if created {
		if err := f.subscribe(ctx); err != nil {
			v.Close()
			return nil, err
		}
		go f.run()
	}
	if raise && r.o.AutoDebug {
		r.sendDebug(f, true)
	}
	return v, nil
}

// Viewers returns how many viewers deviceID has in this process.
func (r *Relay) Viewers(deviceID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.feeds[deviceID]; f != nil {
		return len(f.viewers)
	}
	return 0
}

// sendDebug queues a debug command for f's device (on at f's level, or off) and schedules
// the renewal. The queue keeps the commands of one device in order.
func (r *Relay) sendDebug(f *feed, on bool) {
	p := protocol.DebugParams{Enabled: on}
	if on {
		r.mu.Lock()
		p.Level = f.level
		f.renewAt = r.o.Now().Add(r.o.DebugDuration * 9 / 10)
		r.mu.Unlock()
		p.DurationS = int(r.o.DebugDuration / time.Second)
	}
	select {
	case r.control <- debugRequest{tenantID: f.tenantID, deviceID: f.deviceID, params: p}:
	default:
		r.metrics.DebugSent.WithLabelValues("queue_full").Inc()
	}
}

// Run sends the queued debug commands and renews debug sessions that still have viewers,
// until ctx ends or Close.
func (r *Relay) Run(ctx context.Context) error {
	t := time.NewTicker(r.o.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.done:
			r.drainControl(ctx)
			return nil
		case req := <-r.control:
			r.debug(ctx, req)
		case <-t.C:
			r.reroute(ctx)
			r.renew()
		}
	}
}

// drainControl sends the debug off commands Close queued, bounded by debugTimeout.
func (r *Relay) drainControl(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), debugTimeout)
	defer cancel()
	for {
		select {
		case req := <-r.control:
			r.debug(ctx, req)
		default:
			return
		}
	}
}

func (r *Relay) debug(ctx context.Context, req debugRequest) {
	if r.o.Debugger == nil {
		r.metrics.DebugSent.WithLabelValues("no_debugger").Inc()
		return
	}
	dctx, cancel := context.WithTimeout(ctx, debugTimeout)
	defer cancel()
	if err := r.o.Debugger.Debug(dctx, req.tenantID, req.deviceID, req.params); err != nil {
		r.metrics.DebugSent.WithLabelValues("error").Inc()
		r.o.Logger.Warn("send debug command", "tenant_id", req.tenantID, "device_id", req.deviceID,
			"enabled", req.params.Enabled, "error", err)
		return
	}
	r.metrics.DebugSent.WithLabelValues("ok").Inc()
}

// reroute moves the feeds of tenants whose broker changed (Router: a tenant switched between
// the embedded broker and its own, or its broker settings changed) to the new broker, so open
// consoles keep streaming; with AutoDebug, debug is turned on again through the new broker.
func (r *Relay) reroute(ctx context.Context) {
	if r.o.Router == nil {
		return
	}
	r.mu.Lock()
	feeds := make([]*feed, 0, len(r.feeds))
	for _, f := range r.feeds {
		feeds = append(feeds, f)
	}
	r.mu.Unlock()
	for _, f := range feeds {
		bus, root := r.route(f.tenantID)
		// A feed without a bus is still subscribing (Watch); it gets the current route.
		if cur, _ := f.current(); cur == nil || bus == nil || sameBus(cur, bus) {
			continue
		}
		if f.moveTo(ctx, bus, root) {
			r.metrics.Rerouted.Inc()
			if r.o.AutoDebug {
				r.sendDebug(f, true)
			}
		}
	}
}

// sameBus compares two buses by identity (they are pointers).
func sameBus(a, b messaging.Bus) bool {
	defer func() { _ = recover() }() // a non-comparable Bus is never "the same"
	return a == b
}

// renew re-enables debug for devices whose session is about to end and still has viewers.
func (r *Relay) renew() {
	if !r.o.AutoDebug {
		return
	}
	now := r.o.Now()
	var due []*feed
	r.mu.Lock()
	for _, f := range r.feeds {
		if !f.renewAt.IsZero() && !now.Before(f.renewAt) && len(f.viewers) > 0 {
			due = append(due, f)
		}
	}
	r.mu.Unlock()
	for _, f := range due {
		r.sendDebug(f, true)
	}
}

// Close ends every viewer (their Done channels close), drops the subscriptions and, with
// AutoDebug, queues debug off for each watched device (Run sends them before returning).
func (r *Relay) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	feeds := r.feeds
	r.feeds = map[string]*feed{}
	r.mu.Unlock()
	for _, f := range feeds {
		f.shutdown()
		if r.o.AutoDebug {
			r.sendDebug(f, false)
		}
		r.mu.Lock()
		viewers := make([]*Viewer, 0, len(f.viewers))
		for v := range f.viewers {
			viewers = append(viewers, v)
		}
		f.viewers = map[*Viewer]struct{}{}
		r.mu.Unlock()
		for _, v := range viewers {
			v.end()
		}
	}
	close(r.done)
}

// leave removes v; the last viewer of a device ends the device's feed.
func (r *Relay) leave(v *Viewer) {
	f := v.feed
	r.mu.Lock()
	if _, ok := f.viewers[v]; !ok {
		r.mu.Unlock()
		return
	}
	delete(f.viewers, v)
	last := len(f.viewers) == 0 && r.feeds[f.deviceID] == f
	if last {
		delete(r.feeds, f.deviceID)
	}
	r.mu.Unlock()
	r.metrics.Viewers.Dec()
	if last {
		f.shutdown()
		if r.o.AutoDebug {
			r.sendDebug(f, false)
		}
	}
}

// feed is one watched device: its subscriptions and its fan-out goroutine.
type feed struct {
	r                  *Relay
	tenantID, deviceID string
	viewers            map[*Viewer]struct{} // guarded by r.mu
	level              string               // guarded by r.mu
	renewAt            time.Time            // guarded by r.mu

	queue chan messaging.Message
	stop  chan struct{}
	once  sync.Once

	unsubMu  sync.Mutex
	unsubs   []func()
	bus      messaging.Bus // guarded by unsubMu: where the subscriptions are
	logTopic string        // guarded by unsubMu: the device's log topic on bus

	nextSeq int64 // fan-out goroutine only; -1 until the first batch
}

// route returns the bus and topic root of the feed's device: its tenant's broker when a
// Router is set, else Options.Bus and Options.Root.
func (r *Relay) route(tenantID string) (messaging.Bus, string) {
	if r.o.Router == nil {
		return r.o.Bus, r.o.Root
	}
	bus, root, _ := r.o.Router.Route(tenantID)
	if root == "" {
		root = protocol.DefaultRoot
	}
	return bus, root
}

// subscribe subscribes to the device's log uplink and its command downlink on the broker of
// the device's tenant.
func (f *feed) subscribe(ctx context.Context) error {
	bus, root := f.r.route(f.tenantID)
	if bus == nil {
		return errors.New("logrelay: no broker (messaging.Bus) for the device's tenant")
	}
	unsubs, err := f.subscribeOn(ctx, bus, root)
	if err != nil {
		f.shutdown()
		return err
	}
	f.install(unsubs, bus, root)
	return nil
}

// install makes unsubs, on bus, the feed's subscriptions and drops the previous ones; when
// the feed has ended meanwhile it drops unsubs instead and reports false.
func (f *feed) install(unsubs []func(), bus messaging.Bus, root string) bool {
	f.unsubMu.Lock()
	select {
	case <-f.stop:
		f.unsubMu.Unlock()
		for _, u := range unsubs {
			u()
		}
		return false
	default:
	}
	old := f.unsubs
	f.unsubs, f.bus, f.logTopic = unsubs, bus, protocol.Uplink(root, f.deviceID, protocol.KindLog)
	f.unsubMu.Unlock()
	for _, u := range old {
		u()
	}
	return true
}

// subscribeOn subscribes on bus and returns the unsubscribe functions. Both handlers only
// copy and enqueue: they run on the broker's (or the bridge's) goroutine.
func (f *feed) subscribeOn(ctx context.Context, bus messaging.Bus, root string) ([]func(), error) {
	handler := func(m messaging.Message) {
		m.Payload = append([]byte(nil), m.Payload...)
		select {
		case f.queue <- m:
		default:
			f.r.metrics.Dropped.WithLabelValues("queue_full").Inc()
		}
	}
	var unsubs []func()
	for _, topic := range []string{protocol.Uplink(root, f.deviceID, protocol.KindLog), protocol.DownlinkCommand(root, f.deviceID)} {
		unsub, err := bus.Subscribe(ctx, topic, 0, handler)
		if err != nil {
			for _, u := range unsubs {
				u()
			}
			return nil, err
		}
		unsubs = append(unsubs, unsub)
	}
	return unsubs, nil
}

// moveTo subscribes on bus and drops the subscriptions on the previous broker; it reports
// false when the feed has ended or the new subscriptions failed (the old ones then stay).
func (f *feed) moveTo(ctx context.Context, bus messaging.Bus, root string) bool {
	unsubs, err := f.subscribeOn(ctx, bus, root)
	if err != nil {
		f.r.o.Logger.Warn("move log stream to the tenant's broker", "tenant_id", f.tenantID, "device_id", f.deviceID, "error", err)
		return false
	}
	return f.install(unsubs, bus, root)
}

// current returns the broker the feed listens on and the device's log topic there.
func (f *feed) current() (messaging.Bus, string) {
	f.unsubMu.Lock()
	defer f.unsubMu.Unlock()
	return f.bus, f.logTopic
}

func (f *feed) shutdown() {
	f.once.Do(func() {
		close(f.stop)
		f.unsubMu.Lock()
		for _, u := range f.unsubs {
			u()
		}
		f.unsubs = nil
		f.unsubMu.Unlock()
	})
}

func (f *feed) run() {
	for {
		select {
		case <-f.stop:
			return
		case m := <-f.queue:
			if _, logTopic := f.current(); m.Topic == logTopic {
				f.logs(m.Payload)
			} else {
				f.command(m.Payload)
			}
		}
	}
}

func (f *feed) logs(payload []byte) {
	b, err := protocol.DecodeLogBatch(payload)
	if err != nil {
		f.r.metrics.Invalid.WithLabelValues(protocol.Class(err)).Inc()
		return
	}
	var pre []Frame
	if f.nextSeq >= 0 && b.Seq > f.nextSeq {
		lost := b.Seq - f.nextSeq
		f.r.metrics.TransitLines.Add(float64(lost))
		pre = append(pre, Frame{Type: FrameGap, Reason: "transit", Count: lost, FromSeq: f.nextSeq})
	}
	// A sequence below the expected one is a reboot (the counter restarts at 0): no gap.
	if b.Dropped > 0 {
		pre = append(pre, Frame{Type: FrameGap, Reason: "device", Count: b.Dropped})
	}
	f.nextSeq = b.Seq + int64(len(b.Lines))
	lines := make([]Line, len(b.Lines))
	for i, l := range b.Lines {
		lines[i] = Line{Seq: b.Seq + int64(i), Level: l.Level, Tag: l.Tag, Msg: l.Msg, TS: l.MS}
	}
	f.r.metrics.Lines.Add(float64(len(lines)))
	// The device logs at the most verbose level any viewer asked for; each viewer gets the
	// lines at or below its own level. Viewers at the same level share one frame.
	byLevel := map[string][]Line{}
	for _, v := range f.snapshot() {
		for _, p := range pre {
			v.offer(p, 0)
		}
		shown, ok := byLevel[v.level]
		if !ok {
			shown = linesUpTo(lines, v.level)
			byLevel[v.level] = shown
		}
		if len(shown) > 0 {
			v.offer(Frame{Type: FrameLines, Lines: shown}, int64(len(shown)))
		}
	}
}

// linesUpTo returns the lines no more verbose than level (lines of an unknown level are
// kept), reusing lines when all of them are.
func linesUpTo(lines []Line, level string) []Line {
	limit := verbosity(level)
	for i, l := range lines {
		if verbosity(l.Level) > limit {
			kept := append(make([]Line, 0, len(lines)-1), lines[:i]...)
			for _, l := range lines[i+1:] {
				if verbosity(l.Level) <= limit {
					kept = append(kept, l)
				}
			}
			return kept
		}
	}
	return lines
}

// command tells viewers about debug commands on the device's downlink, whoever sent them.
func (f *feed) command(payload []byte) {
	c, err := protocol.DecodeCommand(payload)
	if err != nil || c.Debug == nil {
		return
	}
	on := c.Debug.Enabled
	fr := Frame{Type: FrameDebug, Enabled: &on}
	if on {
		fr.Level = c.Debug.Level
	}
	for _, v := range f.snapshot() {
		v.offer(fr, 0)
	}
}

func (f *feed) snapshot() []*Viewer {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	out := make([]*Viewer, 0, len(f.viewers))
	for v := range f.viewers {
		out = append(out, v)
	}
	return out
}

// Viewer is one browser watching a device. Read Frames until Done closes; call Close when
// the browser goes away.
type Viewer struct {
	feed    *feed
	level   string
	frames  chan Frame
	dropped atomic.Int64
	done    chan struct{}
	once    sync.Once
	closing sync.Once
}

// Frames delivers the viewer's frames in order.
func (v *Viewer) Frames() <-chan Frame { return v.frames }

// Done is closed when the relay shuts down.
func (v *Viewer) Done() <-chan struct{} { return v.done }

// TakeDropped returns the number of lines lost since the last call and resets it.
func (v *Viewer) TakeDropped() int64 { return v.dropped.Swap(0) }

// Close removes the viewer; the last viewer of a device turns debug off (AutoDebug).
func (v *Viewer) Close() {
	v.closing.Do(func() {
		v.feed.r.leave(v)
		v.end()
	})
}

func (v *Viewer) end() { v.once.Do(func() { close(v.done) }) }

// offer hands fr to the viewer without blocking; a full buffer loses it, counting lines.
func (v *Viewer) offer(fr Frame, lines int64) {
	select {
	case v.frames <- fr:
	default:
		if lines > 0 {
			v.dropped.Add(lines)
			v.feed.r.metrics.ViewerDrops.Add(float64(lines))
		}
	}
}

// Log levels from least to most verbose.
var levels = []string{protocol.LevelError, protocol.LevelWarn, protocol.LevelInfo, protocol.LevelDebug, protocol.LevelVerbose}

func verbosity(level string) int {
	for i, l := range levels {
		if l == level {
			return i
		}
	}
	return -1
}

func maxLevel(a, b string) string {
	if verbosity(a) >= verbosity(b) {
		return a
	}
	return b
}

// ValidLevel reports whether level is a protocol log level.
func ValidLevel(level string) bool { return verbosity(level) >= 0 }
