package devconfig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
)

// ReasonRotation is the reason of a version made by a staged credential rotation (the
// platform's _mqtt_secret entry was written or dropped).
const ReasonRotation = "rotation"

// ErrNoRotation is returned by StageSecret when the service cannot switch credentials (no
// CredentialSwitcher was given).
var ErrNoRotation = errors.New("devconfig: staged credential rotation is not available")

// CredentialSwitcher makes a new secret a device's MQTT password once the device holds it,
// keeping its per-device key, and closes its live session (fleet.Devices.SwitchSecret).
type CredentialSwitcher interface {
	SwitchSecret(ctx context.Context, tenantID, deviceID, secret string) error
}

var _ CredentialSwitcher = (*fleet.Devices)(nil)

// Rotation is a staged credential rotation that the device has not applied yet.
type Rotation struct {
	// StagedAt is when the new secret was staged.
	StagedAt time.Time
	// ConfigVersion is the device's latest config version; it carries the new secret.
	ConfigVersion int64
}

// StageSecret starts a staged rotation of a device's MQTT secret: it draws a new secret,
// stores it as the device's platform entry protocol.KeyMQTTSecret (sealed at rest like every
// secret entry) and makes and sends a new config version, in which the secret is sealed end
// to end with the device key. The device's stored secret does not change: the old one keeps
// working until the device acknowledges a version that carries the new one (CommandAcked),
// and only then is the switch made. Staging again before that replaces the pending secret.
// The new secret is never returned: only the device receives it.
func (s *Service) StageSecret(ctx context.Context, tenantID, deviceID, by string) (Rotation, error) {
	if s.o.Credentials == nil {
		return Rotation{}, ErrNoRotation
	}
	dev, err := s.o.Store.Device(ctx, tenantID, deviceID)
	if err != nil {
		return Rotation{}, err
	}
	secret, err := fleet.NewSecret()
	if err != nil {
		return Rotation{}, err
	}
	plain, err := json.Marshal(secret)
	if err != nil {
		return Rotation{}, err
	}
	key := protocol.KeyMQTTSecret
	sealed, err := s.o.Keyring.Seal(plain, entryAD(tenantID, store.ScopeDevice, deviceID, key))
	if err != nil {
		return Rotation{}, fmt.Errorf("devconfig: seal secret: %w", err)
	}
	var version int64
	switch cur, err := s.o.Store.ConfigEntry(ctx, tenantID, store.ScopeDevice, deviceID, key); {
	case err == nil:
		version = cur.Version
	case !errors.Is(err, store.ErrNotFound):
		return Rotation{}, err
	}
	now := s.now()
	e := store.ConfigEntry{
		TenantID: tenantID, Scope: store.ScopeDevice, ScopeID: deviceID, Key: key, Type: store.TypeString,
		Secret: true, ValueSealed: sealed, Version: version, UpdatedBy: by, UpdatedAt: now,
	}
	if err := s.checkFits(ctx, tenantID, store.ScopeDevice, deviceID, []store.ConfigEntry{e}, "mode"); err != nil {
		return Rotation{}, err
	}
	if err := s.o.Store.PutConfigEntries(ctx, []store.ConfigEntry{e}); err != nil {
		return Rotation{}, err
	}
	v, _, err := s.update(ctx, dev, ReasonRotation, by)
	if err != nil {
		if v.Version == 0 {
			return Rotation{}, err
		}
		// The version is stored: the device gets it at its next boot refresh.
		s.o.Logger.Warn("staged secret not sent yet", "tenant_id", tenantID, "device_id", deviceID, "error", err)
	}
	s.o.Logger.Info("credential rotation staged", "tenant_id", tenantID, "device_id", deviceID, "version", v.Version)
	return Rotation{StagedAt: now, ConfigVersion: v.Version}, nil
}

// DropStagedSecret removes the device's staged secret entry, if any, and updates its config.
// An immediate rotation calls it: the device is reflashed with a new bundle, whose secret a
// stale staged one must not override.
func (s *Service) DropStagedSecret(ctx context.Context, tenantID, deviceID, by string) error {
	e, err := s.o.Store.ConfigEntry(ctx, tenantID, store.ScopeDevice, deviceID, protocol.KeyMQTTSecret)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.o.Store.DeleteConfigEntry(ctx, tenantID, store.ScopeDevice, deviceID, e.Key, e.Version); err != nil {
		return err
	}
	dev, err := s.o.Store.Device(ctx, tenantID, deviceID)
	if err != nil {
		return err
	}
	_, _, err = s.update(ctx, dev, ReasonRotation, by)
	return err
}

// PendingRotation returns the device's staged rotation, or nil when there is none or the
// device already switched to the staged secret.
func (s *Service) PendingRotation(ctx context.Context, dev store.Device) (*Rotation, error) {
	e, err := s.o.Store.ConfigEntry(ctx, dev.TenantID, store.ScopeDevice, dev.ID, protocol.KeyMQTTSecret)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	secret, err := s.stagedSecret(dev.TenantID, item{Key: e.Key, Sealed: e.ValueSealed, Scope: e.Scope, ScopeID: e.ScopeID})
	if err != nil {
		return nil, err
	}
	if fleet.SecretMatches(secret, dev.SecretHash) {
		return nil, nil
	}
	r := &Rotation{StagedAt: e.UpdatedAt}
	if v, err := s.o.Store.LatestConfigVersion(ctx, dev.TenantID, dev.ID); err == nil {
		r.ConfigVersion = v.Version
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return r, nil
}

// stagedSecret opens a _mqtt_secret item.
func (s *Service) stagedSecret(tenantID string, it item) (string, error) {
	plain, err := s.openItem(tenantID, it)
	if err != nil {
		return "", err
	}
	var secret string
	if err := json.Unmarshal(plain, &secret); err != nil || secret == "" {
		return "", fmt.Errorf("devconfig: staged secret of device %q is not a string", it.ScopeID)
	}
	return secret, nil
}

// rotationApplied runs after the device acknowledged config version: when that version
// carries the secret currently staged for the device and the device's stored secret is
// another, the switch is made (the device uses the new secret from its next connection, and
// the switch closes its session so that connection comes now).
//
// The _mqtt_secret entry stays afterwards: a config is complete and the device erases keys
// it does not list, so removing the entry would make the next config erase the secret the
// device connects with, and the device would fall back to the bundle's old one.
func (s *Service) rotationApplied(ctx context.Context, tenantID, deviceID string, version int64) {
	if s.o.Credentials == nil {
		return
	}
	e, err := s.o.Store.ConfigEntry(ctx, tenantID, store.ScopeDevice, deviceID, protocol.KeyMQTTSecret)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	warn := func(err error) {
		s.o.Logger.Warn("staged credentials not switched", "tenant_id", tenantID, "device_id", deviceID, "version", version, "error", err)
	}
	if err != nil {
		warn(err)
		return
	}
	v, err := s.o.Store.ConfigVersion(ctx, tenantID, deviceID, version)
	if err != nil {
		warn(err)
		return
	}
	snap, err := parseSnapshot(v)
	if err != nil {
		warn(err)
		return
	}
	staged, err := s.itemOf(e, LayerPlatform)
	if err != nil {
		warn(err)
		return
	}
	var carried *item
	for i := range snap.Entries {
		if snap.Entries[i].Key == protocol.KeyMQTTSecret {
			carried = &snap.Entries[i]
		}
	}
	if carried == nil || carried.Fingerprint != staged.Fingerprint {
		return // this version does not carry the staged secret
	}
	secret, err := s.stagedSecret(tenantID, staged)
	if err != nil {
		warn(err)
		return
	}
	dev, err := s.o.Store.Device(ctx, tenantID, deviceID)
	if err != nil {
		warn(err)
		return
	}
	if fleet.SecretMatches(secret, dev.SecretHash) {
		return // switched already (a later version or a duplicate ack)
	}
	if err := s.o.Credentials.SwitchSecret(ctx, tenantID, deviceID, secret); err != nil {
		warn(err)
		return
	}
	s.o.Logger.Info("staged credentials switched", "tenant_id", tenantID, "device_id", deviceID, "version", version)
}
