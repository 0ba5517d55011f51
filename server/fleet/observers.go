package fleet

import (
	"context"
	"sync"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
)

// AckObserver learns about every acknowledgement that moved a command to a final state
// (succeeded or failed). The services that send system commands register one: the config
// service records the version a device applied, the OTA service the outcome of an update.
//
// CommandAcked runs on the ingest worker that applied the ack, after the transition was
// stored, so it must be quick and must not block; it sees every command name and ignores the
// ones it did not send. Repeated acks (the device answering a redelivered command) are not
// passed on: the transition happens once, on whichever replica handles the first ack.
type AckObserver interface {
	CommandAcked(ctx context.Context, cmd store.Command, ack protocol.Ack)
}

// ackObservers is the list of observers of one Commands. It is safe for concurrent use, so
// an observer may register while acks are being handled, though the process registers them
// all before Run.
type ackObservers struct {
	mu   sync.RWMutex
	list []AckObserver
}

// Observe registers o to be told about every applied acknowledgement (see AckObserver).
// Observers are called in the order they registered.
func (c *Commands) Observe(o AckObserver) {
	c.observers.mu.Lock()
	defer c.observers.mu.Unlock()
	c.observers.list = append(c.observers.list, o)
}

// notifyAck calls every observer with the command as it was stored by the ack.
func (c *Commands) notifyAck(ctx context.Context, cmd store.Command, ack protocol.Ack) {
	c.observers.mu.RLock()
	list := c.observers.list
	c.observers.mu.RUnlock()
	for _, o := range list {
		o.CommandAcked(ctx, cmd, ack)
	}
}
