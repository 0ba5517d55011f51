package fleet

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/devauth"
)

// Ingest defaults.
const (
	DefaultIngestWorkers = 4
	DefaultQueueSize     = 4096
	DefaultPresenceDelay = 2 * time.Second
	DefaultTouchInterval = time.Second
	DefaultLogInterval   = time.Minute
	DefaultCacheTTL      = time.Minute

	// offlineRecheck is how long an offline status of a device the broker still lists as
	// connected waits before the broker is asked again.
	offlineRecheck = 250 * time.Millisecond

	maxCacheEntries = 200000
	storeTimeout    = 10 * time.Second
)

// IngestOptions configure Ingest. Zero values take the defaults above.
type IngestOptions struct {
	Bus      messaging.Bus
	Store    Store
	Commands *Commands
	Hub      *Hub
	Metrics  *Metrics
	Logger   *slog.Logger
	Now      Clock
	Root     string
	// ShareGroup, when set, subscribes with $share/ShareGroup/… so that several replicas
	// split the uplink between them (MQTT 5 §4.8.2) instead of each handling every report.
	ShareGroup string
	// Workers is the number of workers; each has its own queue of QueueSize messages. A
	// device's messages always go to the same worker, so they are handled in order.
	Workers   int
	QueueSize int
	// PresenceDelay is how long an online status waits before it is applied when the broker
	// cannot tell whether the device is connected (docs/protocol.md §6).
	PresenceDelay time.Duration
	// TouchInterval is how often last-seen times are written, batched per tenant.
	TouchInterval time.Duration
	// LogInterval limits the log lines about one device's malformed payloads.
	LogInterval time.Duration
	// CacheTTL bounds how long a device's tenant is cached, when DeviceAuth is nil.
	CacheTTL time.Duration
	// DeviceAuth is the device-auth cache shared with the embedded broker (package devauth),
	// through which reports find their device's tenant. Nil builds one of Ingest's own on
	// Store with CacheTTL.
	DeviceAuth *devauth.Cache

	ConfigRequests ConfigRequester
	OTA            OTAReporter
	Logs           LogSink
	Errors         ErrorReporter
}

// Ingest subscribes once to every device's uplink and turns reports into state: presence,
// last seen, metadata, command acknowledgements, and hands the rest to the services that
// consume them. The subscription handler only parses the topic and enqueues; it never blocks
// the broker (a full queue drops and counts).
//
// On a broker that can hold a device's acknowledgement (messaging.Confirmer: the embedded
// broker), control-plane reports (confirmedKinds) do not take that path: they are applied on
// the publishing device's goroutine before the broker acknowledges them, so none is
// acknowledged and then lost (docs/protocol.md §7).
type Ingest struct {
	o       IngestOptions
	conns   Connections
	workers []*worker

	auth *devauth.Cache

	touchMu sync.Mutex
	touches map[string]map[string]time.Time

	logMu     sync.Mutex
	lastWarns map[string]time.Time
}

type uplink struct {
	// tenantID is set for reports from a tenant's own broker: only that tenant's devices
	// are accepted there, and the embedded broker's connection table does not apply.
	tenantID string
	deviceID string
	kind     string
	payload  []byte
	at       time.Time
}

// NewIngest returns the ingestion service; Run starts it.
func NewIngest(o IngestOptions) *Ingest {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Root == "" {
		o.Root = protocol.DefaultRoot
	}
	if o.Workers <= 0 {
		o.Workers = DefaultIngestWorkers
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.PresenceDelay <= 0 {
		o.PresenceDelay = DefaultPresenceDelay
	}
	if o.TouchInterval <= 0 {
		o.TouchInterval = DefaultTouchInterval
	}
	if o.LogInterval <= 0 {
		o.LogInterval = DefaultLogInterval
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = DefaultCacheTTL
	}
	if o.DeviceAuth == nil {
		o.DeviceAuth = devauth.New(o.Store, devauth.Options{TTL: o.CacheTTL, Size: maxCacheEntries})
	}
	in := &Ingest{
		o:         o,
		auth:      o.DeviceAuth,
		touches:   map[string]map[string]time.Time{},
		lastWarns: map[string]time.Time{},
	}
	in.conns, _ = o.Bus.(Connections)
	for range o.Workers {
		in.workers = append(in.workers, &worker{
			in: in, q: make(chan uplink, o.QueueSize), pending: map[string]pendingOnline{}, pendingOff: map[string]pendingOnline{},
		})
	}
	if c, ok := o.Bus.(messaging.Confirmer); ok {
		// Control-plane reports are handled from now until the broker shuts down, not only
		// while Run runs: one arriving while ingestion starts or stops waits for its handler
		// instead of being acknowledged with nobody to apply it. (Statuses wait in the
		// workers' queues until Run starts them.)
		if err := in.subscribeConfirmed(c); err != nil {
			o.Logger.Error("subscribe control-plane reports", "error", err)
		}
	}
	return in
}

// Filter returns the subscription filter: {root}/+/up/# or its shared form.
func (in *Ingest) Filter() string { return in.filter(in.o.Root) }

// filter is the uplink filter of a topic root, shared when ShareGroup is set.
func (in *Ingest) filter(root string) string {
	f := protocol.UplinkFilter(root, "")
	if in.o.ShareGroup != "" {
		f = "$share/" + in.o.ShareGroup + "/" + f
	}
	return f
}

// Run subscribes and works until ctx ends; then it unsubscribes, lets the workers finish
// what they hold and writes the last batch of last-seen times.
//
// Without a Bus (the embedded broker disabled) it handles only what Attach subscribed on
// tenants' own brokers.
func (in *Ingest) Run(ctx context.Context) error {
	unsubscribe := func() {}
	if in.o.Bus != nil {
		var err error
		unsubscribe, err = in.o.Bus.Subscribe(ctx, in.Filter(), 1, in.handler(in.o.Root, ""))
		if err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	for _, w := range in.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	t := time.NewTicker(in.o.TouchInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			in.flushTouches(ctx)
		case <-ctx.Done():
			unsubscribe()
			wg.Wait()
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
			in.flushTouches(fctx)
			cancel()
			return nil
		}
	}
}

// Attach subscribes to the uplink of one tenant's own broker ({root}/+/up/#, as
// $share/ShareGroup/… when ShareGroup is set, so that each report reaches one replica) with
// the same handling as the embedded broker's, except that reports of devices of other
// tenants are dropped: a tenant's broker speaks for its devices only. It has the signature
// of tenantbus.Subscriber; the bus ends the subscription when it shuts down. Messages wait
// in the workers' queues until Run starts.
func (in *Ingest) Attach(ctx context.Context, tenantID, root string, bus messaging.Bus) error {
	if tenantID == "" {
		return errors.New("fleet: attach ingestion: empty tenant ID")
	}
	_, err := bus.Subscribe(ctx, in.filter(root), 1, in.handler(root, tenantID))
	return err
}

// handler returns the subscription handler for a topic root; tenantID is set for a tenant's
// own broker.
func (in *Ingest) handler(root, tenantID string) messaging.Handler {
	return func(m messaging.Message) { in.handleFrom(root, tenantID, m) }
}

// handle is the embedded broker's handler.
func (in *Ingest) handle(m messaging.Message) { in.handleFrom(in.o.Root, "", m) }

// handleFrom runs on the broker's goroutine: parse the topic, pick the device's worker, enqueue
// or drop.
func (in *Ingest) handleFrom(root, tenantID string, m messaging.Message) {
	id, dir, kind, err := protocol.ParseTopic(root, m.Topic)
	if err != nil || dir != protocol.Up {
		reason := protocol.Class(err)
		if reason == "" {
			reason = "invalid_topic"
		}
		in.o.Metrics.Dropped.WithLabelValues(reason).Inc()
		return
	}
	u := uplink{tenantID: tenantID, deviceID: id, kind: kind, payload: append([]byte(nil), m.Payload...), at: in.o.Now.now()}
	select {
	case in.workerOf(id).q <- u:
	default:
		in.o.Metrics.Dropped.WithLabelValues("queue_full").Inc()
	}
}

// Forget drops the cached tenant of a device (deleted, rotated, disabled).
func (in *Ingest) Forget(deviceID string) { in.auth.Forget(deviceID) }

// ForgetTenant drops the cached devices of a deleted tenant.
func (in *Ingest) ForgetTenant(tenantID string) { in.auth.ForgetTenant(tenantID) }

// tenantOf maps a device ID (unique across tenants) to its tenant, through the device-auth
// cache so a flood of reports does not become a flood of queries.
func (in *Ingest) tenantOf(ctx context.Context, deviceID string) (string, error) {
	a, err := in.auth.DeviceAuth(ctx, deviceID)
	if err != nil {
		return "", err
	}
	return a.TenantID, nil
}

func (in *Ingest) touch(tenantID, deviceID string, at time.Time) {
	in.touchMu.Lock()
	m := in.touches[tenantID]
	if m == nil {
		m = map[string]time.Time{}
		in.touches[tenantID] = m
	}
	if at.After(m[deviceID]) {
		m[deviceID] = at
	}
	in.touchMu.Unlock()
}

// flushTouches writes the batched last-seen times: one statement per tenant.
func (in *Ingest) flushTouches(ctx context.Context) {
	in.touchMu.Lock()
	batch := in.touches
	in.touches = map[string]map[string]time.Time{}
	in.touchMu.Unlock()
	for tenantID, m := range batch {
		ids := make([]string, 0, len(m))
		var latest time.Time
		for id, at := range m {
			ids = append(ids, id)
			if at.After(latest) {
				latest = at
			}
		}
		tctx, cancel := context.WithTimeout(ctx, storeTimeout)
		err := in.o.Store.TouchDevices(tctx, tenantID, ids, latest)
		cancel()
		if err != nil && ctx.Err() == nil {
			in.o.Logger.Warn("write last seen", "tenant_id", tenantID, "devices", len(ids), "error", err)
		}
	}
}

// warnLimited logs about a device at most once per LogInterval.
func (in *Ingest) warnLimited(deviceID, msg string, args ...any) {
	now := time.Now()
	in.logMu.Lock()
	last, seen := in.lastWarns[deviceID]
	if seen && now.Sub(last) < in.o.LogInterval {
		in.logMu.Unlock()
		return
	}
	if len(in.lastWarns) >= maxCacheEntries {
		in.lastWarns = map[string]time.Time{}
	}
	in.lastWarns[deviceID] = now
	in.logMu.Unlock()
	in.o.Logger.Warn(msg, append([]any{"device_id", deviceID}, args...)...)
}

// worker handles the messages of the devices hashed to it, in arrival order.
type worker struct {
	in         *Ingest
	q          chan uplink
	pending    map[string]pendingOnline // online statuses waiting for PresenceDelay
	pendingOff map[string]pendingOnline // offline statuses of connected devices, to look at again
}

type pendingOnline struct {
	tenantID string
	at       time.Time
}

func (w *worker) run(ctx context.Context) {
	tick := min(w.in.o.PresenceDelay/4, offlineRecheck/2)
	if tick < 10*time.Millisecond {
		tick = 10 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-w.q:
			w.process(ctx, u)
		case <-t.C:
			// Reports already queued arrived before this tick: handle them first, so a will
			// that came within the delay is still matched with its pending online even when
			// the worker fell behind.
			for range len(w.q) {
				w.process(ctx, <-w.q)
			}
			w.applyPending(ctx)
		}
	}
}

func (w *worker) process(ctx context.Context, u uplink) {
	in := w.in
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if err := in.report(ctx, u, w); err != nil {
		in.o.Metrics.Dropped.WithLabelValues("store_error").Inc()
	}
}

// confirmedKinds are the control-plane uplinks the embedded broker acknowledges only once
// they are handled (docs/protocol.md §7): each changes state the device relies on. Metadata
// is among them because an OTA outcome is judged by the firmware version the metadata
// before it stored: both are handled in order on the device's own goroutine.
var confirmedKinds = []string{protocol.KindAck, protocol.KindOTA, protocol.KindConfigRequest, protocol.KindStatus, protocol.KindMetadata}

// subscribeConfirmed registers confirmed for the control-plane kinds on a broker that holds
// their acknowledgement (messaging.Confirmer); they last as long as the broker.
func (in *Ingest) subscribeConfirmed(c messaging.Confirmer) error {
	for _, kind := range confirmedKinds {
		if _, err := c.SubscribeConfirmed(protocol.UplinkFilter(in.o.Root, kind), in.confirmed); err != nil {
			return err
		}
	}
	return nil
}

// confirmed handles a control-plane report on the publishing device's goroutine, before the
// broker acknowledges it (messaging.ConfirmedHandler): an error means it was not applied, and
// the broker retries or withholds the PUBACK so the device resends it. A status is handed to
// the device's worker (presence keeps its order with the device's other reports there),
// waiting for room rather than being dropped.
func (in *Ingest) confirmed(ctx context.Context, m messaging.Message) error {
	id, dir, kind, err := protocol.ParseTopic(in.o.Root, m.Topic)
	if err != nil || dir != protocol.Up {
		in.o.Metrics.Dropped.WithLabelValues("invalid_topic").Inc()
		return nil
	}
	u := uplink{deviceID: id, kind: kind, payload: m.Payload, at: in.o.Now.now()}
	if kind == protocol.KindStatus {
		select {
		case in.workerOf(id).q <- u:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("fleet: queue status of %q: %w", id, ctx.Err())
		}
	}
	return in.report(ctx, u, nil)
}

// workerOf returns the worker that handles deviceID's reports.
func (in *Ingest) workerOf(deviceID string) *worker {
	h := fnv.New32a()
	_, _ = h.Write([]byte(deviceID))
	return in.workers[h.Sum32()%uint32(len(in.workers))]
}

// report applies one report. It returns an error only when the report could not be applied
// for a reason that may pass (the store failed); reports that can never be applied (unknown
// device, malformed payload) are counted, logged and dropped. w is the device's worker, nil
// when the report is handled on the broker's goroutine (never a status then).
func (in *Ingest) report(ctx context.Context, u uplink, w *worker) error {
	in.o.Metrics.Ingested.WithLabelValues(u.kind).Inc()
	tenantID, err := in.tenantOf(ctx, u.deviceID)
	if errors.Is(err, store.ErrNotFound) {
		in.o.Metrics.Dropped.WithLabelValues("unknown_device").Inc()
		return nil
	}
	if err != nil {
		in.warnLimited(u.deviceID, "look up reporting device", "error", err)
		return err
	}
	if u.tenantID != "" && u.tenantID != tenantID {
		in.o.Metrics.Dropped.WithLabelValues("wrong_tenant").Inc()
		in.warnLimited(u.deviceID, "report of another tenant's device on a tenant broker dropped",
			"broker_tenant_id", u.tenantID, "device_tenant_id", tenantID)
		return nil
	}
	in.touch(tenantID, u.deviceID, u.at)
	msg, err := protocol.DecodeUplink(u.kind, u.payload)
	if err != nil {
		class := protocol.Class(err)
		in.o.Metrics.Invalid.WithLabelValues(u.kind, class).Inc()
		in.warnLimited(u.deviceID, "invalid device payload dropped", "tenant_id", tenantID,
			"kind", u.kind, "class", class, "field", protocol.Field(err), "size", len(u.payload))
		return nil
	}
	dev := DeviceRef{TenantID: tenantID, DeviceID: u.deviceID}
	switch m := msg.(type) {
	case protocol.Status:
		if w != nil {
			w.presence(ctx, dev, m.Online, u.at, u.tenantID != "")
		}
	case protocol.Metadata:
		err = in.metadata(ctx, dev, m, u.at)
	case protocol.Ack:
		err = in.o.Commands.HandleAck(ctx, tenantID, u.deviceID, m)
	case protocol.ConfigRequest:
		// The device has just booted and subscribed: what it missed goes out now (once per
		// connection: commands already sent on this connection are not sent again).
		err = in.o.Commands.DeliverPending(ctx, tenantID, u.deviceID)
		if in.o.ConfigRequests != nil {
			err = errors.Join(err, in.o.ConfigRequests.ConfigRequest(ctx, dev, m))
		} else {
			in.o.Metrics.Unhandled.WithLabelValues(u.kind).Inc()
		}
	case protocol.OTAProgress:
		if in.o.OTA != nil {
			err = in.o.OTA.OTAProgress(ctx, dev, m)
		} else {
			in.o.Metrics.Unhandled.WithLabelValues(u.kind).Inc()
		}
	case protocol.LogBatch:
		if in.o.Logs != nil {
			in.o.Logs.Logs(dev, m)
		} else {
			in.o.Metrics.Unhandled.WithLabelValues(u.kind).Inc()
		}
	case protocol.ErrorReport:
		if in.o.Errors != nil {
			err = in.o.Errors.ErrorReport(ctx, dev, m)
		} else {
			in.o.Metrics.Unhandled.WithLabelValues(u.kind).Inc()
		}
	}
	if err == nil || permanent(err) {
		return nil
	}
	in.warnLimited(u.deviceID, "handle device report", "tenant_id", tenantID, "kind", u.kind, "error", err)
	return err
}

// permanent reports whether a handler's error would come back however often the report were
// tried again: the thing it names is gone, it lost a race to a newer state, or it is invalid.
func permanent(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrInvalidBatch)
}

// presence applies docs/protocol.md §6. With a broker that knows its connections, its table
// decides: an offline while the device is connected is the previous session's will, an
// online while it is not is already stale. Otherwise an online waits PresenceDelay, and an
// offline arriving within that delay is taken as the previous session's will.
//
// external is set for a report from a tenant's own broker, whose connections the embedded
// broker's table does not know.
func (w *worker) presence(ctx context.Context, dev DeviceRef, online bool, at time.Time, external bool) {
	in := w.in
	if in.conns != nil && !external {
		connected := in.conns.Online(dev.DeviceID)
		switch {
		case online && !connected:
			in.o.Metrics.Presence.WithLabelValues("superseded").Inc()
		case !online && connected:
			// Either the previous session's will after a takeover, or a will published a
			// moment before the broker dropped the connection from its table: look again
			// shortly (applyPending) before deciding.
			w.pendingOff[dev.DeviceID] = pendingOnline{tenantID: dev.TenantID, at: at}
		default:
			w.setPresence(ctx, dev, online, at)
		}
		return
	}
	if online {
		if _, waiting := w.pending[dev.DeviceID]; !waiting {
			w.pending[dev.DeviceID] = pendingOnline{tenantID: dev.TenantID, at: at}
		}
		return
	}
	if p, waiting := w.pending[dev.DeviceID]; waiting && at.Sub(p.at) < in.o.PresenceDelay {
		in.o.Metrics.Presence.WithLabelValues("stale_will").Inc()
		return
	}
	delete(w.pending, dev.DeviceID)
	w.setPresence(ctx, dev, false, at)
}

// applyPending applies the online statuses whose delay has passed, and decides the offline
// statuses that arrived while the broker still listed the device as connected.
func (w *worker) applyPending(ctx context.Context) {
	now := w.in.o.Now.now()
	for id, p := range w.pending {
		if now.Sub(p.at) < w.in.o.PresenceDelay {
			continue
		}
		delete(w.pending, id)
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		w.setPresence(sctx, DeviceRef{TenantID: p.tenantID, DeviceID: id}, true, p.at)
		cancel()
	}
	for id, p := range w.pendingOff {
		if now.Sub(p.at) < offlineRecheck {
			continue
		}
		delete(w.pendingOff, id)
		if w.in.conns.Online(id) {
			w.in.o.Metrics.Presence.WithLabelValues("stale_will").Inc()
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		w.setPresence(sctx, DeviceRef{TenantID: p.tenantID, DeviceID: id}, false, p.at)
		cancel()
	}
}

// PresenceEvent is the data of a presence event.
type PresenceEvent struct {
	Online bool `json:"online"`
}

func (w *worker) setPresence(ctx context.Context, dev DeviceRef, online bool, at time.Time) {
	in := w.in
	err := in.o.Store.SetDevicePresence(ctx, dev.TenantID, dev.DeviceID, store.Presence{Online: online, ChangedAt: at, LastSeenAt: at})
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			in.o.Metrics.Dropped.WithLabelValues("store_error").Inc()
			in.warnLimited(dev.DeviceID, "write presence", "error", err)
		}
		return
	}
	outcome := "offline"
	if online {
		outcome = "online"
	}
	in.o.Metrics.Presence.WithLabelValues(outcome).Inc()
	if err := in.o.Store.AddDeviceSample(ctx, store.DeviceSample{TenantID: dev.TenantID, DeviceID: dev.DeviceID, At: at,
		Kind: store.SamplePresence, Online: online}); err != nil {
		in.warnLimited(dev.DeviceID, "record presence history", "error", err)
	}
	in.o.Hub.Publish(Event{Type: EventPresence, TenantID: dev.TenantID, DeviceID: dev.DeviceID, At: at, Data: PresenceEvent{Online: online}})
	if online {
		if err := in.o.Commands.DeliverPending(ctx, dev.TenantID, dev.DeviceID); err != nil {
			in.warnLimited(dev.DeviceID, "deliver pending commands", "error", err)
		}
	}
}

// MetadataEvent is the data of a metadata event.
type MetadataEvent struct {
	FirmwareVersion string `json:"firmware_version"`
	ChipModel       string `json:"chip_model"`
	IP              string `json:"ip,omitempty"`
	RSSI            int    `json:"rssi,omitempty"`
	ResetReason     string `json:"reset_reason"`
	ConfigVersion   int64  `json:"config_version"`
}

func (in *Ingest) metadata(ctx context.Context, dev DeviceRef, m protocol.Metadata, at time.Time) error {
	md := store.DeviceMetadata{
		FirmwareVersion: m.FirmwareVersion,
		ProjectName:     m.Project,
		ChipModel:       m.ChipModel,
		ChipRevision:    m.ChipRevision,
		IDFVersion:      m.IDFVersion,
		MAC:             m.MAC,
		IP:              m.IP,
		RSSI:            m.RSSI,
		FreeHeap:        m.FreeHeap,
		UptimeSeconds:   m.UptimeMS / 1000,
		ResetReason:     m.ResetReason,
		ConfigVersion:   m.ConfigVersion,
		ProtocolVersion: m.ProtocolVersion,
		UpdatedAt:       at,
	}
	if m.Limits != nil {
		md.LimitCommandBytes, md.LimitConfigBytes = m.Limits.CommandBytes, m.Limits.ConfigBytes
	}
	if err := in.o.Store.SetDeviceMetadata(ctx, dev.TenantID, dev.DeviceID, md); err != nil {
		return err
	}
	if err := in.o.Store.AddDeviceSample(ctx, store.DeviceSample{TenantID: dev.TenantID, DeviceID: dev.DeviceID, At: at,
		Kind: store.SampleMetadata, Online: true, RSSI: m.RSSI, FreeHeap: m.FreeHeap, UptimeSeconds: m.UptimeMS / 1000}); err != nil {
		in.warnLimited(dev.DeviceID, "record metadata history", "error", err)
	}
	in.o.Hub.Publish(Event{Type: EventMetadata, TenantID: dev.TenantID, DeviceID: dev.DeviceID, At: at, Data: MetadataEvent{
		FirmwareVersion: m.FirmwareVersion, ChipModel: m.ChipModel, IP: m.IP, RSSI: m.RSSI,
		ResetReason: m.ResetReason, ConfigVersion: m.ConfigVersion,
	}})
	return nil
}
