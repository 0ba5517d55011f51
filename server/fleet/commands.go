package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
)

// Command limits.
const (
	DefaultCommandTTL = 24 * time.Hour
	MaxCommandTTL     = 30 * 24 * time.Hour
	MinCommandTTL     = 10 * time.Second
	// MaxTargets bounds the devices one request may address, so one request cannot write an
	// unbounded number of rows.
	MaxTargets = 10000
	// MaxTargetIDs bounds an explicit device list.
	MaxTargetIDs = 1000

	publishTimeout = 5 * time.Second
)

// Connections is implemented by brokers that know their live connection table (the embedded
// broker). When the Bus offers it, it decides whether a device is online right now, which is
// authoritative; otherwise the stored presence decides (docs/protocol.md §6).
type Connections interface {
	Online(deviceID string) bool
}

// Router picks the broker of a tenant's devices: the embedded one or the tenant's own
// (package tenantbus). external is true for a tenant's own broker, whose connection table
// the server cannot see.
type Router interface {
	Route(tenantID string) (bus messaging.Bus, root string, external bool)
}

// unknownCommand is the bad input of a command name that cannot be sent this way; the API
// reports it as 422 too, with a code of its own.
func unknownCommand(reason string) *store.InvalidError {
	return &store.InvalidError{Fields: map[string]string{"name": reason}, Code: "unknown_command", Message: reason}
}

// Target selects the devices a command goes to: exactly one of the fields is set.
type Target struct {
	DeviceIDs []string
	Tag       string
	ProjectID string
	// Filter selects every device matching it, as the device list does ("select all N
	// matching"); an empty filter is every device of the tenant.
	Filter *store.DeviceFilter
}

// SendRequest is one command for a set of devices.
type SendRequest struct {
	Name   string
	Params json.RawMessage // the command's params object; empty means {}
	Target Target
	// TTL is how long the command may wait for an offline device; 0 means DefaultCommandTTL.
	TTL       time.Duration
	CreatedBy string
}

// CommandsOptions are the collaborators of Commands.
type CommandsOptions struct {
	Store Store
	Bus   messaging.Bus
	Root  string
	// Router, when set, replaces Bus and Root per tenant.
	Router  Router
	Hub     *Hub
	Metrics *Metrics
	Logger  *slog.Logger
	Now     Clock
	// SweepInterval is how often expired commands are marked (default 10 s); SweepTenants
	// bounds the tenants visited per tick (default 100), so one tick's work stays bounded
	// whatever the number of tenants.
	SweepInterval time.Duration
	SweepTenants  int
	// Window is how many commands may be outstanding (published, not acknowledged) on one
	// device connection (default DefaultWindow); AckWait is how long a slot waits for an ack
	// (default DefaultAckWait). They apply with the embedded broker, which tells connections
	// apart (messaging.Connection).
	Window  int
	AckWait time.Duration
}

// Commands stores commands, publishes them to devices, applies their acknowledgements and
// expires the ones nobody answered. State lives in the store, so any replica can apply an
// ack for a command another replica sent (TransitionCommand is a compare-and-set).
type Commands struct {
	o     CommandsOptions
	conns Connections
	// observers are told about applied acks (observers.go).
	observers ackObservers

	// windows are the delivery windows of connected devices, by device ID (delivery.go).
	winMu   sync.Mutex
	windows map[string]*window
}

// NewCommands returns the command service.
func NewCommands(o CommandsOptions) *Commands {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 10 * time.Second
	}
	if o.SweepTenants <= 0 {
		o.SweepTenants = 100
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	c := &Commands{o: o, windows: map[string]*window{}}
	c.conns, _ = o.Bus.(Connections)
	return c
}

// UserCommands are the commands a person or script may send through the commands API;
// config and update are sent by the config and OTA services.
func UserCommands() []string { return []string{protocol.CommandRestart, protocol.CommandDebug} }

// Send stores one command per target device and publishes it to those online. It returns the
// commands in target order.
func (c *Commands) Send(ctx context.Context, tenantID string, req SendRequest) ([]store.Command, error) {
	build, err := c.builder(req.Name, req.Params)
	if err != nil {
		return nil, err
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultCommandTTL
	}
	if ttl < MinCommandTTL || ttl > MaxCommandTTL {
		return nil, store.Invalid("ttl_seconds", fmt.Sprintf("must be from %d to %d", int(MinCommandTTL/time.Second), int(MaxCommandTTL/time.Second)))
	}
	devices, err := ResolveTarget(ctx, c.o.Store, tenantID, req.Target)
	if err != nil {
		return nil, err
	}
	now := c.o.Now.now()
	expires := now.Add(ttl)
	// Encode every payload before storing anything, so a bad request writes nothing.
	cmds := make([]store.Command, len(devices))
	for i, d := range devices {
		id := store.NewID()
		payload, err := protocol.EncodeCommand(build(id, expires.UnixMilli()))
		if err != nil {
			return nil, paramError(err)
		}
		if err := CheckCommandFits(d, payload); err != nil {
			return nil, err
		}
		cmds[i] = store.Command{
			ID: id, TenantID: tenantID, DeviceID: d.ID, Name: req.Name, Payload: string(payload),
			State: store.CommandQueued, CreatedBy: req.CreatedBy, CreatedAt: now, ExpiresAt: expires, UpdatedAt: now,
		}
	}
	// One transaction for the batch: a failure part-way leaves no command of it behind, and
	// nothing is counted or announced before all of them are stored.
	err = c.o.Store.Atomic(ctx, func(tx store.Store) error {
		for i := range cmds {
			if err := tx.CreateCommand(ctx, &cmds[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range cmds {
		c.o.Metrics.CommandsCreated.WithLabelValues(req.Name).Inc()
		c.event(cmds[i])
	}
	for i, d := range devices {
		cmds[i] = c.publishNew(ctx, d, cmds[i])
	}
	return cmds, nil
}

// builder validates name and params and returns a function making the protocol command.
func (c *Commands) builder(name string, raw json.RawMessage) (func(id string, expiresAt int64) protocol.Command, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		raw = json.RawMessage("{}")
	}
	decode := func(v any) error {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return store.Invalid("params", "must be an object with the fields of "+name+": "+err.Error())
		}
		return nil
	}
	switch name {
	case protocol.CommandRestart:
		var p protocol.RestartParams
		if err := decode(&p); err != nil {
			return nil, err
		}
		return func(id string, exp int64) protocol.Command {
			return protocol.Command{ID: id, Name: name, ExpiresAt: exp, Restart: &p}
		}, nil
	case protocol.CommandDebug:
		var p struct {
			Enabled   *bool  `json:"enabled"`
			Level     string `json:"level"`
			DurationS int    `json:"duration_s"`
		}
		if err := decode(&p); err != nil {
			return nil, err
		}
		if p.Enabled == nil {
			return nil, store.Invalid("params.enabled", "is required")
		}
		d := protocol.DebugParams{Enabled: *p.Enabled, Level: p.Level, DurationS: p.DurationS}
		if d.Level == "" {
			d.Level = protocol.LevelInfo
		}
		if d.DurationS == 0 {
			d.DurationS = protocol.DefaultDebugDuration
		}
		return func(id string, exp int64) protocol.Command {
			return protocol.Command{ID: id, Name: name, ExpiresAt: exp, Debug: &d}
		}, nil
	case protocol.CommandConfig, protocol.CommandUpdate, protocol.CommandCoreDump:
		return nil, unknownCommand(name + " is sent by the config, OTA and device error services, not through this API")
	}
	return nil, unknownCommand(fmt.Sprintf("unknown command %q (one of restart, debug)", name))
}

// paramError turns an encoder error (a *protocol.FieldError naming e.g. "params.level")
// into invalid input.
func paramError(err error) error {
	if f := protocol.Field(err); f != "" {
		var fe *protocol.FieldError
		errors.As(err, &fe)
		return store.Invalid(f, fe.Reason)
	}
	return store.Invalid("params", protocol.Class(err))
}

// TargetStore is what ResolveTarget reads.
type TargetStore interface {
	Device(ctx context.Context, tenantID, id string) (store.Device, error)
	Project(ctx context.Context, tenantID, id string) (store.Project, error)
	ListDevices(ctx context.Context, tenantID string, f store.DeviceFilter, o store.ListOptions) (store.Page[store.Device], error)
}

// ResolveTarget turns a target into devices of the tenant: exactly one of explicit IDs (at
// most MaxTargetIDs, each once), a tag, a project or a device filter, matching 1 to MaxTargets devices. Bad
// targets are store.InvalidError on the field to fix. Commands and config pushes share it.
func ResolveTarget(ctx context.Context, st TargetStore, tenantID string, t Target) ([]store.Device, error) {
	set := 0
	if t.DeviceIDs != nil {
		set++
	}
	if t.Tag != "" {
		set++
	}
	if t.ProjectID != "" {
		set++
	}
	if t.Filter != nil {
		set++
	}
	if set != 1 {
		return nil, store.Invalid("target", "set exactly one of device_ids, tag, project_id, filter")
	}
	if t.DeviceIDs != nil {
		if len(t.DeviceIDs) == 0 || len(t.DeviceIDs) > MaxTargetIDs {
			return nil, store.Invalid("target.device_ids", fmt.Sprintf("must list 1 to %d devices", MaxTargetIDs))
		}
		seen := map[string]bool{}
		out := make([]store.Device, 0, len(t.DeviceIDs))
		for i, id := range t.DeviceIDs {
			field := fmt.Sprintf("target.device_ids[%d]", i)
			if seen[id] {
				return nil, store.Invalid(field, "listed twice")
			}
			seen[id] = true
			if !protocol.ValidDeviceID(id) {
				return nil, store.Invalid(field, "no such device")
			}
			d, err := st.Device(ctx, tenantID, id)
			if errors.Is(err, store.ErrNotFound) {
				return nil, store.Invalid(field, "no such device")
			}
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
		return out, nil
	}
	f := store.DeviceFilter{Tag: t.Tag, ProjectID: t.ProjectID}
	field := "target.tag"
	if t.Filter != nil {
		f, field = *t.Filter, "target.filter"
		f.Sort = store.DeviceSort{}
	}
	if t.ProjectID != "" {
		field = "target.project_id"
		if _, err := st.Project(ctx, tenantID, t.ProjectID); errors.Is(err, store.ErrNotFound) {
			return nil, store.Invalid(field, "no such project")
		} else if err != nil {
			return nil, err
		}
	}
	var out []store.Device
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := st.ListDevices(ctx, tenantID, f, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if len(out) > MaxTargets {
			return nil, store.Invalid(field, fmt.Sprintf("matches more than %d devices", MaxTargets))
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	if len(out) == 0 {
		return nil, store.Invalid(field, "matches no device")
	}
	return out, nil
}

func (c *Commands) online(d store.Device) bool {
	if _, _, external := c.route(d.TenantID); external {
		return d.Presence.Online
	}
	if c.conns != nil {
		return c.conns.Online(d.ID)
	}
	return d.Presence.Online
}

// publishNew hands a command just stored to delivery: through the device's window when its
// broker tells connections apart, else published at once when the device is online.
func (c *Commands) publishNew(ctx context.Context, d store.Device, cmd store.Command) store.Command {
	if _, _, windowed := c.connection(cmd.TenantID, cmd.DeviceID); windowed {
		return c.enqueue(ctx, cmd)
	}
	if c.online(d) {
		cmd, _ = c.deliver(ctx, cmd)
	}
	return cmd
}

// deliver publishes a command (QoS 1) and marks it delivered once the broker accepted it. A
// command already delivered is published again (redelivery after a reconnect) and keeps its
// state. ok is false when the broker refused it: it stays queued for the next connect.
func (c *Commands) deliver(ctx context.Context, cmd store.Command) (_ store.Command, ok bool) {
	bus, root, _ := c.route(cmd.TenantID)
	if bus == nil {
		// No broker in this process (embedded broker disabled, no bridge yet): the command
		// stays queued and expires unless a process with a broker delivers it.
		c.o.Metrics.CommandsPublished.WithLabelValues("no_broker").Inc()
		return cmd, false
	}
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	err := bus.Publish(pctx, messaging.Message{
		Topic: protocol.DownlinkCommand(root, cmd.DeviceID), Payload: []byte(cmd.Payload), QoS: 1,
	})
	if err != nil {
		c.o.Metrics.CommandsPublished.WithLabelValues("error").Inc()
		c.o.Logger.Warn("publish command", "tenant_id", cmd.TenantID, "device_id", cmd.DeviceID, "command_id", cmd.ID, "error", err)
		return cmd, false
	}
	c.o.Metrics.CommandsPublished.WithLabelValues("ok").Inc()
	if cmd.State != store.CommandQueued {
		return cmd, true
	}
	updated, err := c.o.Store.TransitionCommand(ctx, cmd.TenantID, cmd.ID, store.CommandTransition{
		From: []store.CommandState{store.CommandQueued}, To: store.CommandDelivered, At: c.o.Now.now(),
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		// Acked (or expired) between the publish and now: read what it became.
		if cur, err := c.o.Store.Command(ctx, cmd.TenantID, cmd.ID); err == nil {
			return cur, true
		}
		return cmd, true
	case err != nil:
		c.o.Logger.Warn("mark command delivered", "command_id", cmd.ID, "error", err)
		return cmd, true
	}
	c.event(updated)
	return updated, true
}

// route returns the bus and topic root of a tenant's devices.
func (c *Commands) route(tenantID string) (messaging.Bus, string, bool) {
	if c.o.Router != nil {
		return c.o.Router.Route(tenantID)
	}
	return c.o.Bus, c.o.Root, false
}

// DeliverPending publishes a device's pending, unexpired commands, oldest first, superseded
// config versions left out. Ingestion calls it when the device comes online and when it asks
// for its config at boot. With the embedded broker, commands go out through the device's
// window: once per connection, at most Window unacknowledged at a time, the next one as each
// ack arrives; calling it again on the same connection sends nothing twice. With a tenant's
// own broker, whose connections the server cannot see, every call sends them all.
func (c *Commands) DeliverPending(ctx context.Context, tenantID, deviceID string) error {
	if _, _, windowed := c.connection(tenantID, deviceID); windowed {
		_, err := c.pump(ctx, tenantID, deviceID)
		return err
	}
	cmds, err := c.o.Store.PendingCommands(ctx, tenantID, deviceID, c.o.Now.now())
	if err != nil {
		return err
	}
	for _, cmd := range c.coalesce(ctx, cmds) {
		if _, ok := c.deliver(ctx, cmd); !ok {
			return nil // the broker refused; the next connect retries, in order
		}
	}
	return nil
}

// HandleAck applies a device's acknowledgement. Unknown IDs, commands of other devices and
// repeated acks are counted and dropped.
func (c *Commands) HandleAck(ctx context.Context, tenantID, deviceID string, ack protocol.Ack) error {
	cmd, err := c.o.Store.Command(ctx, tenantID, ack.ID)
	if errors.Is(err, store.ErrNotFound) {
		c.o.Metrics.Acks.WithLabelValues("unknown").Inc()
		return nil
	}
	if err != nil {
		return err
	}
	if cmd.DeviceID != deviceID {
		c.o.Metrics.Acks.WithLabelValues("foreign").Inc()
		return nil
	}
	// Whatever became of it, the device has answered: its window slot is free.
	defer c.settled(ctx, tenantID, deviceID, ack.ID)
	t := store.CommandTransition{
		From:     []store.CommandState{store.CommandQueued, store.CommandDelivered},
		To:       store.CommandSucceeded,
		Answered: true,
		At:       c.o.Now.now(),
	}
	if encoded, err := protocol.EncodeAck(ack); err == nil {
		t.Result = string(encoded)
	}
	if ack.Result != protocol.ResultOK {
		t.To = store.CommandFailed
		t.Error = ack.Result
		if ack.Message != "" {
			t.Error += ": " + ack.Message
		}
	}
	updated, err := c.o.Store.TransitionCommand(ctx, tenantID, ack.ID, t)
	if errors.Is(err, store.ErrConflict) {
		c.o.Metrics.Acks.WithLabelValues("duplicate").Inc()
		return nil
	}
	if err != nil {
		return err
	}
	c.o.Metrics.Acks.WithLabelValues(string(updated.State)).Inc()
	c.event(updated)
	c.notifyAck(ctx, updated, ack)
	return nil
}

// Run expires commands nobody acknowledged until ctx ends: every SweepInterval it visits up
// to SweepTenants tenants, continuing where the previous tick stopped.
func (c *Commands) Run(ctx context.Context) error {
	t := time.NewTicker(c.o.SweepInterval)
	defer t.Stop()
	cursor := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.refill(ctx)
			next, err := c.SweepOnce(ctx, cursor)
			if err != nil && ctx.Err() == nil {
				c.o.Logger.Warn("expire commands", "error", err)
			}
			cursor = next
		}
	}
}

// SweepOnce expires the commands of one page of tenants starting at cursor and returns the
// cursor of the next page ("" after the last).
func (c *Commands) SweepOnce(ctx context.Context, cursor string) (string, error) {
	page, err := c.o.Store.ListTenants(ctx, store.ListOptions{Limit: c.o.SweepTenants, Cursor: cursor})
	if err != nil {
		return "", err
	}
	now := c.o.Now.now()
	for _, t := range page.Items {
		n, err := c.o.Store.ExpireCommands(ctx, t.ID, now)
		if err != nil {
			return page.NextCursor, err
		}
		if n > 0 {
			c.o.Metrics.CommandsExpired.Add(float64(n))
			c.o.Hub.Publish(Event{Type: EventCommandsExpired, TenantID: t.ID, At: now, Data: map[string]any{"count": n}})
		}
	}
	return page.NextCursor, nil
}

// CommandEvent is the data of a command event.
type CommandEvent struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

func (c *Commands) event(cmd store.Command) {
	c.o.Hub.Publish(Event{Type: EventCommand, TenantID: cmd.TenantID, DeviceID: cmd.DeviceID, At: cmd.UpdatedAt,
		Data: CommandEvent{ID: cmd.ID, Name: cmd.Name, State: string(cmd.State), Error: cmd.Error}})
}
