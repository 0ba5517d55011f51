// Package devicerrors records device error reports and forwards them to Bugsnag.
//
// Every valid `error` report (docs/protocol.md §3.7) is stored through store.RecordError,
// grouped by a fingerprint, with counts and first/last seen per group and per device. A
// report with a backtrace is keyed on its top application frames (StackFingerprint): by
// function when the release's ELF file symbolicates it (Options.Symbols), else by address;
// other reports on type, message and firmware version (Fingerprint). When the ELF file
// arrives after crashes of its release, their groups are re-keyed by function (Regrouper), so
// one bug stays one group; a crash that comes again re-keys its own address group as it
// arrives, should the Regrouper not have done so.
//
// A resolved group stays resolved while the same error keeps arriving from the same firmware
// (devices not updated yet); when the same type and message first appear on a newer
// firmware, that is a regression: the new firmware's group is open (it is new) and the
// resolved groups of older firmware with that type and message are reopened.
//
// When the device's project or, failing that, its tenant has a Bugsnag API key (sealed with
// the master key; the project's overrides the tenant's), the report is forwarded through
// github.com/bugsnag/bugsnag-go: one Notifier per API key and endpoint, made with
// bugsnag.New, never bugsnag.Configure, so the process is not wrapped by panicwrap and no
// global configuration is shared between tenants. Forwarding is asynchronous through a
// bounded queue with retries and exponential backoff; ingestion only stores and enqueues, so
// a Bugsnag outage never slows it. Drops are counted.
//
// A device reporting errors in a loop is rate-limited twice, per device: beyond the forward
// limit reports are stored but not forwarded; beyond the (higher) store limit they are not
// stored either. Both are counted.
package devicerrors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
)

// Defaults of Options.
const (
	DefaultNotifyURL    = "https://notify.bugsnag.com"
	DefaultQueueSize    = 1000
	DefaultWorkers      = 2
	DefaultAttempts     = 4
	DefaultBackoff      = time.Second
	DefaultTimeout      = 10 * time.Second
	DefaultForwardBurst = 10
	DefaultForwardEvery = 6 * time.Second // one more forwarded report per 6 s (10 a minute)
	DefaultStoreBurst   = 60
	DefaultStoreEvery   = time.Second
	regressionScan      = 200
	keyedGroups         = 10000
	maxLimiterEntries   = 100000
)

// Store is what the service needs from the store.
type Store interface {
	Device(ctx context.Context, tenantID, id string) (store.Device, error)
	Project(ctx context.Context, tenantID, id string) (store.Project, error)
	TenantSettings(ctx context.Context, tenantID string) (store.TenantSettings, error)
	RecordError(ctx context.Context, r *store.ErrorReport) (store.ErrorGroup, error)
	ListErrorGroups(ctx context.Context, tenantID string, f store.ErrorGroupFilter, opts store.ListOptions) (store.Page[store.ErrorGroup], error)
	SetErrorGroupResolved(ctx context.Context, tenantID, id string, resolved bool, userID string, at time.Time) error
	SetErrorGroupFingerprint(ctx context.Context, tenantID, id, fingerprint string) error
}

// Options configure the Service. Zero values take the defaults.
type Options struct {
	Store   Store
	Keyring *seal.Keyring
	// Symbols symbolicates backtraces with the release's ELF file, for grouping and for
	// Bugsnag; nil leaves them raw.
	Symbols Symbolizer
	// CoreDumps asks devices for the whole core dumps their reports announce; nil: they stay
	// on the devices.
	CoreDumps *CoreDumps
	// NotifyURL is the Bugsnag notify endpoint for tenants that set none (on-premise Bugsnag).
	NotifyURL string
	// QueueSize bounds the reports waiting to be forwarded; Workers forward them.
	QueueSize int
	Workers   int
	// Attempts is how often one report is tried; Backoff the first pause, doubled each time.
	Attempts int
	Backoff  time.Duration
	// Timeout bounds one HTTP request to Bugsnag.
	Timeout time.Duration
	// ForwardBurst and ForwardEvery are each device's forwarding token bucket; StoreBurst
	// and StoreEvery its storing one.
	ForwardBurst int
	ForwardEvery time.Duration
	StoreBurst   int
	StoreEvery   time.Duration
	// Transport carries the requests to Bugsnag; nil means a transport with Timeout.
	Transport  http.RoundTripper
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
	// Hub receives an "error" event for every stored report (alert rules count them); nil
	// publishes none.
	Hub *fleet.Hub
}

// EventError is the type of the event published for every stored report; its data is an
// ErrorEvent.
const EventError = "error"

// ErrorEvent is the data of an error event. New is true for the first report of a group.
type ErrorEvent struct {
	GroupID string `json:"group_id"`
	New     bool   `json:"new"`
	Type    string `json:"type"`
	Message string `json:"message"`
	Count   int64  `json:"count"`
}

// Metrics are the service's counters.
type Metrics struct {
	// Reports counts reports by outcome: stored, rate_limited (not stored), store_error.
	Reports *prometheus.CounterVec
	// Forward counts forwarding by outcome: queued, sent, failed (all attempts), retried,
	// queue_full, rate_limited, no_key, key_error.
	Forward *prometheus.CounterVec
	// Reopened counts resolved groups reopened by a regression on a newer firmware.
	Reopened prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_device_errors_total", Help: "Device error reports by outcome."}, []string{"outcome"}),
		Forward: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_bugsnag_forward_total", Help: "Device error reports forwarded to Bugsnag, by outcome."}, []string{"outcome"}),
		Reopened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "espadmin_device_error_groups_reopened_total", Help: "Resolved error groups reopened by a newer firmware."}),
	}
	if reg != nil {
		reg.MustRegister(m.Reports, m.Forward, m.Reopened)
	}
	return m
}

// Service stores and forwards device error reports. It is the fleet.ErrorReporter.
type Service struct {
	o        Options
	metrics  *Metrics
	queue    chan job
	forward  *limiter
	storeLim *limiter

	// transport is o.Transport bound to Run's context (set by Run before any request).
	transport http.RoundTripper

	mu        sync.Mutex
	notifiers map[notifierKey]*notifier

	// keyed remembers the function keys (tenant and fingerprint) that have their group, so a
	// crash seen again costs no lookup (adoptAddressGroup).
	keyed *lru.Cache[string, struct{}]
}

// cancelTransport attaches ctx to every request.
type cancelTransport struct {
	base http.RoundTripper
	ctx  context.Context
}

func (t cancelTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(r.WithContext(t.ctx))
}

var _ fleet.ErrorReporter = (*Service)(nil)

// New returns the service; Run forwards.
func New(o Options) *Service {
	if o.NotifyURL == "" {
		o.NotifyURL = DefaultNotifyURL
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ForwardBurst <= 0 {
		o.ForwardBurst = DefaultForwardBurst
	}
	if o.ForwardEvery <= 0 {
		o.ForwardEvery = DefaultForwardEvery
	}
	if o.StoreBurst <= 0 {
		o.StoreBurst = DefaultStoreBurst
	}
	if o.StoreEvery <= 0 {
		o.StoreEvery = DefaultStoreEvery
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Transport == nil {
		o.Transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: o.Timeout,
			TLSHandshakeTimeout:   o.Timeout,
			IdleConnTimeout:       time.Minute,
			MaxIdleConnsPerHost:   o.Workers,
		}
	}
	keyed, _ := lru.New[string, struct{}](keyedGroups) // only a size ≤ 0 fails
	return &Service{
		o: o, metrics: newMetrics(o.Registerer), queue: make(chan job, o.QueueSize), keyed: keyed,
		forward:   newLimiter(o.ForwardBurst, o.ForwardEvery),
		storeLim:  newLimiter(o.StoreBurst, o.StoreEvery),
		notifiers: map[notifierKey]*notifier{},
	}
}

// Metrics returns the service's counters.
func (s *Service) Metrics() *Metrics { return s.metrics }

// Fingerprint groups reports: SHA-256 over type, message and firmware version, hex.
func Fingerprint(typ, message, firmware string) string {
	h := sha256.New()
	for _, part := range []string{typ, message, firmware} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}

// ErrorReport stores one report and queues it for Bugsnag. It runs on an ingest worker: it
// writes to the store (bounded by the worker's context) and never waits for Bugsnag.
func (s *Service) ErrorReport(ctx context.Context, dev fleet.DeviceRef, r protocol.ErrorReport) error {
	now := s.o.Now()
	if !s.storeLim.allow(dev.DeviceID, now) {
		s.metrics.Reports.WithLabelValues("rate_limited").Inc()
		return nil
	}
	d, err := s.o.Store.Device(ctx, dev.TenantID, dev.DeviceID)
	if err != nil {
		s.metrics.Reports.WithLabelValues("store_error").Inc()
		return err
	}
	rep := storeReport(dev, d.ProjectID, r, now)
	frames, symbolicated := s.symbolicate(ctx, dev.TenantID, d.ProjectID, r)
	if len(r.Backtrace) > 0 {
		rep.Fingerprint = StackFingerprint(r.Type, r.FirmwareVersion, r.Backtrace, frames, symbolicated)
		if symbolicated {
			s.adoptAddressGroup(ctx, dev.TenantID, d.ProjectID, r, rep.Fingerprint)
		}
	}
	if symbolicated {
		r.Backtrace = ProtocolFrames(frames) // Bugsnag gets functions, files and lines
	}
	group, err := s.o.Store.RecordError(ctx, &rep)
	if err != nil {
		s.metrics.Reports.WithLabelValues("store_error").Inc()
		return fmt.Errorf("devicerrors: record: %w", err)
	}
	s.metrics.Reports.WithLabelValues("stored").Inc()
	if s.o.CoreDumps != nil && r.CoreDump != nil && r.CoreDump.Size > 0 {
		s.o.CoreDumps.Request(ctx, rep, r.CoreDump.Size)
	}
	s.o.Hub.Publish(fleet.Event{Type: EventError, TenantID: dev.TenantID, DeviceID: dev.DeviceID, At: now,
		Data: ErrorEvent{GroupID: group.ID, New: group.Count == 1, Type: group.Type, Message: group.Message, Count: group.Count}})
	if group.Count == 1 {
		s.reopenOlder(ctx, group, now)
	}
	s.enqueue(ctx, d, r, group)
	return nil
}

func storeReport(dev fleet.DeviceRef, projectID string, r protocol.ErrorReport, now time.Time) store.ErrorReport {
	stack := ""
	if len(r.Backtrace) > 0 {
		b, _ := json.Marshal(r.Backtrace) // frames are plain strings and ints
		stack = string(b)
	}
	core := ""
	if r.CoreDump != nil {
		b, _ := json.Marshal(r.CoreDump)
		core = string(b)
	}
	return store.ErrorReport{
		TenantID: dev.TenantID, DeviceID: dev.DeviceID, ProjectID: projectID,
		Fingerprint: Fingerprint(r.Type, r.Message, r.FirmwareVersion),
		Message:     r.Message, Type: r.Type, Code: r.Code, Severity: r.Severity, Stack: stack,
		ResetReason: r.ResetReason, FirmwareVersion: r.FirmwareVersion,
		UptimeSeconds: r.UptimeMS / 1000, FreeHeap: r.FreeHeap, CoreDump: core, ReceivedAt: now,
	}
}

// reopenOlder reopens resolved groups with the same type and message on an older firmware
// than g's, in g's project (or tenant): the error came back after the fix was released.
func (s *Service) reopenOlder(ctx context.Context, g store.ErrorGroup, now time.Time) {
	v, err := protocol.ParseReleaseVersion(g.FirmwareVersion)
	if err != nil {
		return // versions that are not v-x.y.z have no order
	}
	resolved := true
	page, err := s.o.Store.ListErrorGroups(ctx, g.TenantID, store.ErrorGroupFilter{ProjectID: g.ProjectID, Resolved: &resolved},
		store.ListOptions{Limit: regressionScan, Desc: true})
	if err != nil {
		s.o.Logger.Warn("look for resolved error groups", "tenant_id", g.TenantID, "error", err)
		return
	}
	for _, old := range page.Items {
		if old.ID == g.ID || old.Type != g.Type || old.Message != g.Message {
			continue
		}
		ov, err := protocol.ParseReleaseVersion(old.FirmwareVersion)
		if err != nil || v.Compare(ov) <= 0 {
			continue
		}
		if err := s.o.Store.SetErrorGroupResolved(ctx, g.TenantID, old.ID, false, "", now); err != nil {
			s.o.Logger.Warn("reopen error group", "tenant_id", g.TenantID, "group_id", old.ID, "error", err)
			continue
		}
		s.metrics.Reopened.Inc()
		s.o.Logger.Info("error group reopened by a newer firmware", "tenant_id", g.TenantID, "group_id", old.ID,
			"resolved_firmware", old.FirmwareVersion, "firmware", g.FirmwareVersion)
	}
}

// destination is where one report goes.
type destination struct {
	apiKey, notifyURL, releaseStage string
}

// destinationFor resolves the Bugsnag key, endpoint and release stage of a device: the
// project's key overrides the tenant's. ok is false when neither has a key.
func (s *Service) destinationFor(ctx context.Context, d store.Device) (destination, bool, error) {
	var dst destination
	settings, err := s.o.Store.TenantSettings(ctx, d.TenantID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return dst, false, err
	}
	dst.notifyURL = settings.Bugsnag.NotifyURL
	dst.releaseStage = settings.Bugsnag.ReleaseStage
	sealed, ad := settings.Bugsnag.APIKeySealed, TenantKeyAD(d.TenantID)
	if d.ProjectID != "" {
		p, err := s.o.Store.Project(ctx, d.TenantID, d.ProjectID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return dst, false, err
		}
		if len(p.BugsnagAPIKeySealed) > 0 {
			sealed, ad = p.BugsnagAPIKeySealed, ProjectKeyAD(d.TenantID, d.ProjectID)
		}
		if p.BugsnagReleaseStage != "" {
			dst.releaseStage = p.BugsnagReleaseStage
		}
	}
	if len(sealed) == 0 {
		return dst, false, nil
	}
	if s.o.Keyring == nil {
		return dst, false, errors.New("devicerrors: no keyring to open the Bugsnag key")
	}
	key, err := s.o.Keyring.Open(sealed, ad)
	if err != nil {
		return dst, false, fmt.Errorf("devicerrors: open Bugsnag key: %w", err)
	}
	dst.apiKey = string(key)
	if dst.notifyURL == "" {
		dst.notifyURL = s.o.NotifyURL
	}
	if dst.releaseStage == "" {
		dst.releaseStage = "production"
	}
	return dst, true, nil
}

// job is one report waiting to be forwarded.
type job struct {
	dst    destination
	device store.Device
	report protocol.ErrorReport
	group  store.ErrorGroup
}

func (s *Service) enqueue(ctx context.Context, d store.Device, r protocol.ErrorReport, g store.ErrorGroup) {
	dst, ok, err := s.destinationFor(ctx, d)
	switch {
	case err != nil:
		s.metrics.Forward.WithLabelValues("key_error").Inc()
		s.o.Logger.Warn("bugsnag destination", "tenant_id", d.TenantID, "device_id", d.ID, "error", err)
		return
	case !ok:
		s.metrics.Forward.WithLabelValues("no_key").Inc()
		return
	}
	if !s.forward.allow(d.ID, s.o.Now()) {
		s.metrics.Forward.WithLabelValues("rate_limited").Inc()
		return
	}
	select {
	case s.queue <- job{dst: dst, device: d, report: r, group: g}:
		s.metrics.Forward.WithLabelValues("queued").Inc()
	default:
		s.metrics.Forward.WithLabelValues("queue_full").Inc()
	}
}

// Run forwards queued reports until ctx ends; reports still queued then are dropped (and
// counted as failed).
func (s *Service) Run(ctx context.Context) error {
	// Requests in flight end with ctx too: bugsnag-go makes its requests without a context.
	s.transport = cancelTransport{base: s.o.Transport, ctx: ctx}
	var wg sync.WaitGroup
	for range s.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-s.queue:
					s.send(ctx, j)
				}
			}
		}()
	}
	wg.Wait()
	for {
		select {
		case <-s.queue:
			s.metrics.Forward.WithLabelValues("failed").Inc()
		default:
			return nil
		}
	}
}

// send delivers one report, retrying with exponential backoff.
func (s *Service) send(ctx context.Context, j job) {
	n := s.notifierFor(j.dst)
	wait := s.o.Backoff
	for attempt := 1; ; attempt++ {
		err := n.notify(j)
		if err == nil {
			s.metrics.Forward.WithLabelValues("sent").Inc()
			return
		}
		if attempt >= s.o.Attempts {
			s.metrics.Forward.WithLabelValues("failed").Inc()
			s.o.Logger.Warn("forward error report to Bugsnag", "tenant_id", j.device.TenantID, "device_id", j.device.ID,
				"attempts", attempt, "error", err)
			return
		}
		s.metrics.Forward.WithLabelValues("retried").Inc()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.metrics.Forward.WithLabelValues("failed").Inc()
			return
		case <-t.C:
		}
		wait *= 2
	}
}

// limiter is a token bucket per device. The map is bounded: when full it starts over, which
// at worst lets a device through early.
type limiter struct {
	mu      sync.Mutex
	burst   int
	every   rate.Limit
	buckets map[string]*rate.Limiter
}

func newLimiter(burst int, every time.Duration) *limiter {
	return &limiter{burst: burst, every: rate.Every(every), buckets: map[string]*rate.Limiter{}}
}

// allow takes one of id's tokens at now (the service's clock, so tests can move it).
func (l *limiter) allow(id string, now time.Time) bool {
	l.mu.Lock()
	b := l.buckets[id]
	if b == nil {
		if len(l.buckets) >= maxLimiterEntries {
			l.buckets = map[string]*rate.Limiter{}
		}
		b = rate.NewLimiter(l.every, l.burst)
		l.buckets[id] = b
	}
	l.mu.Unlock()
	return b.AllowN(now, 1)
}

// TenantKeyAD is the associated data sealing a tenant's Bugsnag API key, so a sealed key
// cannot be moved to another tenant.
func TenantKeyAD(tenantID string) []byte { return []byte("bugsnag-api-key/tenant/" + tenantID) }

// ProjectKeyAD is the associated data sealing a project's Bugsnag API key.
func ProjectKeyAD(tenantID, projectID string) []byte {
	return []byte("bugsnag-api-key/project/" + tenantID + "/" + projectID)
}

// ValidAPIKey reports whether key looks like a Bugsnag API key: 32 hexadecimal digits
// (bugsnag-go refuses to send anything else).
func ValidAPIKey(key string) bool {
	if len(key) != 32 {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
