package broker

import (
	"context"
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/espadmin/espadmin/broker/messaging"
)

// subscription is one server Subscribe: mochi calls offer on whichever client goroutine
// published the message; offer never blocks, and a single worker runs the handler in order.
type subscription struct {
	id      int
	filter  string
	queue   chan messaging.Message
	handler messaging.Handler
	metrics *metrics
	done    chan struct{}
	once    sync.Once
}

func newSubscription(id int, filter string, size int, h messaging.Handler, m *metrics) *subscription {
	return &subscription{
		id:      id,
		filter:  filter,
		queue:   make(chan messaging.Message, size),
		handler: h,
		metrics: m,
		done:    make(chan struct{}),
	}
}

func toMessage(pk packets.Packet) messaging.Message {
	return messaging.Message{
		Topic:   pk.TopicName,
		Payload: pk.Payload,
		QoS:     pk.FixedHeader.Qos,
		Retain:  pk.FixedHeader.Retain,
	}
}

// offer queues a live message or drops it (counted) when the queue is full.
func (s *subscription) offer(pk packets.Packet) {
	select {
	case <-s.done:
		return
	default:
	}
	select {
	case s.queue <- toMessage(pk):
	default:
		s.metrics.dropped.WithLabelValues(dropSubscriberQueueFull).Inc()
	}
}

// put queues a message, waiting for room; used for retained messages at Subscribe time, on
// the subscriber's own goroutine.
func (s *subscription) put(ctx context.Context, pk packets.Packet) error {
	select {
	case s.queue <- toMessage(pk):
		return nil
	case <-s.done:
		return messaging.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *subscription) run() {
	for {
		select {
		case m := <-s.queue:
			s.handler(m)
		case <-s.done:
			return
		}
	}
}

func (s *subscription) stop() { s.once.Do(func() { close(s.done) }) }

func (s *subscription) depth() int { return len(s.queue) }
