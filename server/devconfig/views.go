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

// EffectiveEntry is one key of a device's effective config with the layer it came from.
// Value is nil for a secret: secrets never leave the service in clear text.
type EffectiveEntry struct {
	Key    string
	Type   store.ConfigType
	Value  json.RawMessage
	Secret bool
	Layer  Layer
	// Source is the project or device whose entry it is ("" for the endpoint keys).
	Source string
}

// Effective is a device's current config version with provenance and its delivery state.
// Version is 0 when the device has no config yet.
type Effective struct {
	DeviceID  string
	Version   int64
	Hash      string
	Reason    string
	CreatedBy string
	CreatedAt time.Time
	Entries   []EffectiveEntry
	Sync      Sync
}

func effectiveEntries(items []item) []EffectiveEntry {
	out := make([]EffectiveEntry, len(items))
	for i, it := range items {
		out[i] = EffectiveEntry{Key: it.Key, Type: it.Type, Secret: it.Secret, Layer: it.Layer, Source: it.ScopeID}
		if !it.Secret {
			out[i].Value = it.Value
		}
	}
	return out
}

// Effective returns the device's latest config version, or, when it has none, what its
// config would be (version 0).
func (s *Service) Effective(ctx context.Context, tenantID, deviceID string) (Effective, error) {
	dev, err := s.o.Store.Device(ctx, tenantID, deviceID)
	if err != nil {
		return Effective{}, err
	}
	out := Effective{DeviceID: dev.ID, Sync: SyncOf(dev.ConfigSync)}
	v, err := s.o.Store.LatestConfigVersion(ctx, tenantID, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		items, err := s.effectiveItems(ctx, dev)
		if err != nil {
			return Effective{}, err
		}
		out.Entries, out.Hash = effectiveEntries(items), contentHash(items)
		return out, nil
	}
	if err != nil {
		return Effective{}, err
	}
	snap, err := parseSnapshot(v)
	if err != nil {
		return Effective{}, err
	}
	out.Version, out.Hash, out.Reason, out.CreatedBy, out.CreatedAt = v.Version, v.Hash, v.Reason, v.CreatedBy, v.CreatedAt
	out.Entries = effectiveEntries(snap.Entries)
	return out, nil
}

// Change is one key's difference between a version and the one before it. Old and New are
// nil for secrets, whose values are masked.
type Change struct {
	Key    string
	Op     string // added, removed, changed
	Type   store.ConfigType
	Secret bool
	Layer  Layer
	Old    json.RawMessage
	New    json.RawMessage
}

// Change operations.
const (
	OpAdded   = "added"
	OpRemoved = "removed"
	OpChanged = "changed"
)

// VersionInfo is one version of a device's config with its diff against the previous one.
type VersionInfo struct {
	Version   int64
	Hash      string
	Reason    string
	CreatedBy string
	CreatedAt time.Time
	Changes   []Change
}

// diff lists the changes from prev to cur, by key.
func diff(prev, cur []item) []Change {
	old := map[string]item{}
	for _, it := range prev {
		old[it.Key] = it
	}
	var out []Change
	mask := func(it item) json.RawMessage {
		if it.Secret {
			return nil
		}
		return it.Value
	}
	for _, it := range cur {
		o, ok := old[it.Key]
		delete(old, it.Key)
		switch {
		case !ok:
			out = append(out, Change{Key: it.Key, Op: OpAdded, Type: it.Type, Secret: it.Secret, Layer: it.Layer, New: mask(it)})
		case !sameContent(o, it) || o.Layer != it.Layer:
			out = append(out, Change{Key: it.Key, Op: OpChanged, Type: it.Type, Secret: it.Secret || o.Secret, Layer: it.Layer, Old: mask(o), New: mask(it)})
		}
	}
	for _, it := range prev {
		if _, gone := old[it.Key]; gone {
			out = append(out, Change{Key: it.Key, Op: OpRemoved, Type: it.Type, Secret: it.Secret, Layer: it.Layer, Old: mask(it)})
		}
	}
	return out
}

// Versions pages through a device's versions, newest first, each with its diff.
func (s *Service) Versions(ctx context.Context, tenantID, deviceID string, opts store.ListOptions) (store.Page[VersionInfo], error) {
	if _, err := s.o.Store.Device(ctx, tenantID, deviceID); err != nil {
		return store.Page[VersionInfo]{}, err
	}
	opts.Desc = true
	page, err := s.o.Store.ListConfigVersions(ctx, tenantID, deviceID, opts)
	if err != nil {
		return store.Page[VersionInfo]{}, err
	}
	out := store.Page[VersionInfo]{NextCursor: page.NextCursor, Items: make([]VersionInfo, len(page.Items))}
	for i, v := range page.Items {
		cur, err := parseSnapshot(v)
		if err != nil {
			return out, err
		}
		var prev snapshot
		if i+1 < len(page.Items) && page.Items[i+1].Version == v.Version-1 {
			prev, err = parseSnapshot(page.Items[i+1])
		} else if v.Version > 1 {
			var pv store.ConfigVersion
			pv, err = s.o.Store.ConfigVersion(ctx, tenantID, deviceID, v.Version-1)
			if err == nil {
				prev, err = parseSnapshot(pv)
			} else if errors.Is(err, store.ErrNotFound) {
				err = nil
			}
		}
		if err != nil {
			return out, err
		}
		out.Items[i] = VersionInfo{Version: v.Version, Hash: v.Hash, Reason: v.Reason, CreatedBy: v.CreatedBy,
			CreatedAt: v.CreatedAt, Changes: diff(prev.Entries, cur.Entries)}
	}
	return out, nil
}

// Rollback makes the device's effective config equal to version's again, as a new version
// (history is never rewritten). It works on the device layer only: for each key of the old
// version whose value differs from what the project gives now, a device entry with the old
// value is written (secrets included, re-sealed for the device scope); device entries the old
// version did not have, or whose old value the project gives anyway, are removed. Project
// entries are not touched, so other devices are unaffected; a key the project added after
// version stays effective, because a device cannot hide a project key. It returns the
// resulting effective config.
func (s *Service) Rollback(ctx context.Context, tenantID, deviceID string, version int64, by string) (Effective, error) {
	dev, err := s.o.Store.Device(ctx, tenantID, deviceID)
	if err != nil {
		return Effective{}, err
	}
	if version < 1 {
		return Effective{}, store.Invalid("version", "must be a version number of this device")
	}
	target, err := s.o.Store.ConfigVersion(ctx, tenantID, deviceID, version)
	if errors.Is(err, store.ErrNotFound) {
		return Effective{}, store.Invalid("version", "this device has no such config version")
	}
	if err != nil {
		return Effective{}, err
	}
	snap, err := parseSnapshot(target)
	if err != nil {
		return Effective{}, err
	}
	l, err := s.layersOf(ctx, dev)
	if err != nil {
		return Effective{}, err
	}
	project := map[string]item{}
	for _, e := range l.project {
		it, err := s.itemOf(e, LayerProject)
		if err != nil {
			return Effective{}, err
		}
		project[e.Key] = it
	}
	current := map[string]store.ConfigEntry{}
	for _, e := range l.device {
		if !protocol.ReservedConfigKey(e.Key) {
			current[e.Key] = e
		}
	}
	now := s.now()
	var puts []store.ConfigEntry
	keep := map[string]bool{}
	for _, it := range snap.Entries {
		if it.Layer == LayerPlatform {
			continue
		}
		if p, ok := project[it.Key]; ok && sameContent(p, it) {
			continue // the project gives this value: no device override needed
		}
		keep[it.Key] = true
		cur, exists := current[it.Key]
		if exists {
			have, err := s.itemOf(cur, LayerDevice)
			if err != nil {
				return Effective{}, err
			}
			if sameContent(have, it) {
				continue
			}
		}
		e := store.ConfigEntry{TenantID: tenantID, Scope: store.ScopeDevice, ScopeID: deviceID, Key: it.Key,
			Type: it.Type, Secret: it.Secret, Version: cur.Version, UpdatedBy: by, UpdatedAt: now}
		if it.Secret {
			plain, err := s.openItem(tenantID, it)
			if err != nil {
				return Effective{}, err
			}
			if e.ValueSealed, err = s.o.Keyring.Seal(plain, entryAD(tenantID, store.ScopeDevice, deviceID, it.Key)); err != nil {
				return Effective{}, fmt.Errorf("devconfig: seal secret: %w", err)
			}
		} else {
			e.Value = string(it.Value)
		}
		puts = append(puts, e)
	}
	// The puts and the deletes restore one snapshot: apply them together, so a conflict on
	// the last key does not leave the device's entries half rolled back.
	err = s.o.Store.Atomic(ctx, func(tx store.Store) error {
		if len(puts) > 0 {
			if err := tx.PutConfigEntries(ctx, puts); err != nil {
				return err
			}
		}
		for key, e := range current {
			if !keep[key] {
				if err := tx.DeleteConfigEntry(ctx, tenantID, store.ScopeDevice, deviceID, key, e.Version); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return Effective{}, err
	}
	if _, _, err := s.update(ctx, dev, ReasonRollback, by); err != nil {
		return Effective{}, err
	}
	return s.Effective(ctx, tenantID, deviceID)
}

// PushResult is what Push did for one device.
type PushResult struct {
	DeviceID  string
	Version   int64 // 0: the device has no config, nothing was sent
	CommandID string
	Error     string
}

// Push sends each targeted device its current config again (making a new version first when
// its effective content changed), for example after a device was wiped. Targets resolve like
// command targets: explicit IDs, a tag or a project, at most fleet.MaxTargets devices.
func (s *Service) Push(ctx context.Context, tenantID string, t fleet.Target, by string) ([]PushResult, error) {
	devices, err := fleet.ResolveTarget(ctx, s.o.Store, tenantID, t)
	if err != nil {
		return nil, err
	}
	out := make([]PushResult, 0, len(devices))
	for _, dev := range devices {
		r := PushResult{DeviceID: dev.ID}
		items, err := s.effectiveItems(ctx, dev)
		var v store.ConfigVersion
		var created bool
		if err == nil {
			v, created, err = s.version(ctx, dev, items, ReasonPush, by)
		}
		if err == nil && v.Version > 0 {
			r.Version = v.Version
			s.setSync(ctx, dev, func(cs *store.ConfigSync) bool {
				if cs.DesiredVersion > v.Version || !created && cs.State == store.ConfigInSync && cs.AppliedVersion == v.Version {
					return false
				}
				cs.DesiredVersion, cs.DesiredHash, cs.State, cs.Error = v.Version, v.Hash, store.ConfigPending, ""
				return true
			})
			err = s.send(ctx, dev, v, items, by)
		}
		if err != nil {
			s.o.Logger.Warn("config push failed", "tenant_id", tenantID, "device_id", dev.ID, "error", err)
			r.Error = "not sent"
		}
		out = append(out, r)
	}
	return out, nil
}
