// Package messaging is the seam between the server and whatever MQTT broker a tenant's devices
// use. The embedded broker (package broker) and the bridge to a tenant's own broker (package
// broker/bridge) both satisfy Bus, so the server publishes commands and ingests reports the
// same way whichever broker carries them, and neither broker package imports the server.
package messaging

import (
	"context"
	"errors"
)

// Message is one MQTT application message.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Handler receives messages matching a subscription. It runs on the broker's or the MQTT
// client's goroutine, so it must not block: hand the message to a bounded queue and return
// (drops are counted by the receiver).
type Handler func(Message)

// Bus publishes to and subscribes on a broker with the server's privileges.
type Bus interface {
	// Publish sends a message. For QoS 1 it returns once the broker has accepted it.
	Publish(ctx context.Context, m Message) error
	// Subscribe delivers messages matching filter (MQTT wildcards allowed) to h until the
	// returned function is called. With several server replicas, a filter of the form
	// "$share/GROUP/…" gives each message to one replica only where the broker supports it.
	Subscribe(ctx context.Context, filter string, qos byte, h Handler) (unsubscribe func(), err error)
}

// Sessions is implemented by brokers that can act on a device's live connection: the
// embedded broker can; an external broker cannot, which is why its devices are confined by
// the broker's own ACL and credentials (see docs/deployment.md).
type Sessions interface {
	// Disconnect closes the device's session at once and drops its subscriptions, e.g. after
	// its credentials were rotated or it was disabled. A device that is not connected is not
	// an error.
	Disconnect(deviceID string) error
	// Forget drops anything the broker cached about the device's credentials.
	Forget(deviceID string)
}

// ErrClosed is returned by a Bus that has shut down.
var ErrClosed = errors.New("messaging: closed")

// ConfirmedHandler handles one message a device published before the broker acknowledges
// it. It returns nil once the message is durably handled (stored, or found to need nothing):
// only then does the device get its PUBACK. An error means "not handled yet": the broker
// tries again and, if it still cannot, withholds the PUBACK so the device sends the message
// again (MQTT 3.1.1 §4.4, MQTT 5 §4.4). Reports the server can never use (malformed, from an
// unknown device) are not errors: retrying them would change nothing.
//
// It runs on the publishing device's own connection goroutine, so a slow store slows only
// that device (backpressure), never the broker; ctx bounds one attempt.
type ConfirmedHandler func(ctx context.Context, m Message) error

// Confirmer is implemented by a Bus that can hold a device's acknowledgement until the
// server has handled the message (the embedded broker). Messages matching a confirmed filter
// reach its handler only, not the plain subscriptions of the same topics, and they are never
// discarded by the broker's publish rate limit: they are control-plane messages, paced by how
// fast the server handles them instead.
type Confirmer interface {
	SubscribeConfirmed(filter string, h ConfirmedHandler) (unsubscribe func(), err error)
}

// Connection identifies a device's live connection to a broker that knows them (the
// embedded broker): ConnectionID changes at every new connection of the device, so the server
// can tell a reconnect from a second report on the same connection. ok is false until the
// connection has subscribed to the device's commands: one published before would reach
// nobody.
type Connection interface {
	ConnectionID(deviceID string) (id uint64, ok bool)
}
