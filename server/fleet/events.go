package fleet

import (
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
}

// DefaultSubscriberBuffer is the number of events a subscriber may lag behind before it
// starts losing them.
const DefaultSubscriberBuffer = 256

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
}

// NewHub returns an empty hub. onDrop, when not nil, is called for every event lost by a
// subscriber (the metric).
func NewHub(onDrop func(n int)) *Hub {
	return &Hub{subs: map[string]map[*Subscription]struct{}{}, done: make(chan struct{}), onDrop: onDrop}
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
	if size <= 0 {
		size = DefaultSubscriberBuffer
	}
	s := &Subscription{hub: h, tenant: tenantID, ch: make(chan Event, size), closed: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
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
