package fleet

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Event types on a tenant's event stream.
const (
	EventPresence        = "presence"         // a device went online or offline
	EventMetadata        = "metadata"         // a device reported its boot metadata
	EventCommand         = "command"          // a command changed state
	EventCommandsExpired = "commands_expired" // the sweeper expired commands of the tenant
	EventDevice          = "device"           // a device was created, changed, disabled or deleted
	EventDropped         = "dropped"          // this subscriber lost events (it read too slowly)
	EventAuthFailed      = "auth_failed"      // a known device connected with a wrong secret
)

// Event is one change in a tenant, as the UI receives it. Data is a JSON-encodable value
// whose shape depends on Type.
type Event struct {
	Type     string    `json:"type"`
	TenantID string    `json:"-"`
	DeviceID string    `json:"device_id,omitempty"`
	At       time.Time `json:"at"`
	Data     any       `json:"data,omitempty"`
	// ID names the event on the stream (the SSE id), set by Publish: the hub's instance and
	// its sequence number, which grows with every event of every tenant. A stream that resumes
	// after it (Last-Event-ID) gets what came since, while the hub still holds it
	// (SubscribeAfter).
	ID string `json:"-"`
}

// DefaultSubscriberBuffer is the number of events a subscriber may lag behind before it
// starts losing them.
const DefaultSubscriberBuffer = 256

// The hub holds each tenant's latest events for streams that resume: at most ReplayEvents,
// none older than ReplayWindow.
const (
	ReplayEvents = 256
	ReplayWindow = 2 * time.Minute
)

// recent is a tenant's latest events, oldest first, with their sequence numbers and when
// they were published, and the highest sequence number among its events no longer held.
type recent struct {
	events  []Event
	seqs    []uint64
	kept    []time.Time
	evicted uint64
}

// Hub fans a tenant's events out to its subscribers (the SSE streams of browsers). Publish
// never blocks: a subscriber whose buffer is full loses the event and learns how many it lost
// (Subscription.TakeDropped), so a slow browser can never slow ingestion. It is safe for
// concurrent use.
type Hub struct {
	mu      sync.Mutex
	subs    map[string]map[*Subscription]struct{}
	closed  bool
	done    chan struct{}
	onDrop  func(n int)
	counter atomic.Int64
	taps    []func(Event)

	// instance tells this hub's event IDs from another replica's or an earlier process's;
	// seq is the last sequence number given out (to every tenant's events, from 1).
	instance string
	seq      uint64
	recent   map[string]*recent // by tenant; an idle tenant's keeps only its watermark
	expired  time.Time          // when every tenant's recent events were last expired
}

// NewHub returns an empty hub. onDrop, when not nil, is called for every event lost by a
// subscriber (the metric).
func NewHub(onDrop func(n int)) *Hub {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return &Hub{subs: map[string]map[*Subscription]struct{}{}, done: make(chan struct{}), onDrop: onDrop,
		instance: hex.EncodeToString(b), recent: map[string]*recent{}}
}

// Subscription receives one tenant's events until Close or until the hub closes.
type Subscription struct {
	hub     *Hub
	tenant  string
	ch      chan Event
	dropped atomic.Int64
	once    sync.Once
	closed  chan struct{}
}

// Subscribe registers a subscriber for tenantID with a buffer of size events (0 means
// DefaultSubscriberBuffer). On a closed hub the subscription is closed at once.
func (h *Hub) Subscribe(tenantID string, size int) *Subscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.subscribeLocked(tenantID, size)
}

// SubscribeAfter is Subscribe for a stream that resumes after the event lastID (an SSE
// client's Last-Event-ID): it also returns the events of the tenant published since, oldest
// first, with no gap or repeat between them and the subscription. complete is false when the
// hub no longer holds all of them (too many or too old, or lastID is another replica's or an
// earlier process's): the client missed events and should reload what it shows. An empty
// lastID is a fresh stream: nothing to replay, and complete.
func (h *Hub) SubscribeAfter(tenantID string, size int, lastID string) (sub *Subscription, missed []Event, complete bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sub = h.subscribeLocked(tenantID, size)
	if lastID == "" {
		return sub, nil, true
	}
	instance, seqText, _ := strings.Cut(lastID, ".")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil || instance != h.instance || seq > h.seq {
		return sub, nil, false // not an ID this hub gave out
	}
	r := h.recent[tenantID]
	if r == nil {
		return sub, nil, true // the tenant has had no event since this hub started
	}
	h.expire(r, time.Now())
	if r.evicted > seq {
		return sub, nil, false // some of what came since is no longer held
	}
	i, _ := slices.BinarySearch(r.seqs, seq+1)
	return sub, slices.Clone(r.events[i:]), true
}

func (h *Hub) subscribeLocked(tenantID string, size int) *Subscription {
	if size <= 0 {
		size = DefaultSubscriberBuffer
	}
	s := &Subscription{hub: h, tenant: tenantID, ch: make(chan Event, size), closed: make(chan struct{})}
	if h.closed {
		s.once.Do(func() { close(s.closed) })
		return s
	}
	m := h.subs[tenantID]
	if m == nil {
		m = map[*Subscription]struct{}{}
		h.subs[tenantID] = m
	}
	m[s] = struct{}{}
	h.counter.Add(1)
	return s
}

// Tap registers fn to see every event of every tenant, before the subscribers do. It is for
// the process's own consumers (the alert engine), registered while the services are built.
// fn runs on the publisher's goroutine and must not block: it hands the event to a queue of
// its own.
func (h *Hub) Tap(fn func(Event)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.taps = append(h.taps, fn)
}

// Publish delivers ev to every subscriber of ev.TenantID without blocking.
func (h *Hub) Publish(ev Event) {
	if h == nil {
		return
	}
	if ev.At.IsZero() {
		ev.At = time.Now().UTC()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remember(&ev)
	for _, fn := range h.taps {
		fn(ev)
	}
	for s := range h.subs[ev.TenantID] {
		select {
		case s.ch <- ev:
		default:
			s.dropped.Add(1)
			if h.onDrop != nil {
				h.onDrop(1)
			}
		}
	}
}

// remember numbers ev and keeps it for streams of its tenant that resume.
func (h *Hub) remember(ev *Event) {
	now := time.Now()
	h.seq++
	ev.ID = h.instance + "." + strconv.FormatUint(h.seq, 10)
	r := h.recent[ev.TenantID]
	if r == nil {
		r = &recent{}
		h.recent[ev.TenantID] = r
	}
	h.expire(r, now)
	if len(r.events) == ReplayEvents {
		r.evicted = r.seqs[0]
		r.events, r.seqs, r.kept = r.events[1:], r.seqs[1:], r.kept[1:]
	}
	r.events, r.seqs, r.kept = append(r.events, *ev), append(r.seqs, h.seq), append(r.kept, now)
	// Now and then, let go of the events of tenants that have had none for a while.
	if now.Sub(h.expired) >= ReplayWindow {
		h.expired = now
		for _, o := range h.recent {
			h.expire(o, now)
		}
	}
}

// expire lets go of r's events kept longer than ReplayWindow.
func (h *Hub) expire(r *recent, now time.Time) {
	n := 0
	for n < len(r.kept) && now.Sub(r.kept[n]) > ReplayWindow {
		n++
	}
	if n == 0 {
		return
	}
	r.evicted = r.seqs[n-1]
	if n == len(r.kept) {
		r.events, r.seqs, r.kept = nil, nil, nil
		return
	}
	r.events, r.seqs, r.kept = slices.Clone(r.events[n:]), slices.Clone(r.seqs[n:]), slices.Clone(r.kept[n:])
}

// Subscribers returns the number of open subscriptions (for tests and metrics).
func (h *Hub) Subscribers() int { return int(h.counter.Load()) }

// Close ends every subscription (server shutdown): streams see Done and finish.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	close(h.done)
	for _, m := range h.subs {
		for s := range m {
			s.once.Do(func() { close(s.closed) })
		}
	}
	h.subs = map[string]map[*Subscription]struct{}{}
	h.counter.Store(0)
}

// Events is the subscription's channel.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Done is closed when the subscription or the hub is closed.
func (s *Subscription) Done() <-chan struct{} { return s.closed }

// TakeDropped returns how many events were lost since the last call and resets the count.
func (s *Subscription) TakeDropped() int64 { return s.dropped.Swap(0) }

// Close unsubscribes.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.subs[s.tenant]; m != nil {
		if _, ok := m[s]; ok {
			delete(m, s)
			h.counter.Add(-1)
		}
		if len(m) == 0 {
			delete(h.subs, s.tenant)
		}
	}
	s.once.Do(func() { close(s.closed) })
}
