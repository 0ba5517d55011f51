package devconfig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
)

// EventConfig is the type of the event published on a tenant's stream when a device's config
// sync state changes; its data is a Sync.
const EventConfig = "config"

// Version reasons.
const (
	ReasonEdit     = "edit"
	ReasonRollback = "rollback"
	ReasonRefresh  = "refresh" // recomputed at a device's boot (platform keys changed)
	ReasonPush     = "push"
	ReasonPlatform = "platform" // a platform-managed key changed
)

const (
	// versionAttempts bounds the retries when another writer took the next version number.
	versionAttempts = 8
	// pageSize is the batch in which a project's devices are visited after a project change.
	pageSize = 200
)

// Store is the part of the store the config service uses.
type Store interface {
	store.ConfigStore
	Device(ctx context.Context, tenantID, id string) (store.Device, error)
	ListDevices(ctx context.Context, tenantID string, f store.DeviceFilter, opts store.ListOptions) (store.Page[store.Device], error)
	SetDeviceConfigSync(ctx context.Context, tenantID, id string, s store.ConfigSync) error
	Project(ctx context.Context, tenantID, id string) (store.Project, error)
	PendingCommands(ctx context.Context, tenantID, deviceID string, now time.Time) ([]store.Command, error)
	// Atomic applies a rollback's puts and deletes of entries together.
	store.Transactor
}

var _ Store = store.Store(nil)

// Sender sends system commands (fleet.Commands).
type Sender interface {
	SendSystem(ctx context.Context, tenantID string, sc fleet.SystemCommand) (store.Command, error)
}

var _ Sender = (*fleet.Commands)(nil)

// Options are the collaborators of Service.
type Options struct {
	Store   Store
	Keyring *seal.Keyring
	// FingerprintKey keys the HMAC that stands for secret values in content hashes; derive it
	// from the master key (seal.DeriveKey) so every replica computes the same hashes.
	FingerprintKey []byte
	Commands       Sender
	// Hub receives config sync events; nil publishes none.
	Hub *fleet.Hub
	// Endpoint gives the broker host, port and CA devices use (fleet.Devices.Endpoint); nil
	// leaves those platform keys out.
	Endpoint func() fleet.Endpoint
	// TenantEndpoint, when set, replaces Endpoint per tenant (fleet.Devices.EndpointFor), so
	// the platform keys of a tenant on its own broker name that broker.
	TenantEndpoint func(tenantID string) fleet.Endpoint
	Logger         *slog.Logger
	Now            func() time.Time
	// CommandTTL is how long a config command waits for an offline device (default
	// fleet.DefaultCommandTTL); after that the device still gets its config at its next boot.
	CommandTTL time.Duration
	// Credentials switches a device's MQTT secret once it applied a staged one
	// (fleet.Devices); nil refuses staged rotations.
	Credentials CredentialSwitcher
}

// Service manages config entries, computes and versions effective configs and delivers them.
// Everything it knows lives in the store, so any replica can serve any request or ack.
type Service struct {
	o Options
}

// New returns the config service.
func New(o Options) *Service {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{o: o}
}

var (
	_ fleet.ConfigRequester = (*Service)(nil)
	_ fleet.AckObserver     = (*Service)(nil)
)

func (s *Service) now() time.Time { return store.Timestamp(s.o.Now()) }

// ScopeExists returns store.ErrNotFound when the project or device does not exist in the
// tenant.
func (s *Service) ScopeExists(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID string) error {
	return s.checkScope(ctx, tenantID, scope, scopeID)
}

func (s *Service) checkScope(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID string) error {
	var err error
	switch scope {
	case store.ScopeProject:
		_, err = s.o.Store.Project(ctx, tenantID, scopeID)
	case store.ScopeDevice:
		_, err = s.o.Store.Device(ctx, tenantID, scopeID)
	default:
		return fmt.Errorf("devconfig: unknown scope %q", scope)
	}
	return err
}

// Entries lists a scope's entries, without the platform's own (reserved) keys.
func (s *Service) Entries(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID string) ([]store.ConfigEntry, error) {
	if err := s.checkScope(ctx, tenantID, scope, scopeID); err != nil {
		return nil, err
	}
	all, err := s.o.Store.ConfigEntries(ctx, tenantID, scope, scopeID)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, e := range all {
		if !protocol.ReservedConfigKey(e.Key) {
			out = append(out, e)
		}
	}
	return out, nil
}

// Entry returns one entry of a scope; a reserved key is never found.
func (s *Service) Entry(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID, key string) (store.ConfigEntry, error) {
	if err := s.checkScope(ctx, tenantID, scope, scopeID); err != nil {
		return store.ConfigEntry{}, err
	}
	if checkKey(key) != "" {
		return store.ConfigEntry{}, store.ErrNotFound
	}
	return s.o.Store.ConfigEntry(ctx, tenantID, scope, scopeID, key)
}

// Put writes a batch of entries to one scope, all or nothing: every entry is validated, the
// effective config of every affected device must still fit in one config command, and each
// entry's version must match the stored one (store.ErrConflict otherwise). Then a new config
// version is made and sent for each device whose effective content changed. Field errors name
// the entries as "entries[i].field".
func (s *Service) Put(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID string, inputs []Input, by string) ([]store.ConfigEntry, error) {
	if err := s.checkScope(ctx, tenantID, scope, scopeID); err != nil {
		return nil, err
	}
	fields := map[string]string{}
	if len(inputs) == 0 || len(inputs) > protocol.MaxConfigEntries {
		fields["entries"] = fmt.Sprintf("must hold 1 to %d entries", protocol.MaxConfigEntries)
	}
	seen := map[string]bool{}
	entries := make([]store.ConfigEntry, len(inputs))
	now := s.now()
	for i, in := range inputs {
		prefix := fmt.Sprintf("entries[%d].", i)
		value := checkInput(in, prefix, fields)
		if seen[in.Key] {
			fields[prefix+"key"] = "listed twice"
		}
		seen[in.Key] = true
		e := store.ConfigEntry{
			TenantID: tenantID, Scope: scope, ScopeID: scopeID, Key: in.Key, Type: in.Type,
			Secret: in.Secret, Version: in.Version, UpdatedBy: by, UpdatedAt: now,
		}
		if value != nil && in.Secret {
			sealed, err := s.o.Keyring.Seal(value, entryAD(tenantID, scope, scopeID, in.Key))
			if err != nil {
				return nil, fmt.Errorf("devconfig: seal secret: %w", err)
			}
			e.ValueSealed = sealed
		} else if value != nil {
			e.Value = string(value)
		}
		entries[i] = e
	}
	if len(fields) > 0 {
		return nil, &store.InvalidError{Fields: fields}
	}
	if err := s.checkFits(ctx, tenantID, scope, scopeID, entries, ""); err != nil {
		return nil, err
	}
	if err := s.o.Store.PutConfigEntries(ctx, entries); err != nil {
		return nil, err
	}
	s.propagate(ctx, tenantID, scope, scopeID, ReasonEdit, by)
	return entries, nil
}

// Delete removes one entry if its stored version is version (store.ErrConflict otherwise)
// and updates the affected devices.
func (s *Service) Delete(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID, key string, version int64, by string) error {
	if _, err := s.Entry(ctx, tenantID, scope, scopeID, key); err != nil {
		return err
	}
	if err := s.o.Store.DeleteConfigEntry(ctx, tenantID, scope, scopeID, key, version); err != nil {
		return err
	}
	s.propagate(ctx, tenantID, scope, scopeID, ReasonEdit, by)
	return nil
}

// propagate makes and sends a new version for every device affected by a change in a scope.
// The change is already stored, so a failure for one device is logged and the others go on:
// that device catches up at its next boot refresh, which recomputes its config.
func (s *Service) propagate(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID, reason, by string) {
	err := s.eachAffected(ctx, tenantID, scope, scopeID, func(dev store.Device) error {
		if _, _, err := s.update(ctx, dev, reason, by); err != nil {
			s.o.Logger.Warn("config not updated for device", "tenant_id", tenantID, "device_id", dev.ID, "error", err)
		}
		return nil
	})
	if err != nil {
		s.o.Logger.Warn("config change not propagated", "tenant_id", tenantID, "scope", scope, "scope_id", scopeID, "error", err)
	}
}

// eachAffected calls fn for the device of a device scope, or for each device linked to a
// project, in pages of pageSize.
func (s *Service) eachAffected(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID string, fn func(store.Device) error) error {
	if scope == store.ScopeDevice {
		dev, err := s.o.Store.Device(ctx, tenantID, scopeID)
		if err != nil {
			return err
		}
		return fn(dev)
	}
	opts := store.ListOptions{Limit: pageSize}
	for {
		page, err := s.o.Store.ListDevices(ctx, tenantID, store.DeviceFilter{ProjectID: scopeID}, opts)
		if err != nil {
			return err
		}
		for _, dev := range page.Items {
			if err := fn(dev); err != nil {
				return err
			}
		}
		if page.NextCursor == "" {
			return nil
		}
		opts.Cursor = page.NextCursor
	}
}

// checkFits refuses a change after which some affected device's effective config would not
// fit in one config command (protocol.MaxCommandSize, MaxConfigEntries). changed are the new
// entries of the scope; field is where the error goes ("entries" when empty).
func (s *Service) checkFits(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID string, changed []store.ConfigEntry, field string) error {
	if field == "" {
		field = "entries"
	}
	check := func(dev store.Device) error {
		l, err := s.layersOf(ctx, dev)
		if err != nil {
			return err
		}
		if scope == store.ScopeProject {
			l.project = overlay(l.project, changed)
		} else {
			l.device = overlay(l.device, changed)
		}
		items, err := s.merge(tenantID, l)
		if err != nil {
			return err
		}
		if len(items) > protocol.MaxConfigEntries {
			return store.Invalid(field, fmt.Sprintf("device %s would have %d keys, more than %d", dev.ID, len(items), protocol.MaxConfigEntries))
		}
		// Sizes do not depend on the key a secret is sealed with, so a zero key measures.
		p, err := s.params(dev, make([]byte, protocol.SecretKeySize), protocol.MaxSafeInteger, contentHash(items), items)
		if err != nil {
			return err
		}
		payload, err := protocol.EncodeCommand(protocol.Command{ID: store.NewID(), Name: protocol.CommandConfig,
			ExpiresAt: protocol.MaxSafeInteger, Config: p})
		if errors.Is(err, protocol.ErrTooLarge) {
			return store.Invalid(field, fmt.Sprintf("the config of device %s would exceed the %d-byte command limit (too_large)", dev.ID, protocol.MaxCommandSize))
		}
		if err != nil {
			return err
		}
		return s.checkDeviceLimits(dev, items, len(payload), field)
	}
	if scope == store.ScopeProject {
		// The project's own entries must fit even while no device is linked to it.
		if err := check(store.Device{TenantID: tenantID, ProjectID: scopeID}); err != nil {
			return err
		}
	}
	return s.eachAffected(ctx, tenantID, scope, scopeID, check)
}

// overlay returns base with changed put over it by key.
func overlay(base, changed []store.ConfigEntry) []store.ConfigEntry {
	byKey := map[string]int{}
	out := append([]store.ConfigEntry(nil), base...)
	for i, e := range out {
		byKey[e.Key] = i
	}
	for _, e := range changed {
		if i, ok := byKey[e.Key]; ok {
			out[i] = e
		} else {
			out = append(out, e)
		}
	}
	return out
}

// layersOf reads the entries a device's effective config is merged from.
func (s *Service) layersOf(ctx context.Context, dev store.Device) (layers, error) {
	var l layers
	var err error
	if dev.ProjectID != "" {
		if l.project, err = s.o.Store.ConfigEntries(ctx, dev.TenantID, store.ScopeProject, dev.ProjectID); err != nil {
			return l, err
		}
	}
	l.device, err = s.o.Store.ConfigEntries(ctx, dev.TenantID, store.ScopeDevice, dev.ID)
	return l, err
}

// effectiveItems computes a device's effective config from the stored entries.
func (s *Service) effectiveItems(ctx context.Context, dev store.Device) ([]item, error) {
	l, err := s.layersOf(ctx, dev)
	if err != nil {
		return nil, err
	}
	return s.merge(dev.TenantID, l)
}

// update recomputes a device's effective config and, when its content changed, stores a new
// version, marks the device pending and sends the config. It returns the device's current
// version (zero when the device has none) and whether it is new.
func (s *Service) update(ctx context.Context, dev store.Device, reason, by string) (store.ConfigVersion, bool, error) {
	items, err := s.effectiveItems(ctx, dev)
	if err != nil {
		return store.ConfigVersion{}, false, err
	}
	v, created, err := s.version(ctx, dev, items, reason, by)
	if err != nil || !created {
		return v, false, err
	}
	s.setSync(ctx, dev, func(cs *store.ConfigSync) bool {
		if cs.DesiredVersion > v.Version {
			return false // a newer version was made meanwhile
		}
		cs.DesiredVersion, cs.DesiredHash, cs.State, cs.Error = v.Version, v.Hash, store.ConfigPending, ""
		return true
	})
	if err := s.send(ctx, dev, v, items, by); err != nil {
		return v, true, err
	}
	return v, true, nil
}

// version stores items as the device's next version unless the latest has the same hash.
// A device that never had a version gets its first one only when it has entries of its own
// or of its project: the endpoint keys alone are already in its provisioning bundle.
func (s *Service) version(ctx context.Context, dev store.Device, items []item, reason, by string) (store.ConfigVersion, bool, error) {
	hash := contentHash(items)
	snap, err := json.Marshal(snapshot{Entries: items})
	if err != nil {
		return store.ConfigVersion{}, false, err
	}
	for range versionAttempts {
		latest, err := s.o.Store.LatestConfigVersion(ctx, dev.TenantID, dev.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if !hasUserContent(items) {
				return store.ConfigVersion{}, false, nil
			}
		case err != nil:
			return store.ConfigVersion{}, false, err
		case latest.Hash == hash:
			return latest, false, nil
		}
		v := store.ConfigVersion{
			TenantID: dev.TenantID, DeviceID: dev.ID, Version: latest.Version + 1, Hash: hash,
			Snapshot: string(snap), Reason: reason, CreatedBy: by, CreatedAt: s.now(),
		}
		err = s.o.Store.CreateConfigVersion(ctx, &v)
		if errors.Is(err, store.ErrConflict) {
			continue // another writer took this number: look again
		}
		if err != nil {
			return store.ConfigVersion{}, false, err
		}
		s.o.Logger.Info("config version created", "tenant_id", dev.TenantID, "device_id", dev.ID,
			"version", v.Version, "reason", reason)
		return v, true, nil
	}
	return store.ConfigVersion{}, false, fmt.Errorf("devconfig: device %q: %w: no free version number after %d attempts", dev.ID, store.ErrConflict, versionAttempts)
}

// send builds the config command of version v for the device and hands it to the command
// service, which stores it and publishes it when the device is online.
func (s *Service) send(ctx context.Context, dev store.Device, v store.ConfigVersion, items []item, by string) error {
	key, err := s.deviceKey(dev)
	if err != nil {
		return err
	}
	p, err := s.params(dev, key, v.Version, v.Hash, items)
	if err != nil {
		return err
	}
	// The device's declared limits (the command's size is checked by SendSystem).
	if err = s.checkDeviceLimits(dev, items, 0, "entries"); err == nil {
		_, err = s.o.Commands.SendSystem(ctx, dev.TenantID, fleet.SystemCommand{
			DeviceID:  dev.ID,
			TTL:       s.o.CommandTTL,
			CreatedBy: by,
			Build: func(id string, expiresAt int64) protocol.Command {
				return protocol.Command{ID: id, Name: protocol.CommandConfig, ExpiresAt: expiresAt, Config: p}
			},
		})
	}
	if err != nil {
		// Platform keys that changed after the last edit can push a config over the limit;
		// the device keeps its old config and the state says why.
		s.setSync(ctx, dev, func(cs *store.ConfigSync) bool {
			if cs.DesiredVersion != v.Version {
				return false
			}
			cs.State, cs.Error = store.ConfigFailed, "not sent: "+err.Error()
			return true
		})
		return fmt.Errorf("devconfig: send version %d to %q: %w", v.Version, dev.ID, err)
	}
	return nil
}

// Sync is a device's config delivery state, as events and the API show it.
type Sync struct {
	State          store.ConfigSyncState `json:"state"`
	DesiredVersion int64                 `json:"desired_version"`
	AppliedVersion int64                 `json:"applied_version"`
	Error          string                `json:"error,omitempty"`
	UpdatedAt      time.Time             `json:"updated_at"`
}

// SyncOf converts the stored state.
func SyncOf(cs store.ConfigSync) Sync {
	return Sync{State: cs.State, DesiredVersion: cs.DesiredVersion, AppliedVersion: cs.AppliedVersion, Error: cs.Error, UpdatedAt: cs.UpdatedAt}
}

// setSync re-reads the device's sync state, lets change edit it and stores it when change
// returns true, then publishes an event.
func (s *Service) setSync(ctx context.Context, dev store.Device, change func(*store.ConfigSync) bool) {
	cur, err := s.o.Store.Device(ctx, dev.TenantID, dev.ID)
	if err != nil {
		s.o.Logger.Warn("config sync state not read", "tenant_id", dev.TenantID, "device_id", dev.ID, "error", err)
		return
	}
	cs := cur.ConfigSync
	if !change(&cs) {
		return
	}
	cs.UpdatedAt = s.now()
	if err := s.o.Store.SetDeviceConfigSync(ctx, dev.TenantID, dev.ID, cs); err != nil {
		s.o.Logger.Warn("config sync state not stored", "tenant_id", dev.TenantID, "device_id", dev.ID, "error", err)
		return
	}
	if s.o.Hub != nil {
		s.o.Hub.Publish(fleet.Event{Type: EventConfig, TenantID: dev.TenantID, DeviceID: dev.ID, At: cs.UpdatedAt, Data: SyncOf(cs)})
	}
}

// ConfigRequest answers a device's boot refresh (fleet.ConfigRequester): its config is
// recomputed (platform keys may have changed while it was away) and, unless the device holds
// the current version already or a pending command carries it (ingestion has just
// re-published those), the current version is sent.
func (s *Service) ConfigRequest(ctx context.Context, ref fleet.DeviceRef, req protocol.ConfigRequest) error {
	dev, err := s.o.Store.Device(ctx, ref.TenantID, ref.DeviceID)
	if err != nil {
		return err
	}
	items, err := s.effectiveItems(ctx, dev)
	if err != nil {
		return err
	}
	v, created, err := s.version(ctx, dev, items, ReasonRefresh, "")
	if err != nil || v.Version == 0 {
		return err
	}
	if req.ConfigVersion == v.Version && (req.Hash == "" || req.Hash == v.Hash) {
		s.setSync(ctx, dev, func(cs *store.ConfigSync) bool {
			if cs.State == store.ConfigInSync && cs.AppliedVersion == v.Version && cs.DesiredVersion == v.Version {
				return false
			}
			cs.DesiredVersion, cs.DesiredHash, cs.AppliedVersion, cs.State, cs.Error = v.Version, v.Hash, v.Version, store.ConfigInSync, ""
			return true
		})
		return nil
	}
	if !created {
		pending, err := s.o.Store.PendingCommands(ctx, dev.TenantID, dev.ID, s.now())
		if err != nil {
			return err
		}
		for _, cmd := range pending {
			if cmd.Name == protocol.CommandConfig && commandVersion(cmd) == v.Version {
				return nil
			}
		}
	}
	s.setSync(ctx, dev, func(cs *store.ConfigSync) bool {
		cs.DesiredVersion, cs.DesiredHash, cs.AppliedVersion = v.Version, v.Hash, req.ConfigVersion
		cs.State, cs.Error = store.ConfigPending, ""
		return true
	})
	return s.send(ctx, dev, v, items, "")
}

// commandVersion is the config version a stored config command carries (0 when unreadable).
func commandVersion(cmd store.Command) int64 {
	c, err := protocol.DecodeCommand([]byte(cmd.Payload))
	if err != nil || c.Config == nil {
		return 0
	}
	return c.Config.Version
}

// CommandAcked records the outcome of a config command (fleet.AckObserver): ok moves the
// device to in_sync when it applied the version it should run; error or rejected for that
// version moves it to failed with the device's reason. An ack for an older version than the
// desired one records what the device runs and leaves the state pending; a late ack of a
// version older than the one already applied changes nothing (state never moves backwards).
func (s *Service) CommandAcked(ctx context.Context, cmd store.Command, ack protocol.Ack) {
	if cmd.Name != protocol.CommandConfig {
		return
	}
	version := commandVersion(cmd)
	if version == 0 {
		return
	}
	dev := store.Device{TenantID: cmd.TenantID, ID: cmd.DeviceID}
	s.setSync(ctx, dev, func(cs *store.ConfigSync) bool {
		if ack.Result == protocol.ResultOK {
			if version < cs.AppliedVersion {
				return false
			}
			cs.AppliedVersion = version
			if version == cs.DesiredVersion {
				cs.State, cs.Error = store.ConfigInSync, ""
			}
			return true
		}
		if version != cs.DesiredVersion {
			return false
		}
		reason := ack.Result
		if ack.Message != "" {
			reason += ": " + ack.Message
		}
		cs.State, cs.Error = store.ConfigFailed, reason
		return true
	})
	if ack.Result == protocol.ResultOK {
		s.o.Logger.Info("config applied", "tenant_id", cmd.TenantID, "device_id", cmd.DeviceID, "version", version)
		s.rotationApplied(ctx, cmd.TenantID, cmd.DeviceID, version)
	} else {
		s.o.Logger.Warn("config refused by device", "tenant_id", cmd.TenantID, "device_id", cmd.DeviceID,
			"version", version, "result", ack.Result, "message", ack.Message)
	}
}
