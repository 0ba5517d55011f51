package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/espadmin/espadmin/broker/messaging"
)

// subscription is one Subscribe call: the filter sent to the broker, the filter messages are
// matched against, and a bounded queue drained by one goroutine that calls the handler.
type subscription struct {
	wire    string // as subscribed, possibly $share/GROUP/…
	match   string // without the $share/GROUP/ prefix: what message topics are matched against
	qos     byte
	handler messaging.Handler
	queue   chan messaging.Message
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func (s *subscription) stop() { s.once.Do(func() { close(s.quit) }) }

func (s *subscription) work() {
	defer close(s.done)
	for {
		select {
		case <-s.quit:
			return
		case m := <-s.queue:
			s.handler(m)
		}
	}
}

// Subscribe delivers messages matching filter to h until the returned function is called.
// With Config.ShareGroup set, a plain filter is subscribed as $share/ShareGroup/filter; a
// filter that already starts with $share/ is used as given. When the bridge is connected the
// SUBSCRIBE is sent and its result checked (a broker refusing it, return code 0x80 of MQTT
// 3.1.1 §3.9.3, is an error); otherwise the subscription is made at the next connect.
func (b *Bridge) Subscribe(ctx context.Context, filter string, qos byte, h messaging.Handler) (func(), error) {
	if h == nil {
		return nil, errors.New("bridge: subscribe: nil handler")
	}
	if qos > 2 {
		return nil, fmt.Errorf("bridge: subscribe: QoS %d", qos)
	}
	wire, match, err := b.filters(filter)
	if err != nil {
		return nil, err
	}
	s := &subscription{
		wire: wire, match: match, qos: qos, handler: h,
		queue: make(chan messaging.Message, b.cfg.QueueSize),
		quit:  make(chan struct{}), done: make(chan struct{}),
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, messaging.ErrClosed
	}
	id := b.nextSub
	b.nextSub++
	b.subs[id] = s
	client, connected := b.client, b.state.Status == StatusConnected
	b.mu.Unlock()
	go s.work()

	if connected {
		if err := b.subscribeOne(ctx, client, wire, qos); err != nil {
			b.removeSub(id, false)
			return nil, err
		}
	}
	return func() { b.removeSub(id, true) }, nil
}

// filters returns the filter to subscribe with and the one to match topics against.
func (b *Bridge) filters(filter string) (wire, match string, err error) {
	match = filter
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		group, f, found := strings.Cut(rest, "/")
		if !found || group == "" || strings.ContainsAny(group, "+#") {
			return "", "", fmt.Errorf("bridge: subscribe: invalid shared subscription %q", filter)
		}
		match = f
	}
	if !validFilter(match) {
		return "", "", fmt.Errorf("bridge: subscribe: invalid filter %q", filter)
	}
	wire = filter
	if match == filter && b.cfg.ShareGroup != "" {
		wire = "$share/" + b.cfg.ShareGroup + "/" + filter
	}
	return wire, match, nil
}

// removeSub drops subscription id; when unsubscribe is set and no other subscription uses the
// same filter, it also sends UNSUBSCRIBE (without waiting: the handler is gone already).
func (b *Bridge) removeSub(id uint64, unsubscribe bool) {
	b.mu.Lock()
	s, ok := b.subs[id]
	delete(b.subs, id)
	shared := false
	for _, o := range b.subs {
		if ok && o.wire == s.wire {
			shared = true
		}
	}
	client, connected := b.client, b.state.Status == StatusConnected
	b.mu.Unlock()
	if !ok {
		return
	}
	s.stop()
	if unsubscribe && !shared && connected {
		client.Unsubscribe(s.wire)
	}
}

// subscribeOne sends one SUBSCRIBE and waits for the SUBACK.
func (b *Bridge) subscribeOne(ctx context.Context, client mqtt.Client, wire string, qos byte) error {
	tok := client.Subscribe(wire, qos, nil) // nil: messages go to dispatch, not to a paho route
	t := time.NewTimer(b.cfg.PublishTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return fmt.Errorf("bridge: subscribe %s: %w", wire, ctx.Err())
	case <-t.C:
		return fmt.Errorf("bridge: subscribe %s: no SUBACK within %s", wire, b.cfg.PublishTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("bridge: subscribe %s: %w", wire, err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for _, granted := range st.Result() {
			if granted == 0x80 {
				return fmt.Errorf("bridge: subscribe %s: %w: the broker refused the subscription (check the account's ACL)", wire, ErrNotAuthorized)
			}
		}
	}
	return nil
}

// subscribeAll is the on-connect step: every active subscription is subscribed again, since
// the broker may have lost the session. A refused subscription is logged and kept (the next
// connect tries again); it does not fail the connection.
func (b *Bridge) subscribeAll(ctx context.Context) {
	b.mu.Lock()
	client := b.client
	seen := map[string]byte{}
	for _, s := range b.subs {
		if q, ok := seen[s.wire]; !ok || s.qos > q {
			seen[s.wire] = s.qos
		}
	}
	b.mu.Unlock()
	for wire, qos := range seen {
		if err := b.subscribeOne(ctx, client, wire, qos); err != nil {
			b.log.Error("broker subscription failed", "filter", wire, "error", err)
		}
	}
}

// dispatch is paho's only message handler. It runs on a paho goroutine and never blocks: the
// message goes to the queue of every matching subscription or is dropped and counted.
func (b *Bridge) dispatch(pm mqtt.Message) {
	m := messaging.Message{Topic: pm.Topic(), Payload: pm.Payload(), QoS: pm.Qos(), Retain: pm.Retained()}
	b.mu.Lock()
	defer b.mu.Unlock()
	matched := false
	for _, s := range b.subs {
		if !matches(s.match, m.Topic) {
			continue
		}
		matched = true
		select {
		case s.queue <- m:
			b.received.Add(1)
		default:
			if n := b.dropped.Add(1); n == 1 || n%1000 == 0 {
				b.log.Warn("broker message dropped: subscription queue full", "filter", s.wire, "dropped_total", n)
			}
		}
	}
	if !matched {
		if n := b.unrouted.Add(1); n == 1 || n%1000 == 0 {
			b.log.Warn("broker message matches no subscription", "topic", m.Topic, "unrouted_total", n)
		}
	}
}

// validFilter checks a topic filter (MQTT 3.1.1 §4.7.1): '#' only as the whole last level,
// '+' only as a whole level, no NUL, not empty.
func validFilter(f string) bool {
	if f == "" || len(f) > 65535 || strings.ContainsRune(f, 0) {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}

// matches reports whether topic matches filter (MQTT 3.1.1 §4.7): '+' is one level, '#' the
// rest including the parent level, and wildcards at the first level do not match topics
// starting with '$' (§4.7.2).
func matches(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fl := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) {
			return false
		}
		if f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}
