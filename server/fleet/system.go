package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
)

// SystemCommand is a command another service builds for one device: config (the config
// service) and update (the OTA service). It goes through the same store, delivery, ack and
// expiry path as the commands people send, so its state is visible in the same places.
type SystemCommand struct {
	DeviceID string
	// Build makes the protocol command once the ID and expiry are known; it must set Name and
	// the matching params (Config or Update).
	Build func(id string, expiresAt int64) protocol.Command
	// TTL is how long the command may wait for an offline device; 0 means DefaultCommandTTL.
	TTL       time.Duration
	RolloutID string
	CreatedBy string
}

// SendSystem stores one system command for a device and publishes it when the device is
// online. The payload is encoded (and so validated against the protocol's limits) before
// anything is stored.
func (c *Commands) SendSystem(ctx context.Context, tenantID string, sc SystemCommand) (store.Command, error) {
	dev, err := c.o.Store.Device(ctx, tenantID, sc.DeviceID)
	if err != nil {
		return store.Command{}, err
	}
	ttl := sc.TTL
	if ttl == 0 {
		ttl = DefaultCommandTTL
	}
	if ttl < MinCommandTTL || ttl > MaxCommandTTL {
		return store.Command{}, store.Invalid("ttl_seconds", fmt.Sprintf("must be from %d to %d", int(MinCommandTTL/time.Second), int(MaxCommandTTL/time.Second)))
	}
	now := c.o.Now.now()
	expires := now.Add(ttl)
	id := store.NewID()
	pc := sc.Build(id, expires.UnixMilli())
	if pc.Name != protocol.CommandConfig && pc.Name != protocol.CommandUpdate && pc.Name != protocol.CommandCoreDump {
		return store.Command{}, unknownCommand(fmt.Sprintf("%q is not a system command", pc.Name))
	}
	payload, err := protocol.EncodeCommand(pc)
	if err != nil {
		return store.Command{}, paramError(err)
	}
	if err := CheckCommandFits(dev, payload); err != nil {
		return store.Command{}, err
	}
	cmd := store.Command{
		ID: id, TenantID: tenantID, DeviceID: dev.ID, Name: pc.Name, Payload: string(payload),
		State: store.CommandQueued, RolloutID: sc.RolloutID, CreatedBy: sc.CreatedBy,
		CreatedAt: now, ExpiresAt: expires, UpdatedAt: now,
	}
	if err := c.o.Store.CreateCommand(ctx, &cmd); err != nil {
		return store.Command{}, err
	}
	c.o.Metrics.CommandsCreated.WithLabelValues(pc.Name).Inc()
	c.event(cmd)
	if pc.Name == protocol.CommandConfig && pc.Config != nil {
		// Only the latest config matters: older versions still waiting are not sent.
		if err := c.supersedeConfigs(ctx, cmd, pc.Config.Version); err != nil {
			c.o.Logger.Warn("mark older config commands superseded", "tenant_id", tenantID, "device_id", dev.ID, "error", err)
		}
	}
	return c.publishNew(ctx, dev, cmd), nil
}
