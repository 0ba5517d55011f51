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
