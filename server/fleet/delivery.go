package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
)

// Delivery pacing defaults (docs/protocol.md §7).
const (
	// DefaultWindow is how many commands may be published to one device connection and not
	// yet acknowledged. A backlog is sent at the pace the device acknowledges it, so it never
	// overflows the broker's per-client queue (which closes slow clients).
	DefaultWindow = 8
	// DefaultAckWait is how long a window slot waits for the device's acknowledgement
	// before the command is sent again (a publish that raced the device's SUBSCRIBE reached
	// nobody) and the slot is counted free.
	DefaultAckWait = time.Minute
)

// window is the delivery state of one device's live connection in this process: the
// pending commands not yet sent on it, oldest first, and the ones sent and not acknowledged.
type window struct {
	mu       sync.Mutex
	tenantID string
	conn     uint64
	loaded   bool
	queue    []string
	sent     map[string]time.Time
}

// connection returns the ID of deviceID's live connection to this process's broker. windowed
// is false when the tenant's broker cannot tell connections apart (a tenant's own broker):
// then every pending command is sent on every connect, as the device's status reports it.
func (c *Commands) connection(tenantID, deviceID string) (id uint64, online, windowed bool) {
	bus, _, external := c.route(tenantID)
	if external || bus == nil {
		return 0, false, false
	}
	ci, ok := bus.(messaging.Connection)
	if !ok {
		return 0, false, false
	}
	id, online = ci.ConnectionID(deviceID)
	return id, online, true
}

// windowOf returns deviceID's window, creating it.
func (c *Commands) windowOf(tenantID, deviceID string) *window {
	c.winMu.Lock()
	defer c.winMu.Unlock()
	w, ok := c.windows[deviceID]
	if !ok {
		w = &window{tenantID: tenantID, sent: map[string]time.Time{}}
		c.windows[deviceID] = w
	}
	return w
}

// pump fills deviceID's window from its pending commands: the first time on a connection it
// reads them from the store (superseded config versions dropped), then it publishes the next
// ones until Window are outstanding. Each command is published once per connection. It
// returns the commands it published, as stored after.
func (c *Commands) pump(ctx context.Context, tenantID, deviceID string) ([]store.Command, error) {
	conn, online, _ := c.connection(tenantID, deviceID)
	if !online {
		c.winMu.Lock()
		delete(c.windows, deviceID)
		c.winMu.Unlock()
		return nil, nil
	}
	w := c.windowOf(tenantID, deviceID)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != conn {
		w.conn, w.loaded, w.queue, w.sent = conn, false, nil, map[string]time.Time{}
	}
	now := c.o.Now.now()
	var unanswered []string
	for id, at := range w.sent {
		if now.Sub(at) >= c.o.AckWait {
			delete(w.sent, id)
			unanswered = append(unanswered, id)
			c.o.Metrics.CommandsPublished.WithLabelValues("ack_wait").Inc()
		}
	}
	if len(unanswered) > 0 && w.loaded {
		// Sent again first (a publish that raced the device's SUBSCRIBE reached nobody);
		// one that was answered or expired meanwhile is skipped below.
		slices.Sort(unanswered)
		w.queue = append(unanswered, w.queue...)
	}
	if !w.loaded {
		cmds, err := c.o.Store.PendingCommands(ctx, tenantID, deviceID, now)
		if err != nil {
			return nil, err
		}
		cmds = c.coalesce(ctx, cmds)
		w.queue = w.queue[:0]
		for _, cmd := range cmds {
			if _, out := w.sent[cmd.ID]; !out {
				w.queue = append(w.queue, cmd.ID)
			}
		}
		w.loaded = true
	}
	var published []store.Command
	for len(w.sent) < c.o.Window && len(w.queue) > 0 {
		id := w.queue[0]
		cmd, err := c.o.Store.Command(ctx, tenantID, id)
		if errors.Is(err, store.ErrNotFound) {
			w.queue = w.queue[1:]
			continue
		}
		if err != nil {
			return published, err
		}
		if cmd.State.Final() || !cmd.ExpiresAt.After(now) {
			w.queue = w.queue[1:]
			continue
		}
		got, ok := c.deliver(ctx, cmd)
		if !ok {
			return published, nil // the broker refused; the next trigger tries again, in order
		}
		w.queue = w.queue[1:]
		w.sent[id] = now
		published = append(published, got)
	}
	return published, nil
}

// enqueue adds a new command to its device's window when the device is connected and
// publishes what the window allows. It returns the command as stored after.
func (c *Commands) enqueue(ctx context.Context, cmd store.Command) store.Command {
	c.winMu.Lock()
	w, ok := c.windows[cmd.DeviceID]
	c.winMu.Unlock()
	if ok {
		w.mu.Lock()
		// A refill that read the store after the command was created has it already.
		if _, out := w.sent[cmd.ID]; w.loaded && !out && !slices.Contains(w.queue, cmd.ID) {
			w.queue = append(w.queue, cmd.ID)
		}
		w.mu.Unlock()
	}
	published, err := c.pump(ctx, cmd.TenantID, cmd.DeviceID)
	if err != nil {
		c.o.Logger.Warn("deliver commands", "tenant_id", cmd.TenantID, "device_id", cmd.DeviceID, "error", err)
	}
	for _, p := range published {
		if p.ID == cmd.ID {
			return p
		}
	}
	return cmd
}

// settled frees the window slot of a command the device answered (or that became final
// otherwise) and sends what the window allows next.
func (c *Commands) settled(ctx context.Context, tenantID, deviceID, commandID string) {
	c.winMu.Lock()
	w, ok := c.windows[deviceID]
	c.winMu.Unlock()
	if !ok {
		return
	}
	w.mu.Lock()
	delete(w.sent, commandID)
	w.mu.Unlock()
	if _, err := c.pump(ctx, tenantID, deviceID); err != nil {
		// The periodic refill (Run) tries again.
		c.o.Logger.Warn("deliver commands", "tenant_id", tenantID, "device_id", deviceID, "error", err)
	}
}

// refill pumps every window with work left (commands waiting, or slots past AckWait) and
// forgets the windows of devices gone; Run calls it, so a delivery a store error interrupted
// resumes without waiting for the device.
func (c *Commands) refill(ctx context.Context) {
	c.winMu.Lock()
	type ref struct{ tenantID, deviceID string }
	var todo []ref
	for id, w := range c.windows {
		todo = append(todo, ref{w.tenantID, id})
	}
	c.winMu.Unlock()
	for _, r := range todo {
		if _, err := c.pump(ctx, r.tenantID, r.deviceID); err != nil && ctx.Err() == nil {
			c.o.Logger.Warn("deliver commands", "tenant_id", r.tenantID, "device_id", r.deviceID, "error", err)
		}
	}
}

// coalesce keeps, of a device's pending config commands, only the one carrying the highest
// version (the newest of equals); the others are marked superseded and left out. Other
// commands pass in order.
func (c *Commands) coalesce(ctx context.Context, cmds []store.Command) []store.Command {
	latest := -1
	var latestVersion int64
	for i, cmd := range cmds {
		if cmd.Name != protocol.CommandConfig {
			continue
		}
		if v := configVersion(cmd); latest < 0 || v >= latestVersion {
			latest, latestVersion = i, v
		}
	}
	if latest < 0 {
		return cmds
	}
	out := cmds[:0:0]
	for i, cmd := range cmds {
		if cmd.Name == protocol.CommandConfig && i != latest {
			c.supersede(ctx, cmd, latestVersion)
			continue
		}
		out = append(out, cmd)
	}
	return out
}

// supersedeConfigs marks the device's pending config commands other than keep superseded by
// version; SendSystem calls it for a new config command, online device or not.
func (c *Commands) supersedeConfigs(ctx context.Context, keep store.Command, version int64) error {
	cmds, err := c.o.Store.PendingCommands(ctx, keep.TenantID, keep.DeviceID, c.o.Now.now())
	if err != nil {
		return err
	}
	for _, cmd := range cmds {
		if cmd.Name == protocol.CommandConfig && cmd.ID != keep.ID && configVersion(cmd) <= version {
			c.supersede(ctx, cmd, version)
		}
	}
	return nil
}

// supersede moves a pending config command to superseded. Losing the race to an ack or the
// sweeper is fine: the command is final either way.
func (c *Commands) supersede(ctx context.Context, cmd store.Command, version int64) {
	updated, err := c.o.Store.TransitionCommand(ctx, cmd.TenantID, cmd.ID, store.CommandTransition{
		From:  []store.CommandState{store.CommandQueued, store.CommandDelivered},
		To:    store.CommandSuperseded,
		Error: fmt.Sprintf("superseded by config version %d", version),
		At:    c.o.Now.now(),
	})
	if err != nil {
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			c.o.Logger.Warn("mark config command superseded", "command_id", cmd.ID, "error", err)
		}
		return
	}
	c.o.Metrics.CommandsPublished.WithLabelValues("superseded").Inc()
	c.event(updated)
}

// configVersion is the config version a stored config command carries (0 when unreadable).
func configVersion(cmd store.Command) int64 {
	pc, err := protocol.DecodeCommand([]byte(cmd.Payload))
	if err != nil || pc.Config == nil {
		return 0
	}
	return pc.Config.Version
}
