package store

import (
	"context"
	"fmt"
	"time"
)

// ConfigScope is the layer a config entry belongs to. A device's effective config is the
// project's entries, overridden by the device's own, overridden by keys the platform manages.
type ConfigScope string

// Config scopes a user can write.
const (
	ScopeProject ConfigScope = "project"
	ScopeDevice  ConfigScope = "device"
)

// ConfigType is the type of a config value, as the device will store it.
type ConfigType string

// Config value types.
const (
	TypeString ConfigType = "string"
	TypeInt    ConfigType = "int"
	TypeFloat  ConfigType = "float"
	TypeBool   ConfigType = "bool"
	TypeJSON   ConfigType = "json"
)

// ConfigEntry is one typed key-value pair in a scope. Value holds the JSON encoding of the
// value; for a secret entry Value is empty and ValueSealed holds it encrypted with the master
// key. Version starts at 1 and grows with every change, for optimistic concurrency.
type ConfigEntry struct {
	TenantID    string
	Scope       ConfigScope
	ScopeID     string // project or device ID
	Key         string
	Type        ConfigType
	Value       string
	Secret      bool
	ValueSealed []byte
	Version     int64
	UpdatedBy   string
	UpdatedAt   time.Time
}

// ConfigVersion is one version of a device's effective config: a snapshot, so history can
// show diffs and a rollback can restore it. Version is monotonic per device; Hash is over the
// content. Snapshot is the backend-independent JSON the config service writes (secret values
// inside it stay sealed).
type ConfigVersion struct {
	TenantID  string
	DeviceID  string
	Version   int64
	Hash      string
	Snapshot  string
	Reason    string // "edit", "rollback", "rotation", …
	CreatedBy string
	CreatedAt time.Time
}

// ConfigStore keeps config entries and device config versions.
type ConfigStore interface {
	ConfigEntry(ctx context.Context, tenantID string, scope ConfigScope, scopeID, key string) (ConfigEntry, error)
	// ConfigEntries lists a scope's entries ordered by key (NVS limits keep the list small).
	ConfigEntries(ctx context.Context, tenantID string, scope ConfigScope, scopeID string) ([]ConfigEntry, error)
	// PutConfigEntries writes a batch of one scope's entries atomically: readers see all of
	// the batch or none of it. Each entry's Version is the version the caller last read (0:
	// the key must not exist yet); if any does not match the stored one the whole batch is
	// refused with ErrConflict and nothing is written. On success each entry's Version and
	// UpdatedAt hold the new values. A batch that spans several scopes is refused with
	// ErrInvalidBatch.
	PutConfigEntries(ctx context.Context, entries []ConfigEntry) error
	// DeleteConfigEntry deletes a key if its stored version is version (ErrConflict otherwise).
	DeleteConfigEntry(ctx context.Context, tenantID string, scope ConfigScope, scopeID, key string, version int64) error
	// CreateConfigVersion appends a version; a version number already used for the device is
	// ErrConflict, which is how two writers racing to version N find out.
	CreateConfigVersion(ctx context.Context, v *ConfigVersion) error
	ConfigVersion(ctx context.Context, tenantID, deviceID string, version int64) (ConfigVersion, error)
	// LatestConfigVersion returns the highest version, or ErrNotFound when there is none.
	LatestConfigVersion(ctx context.Context, tenantID, deviceID string) (ConfigVersion, error)
	// ListConfigVersions pages through versions; the cursor is the version number.
	ListConfigVersions(ctx context.Context, tenantID, deviceID string, opts ListOptions) (Page[ConfigVersion], error)
}

// CheckConfigBatch returns ErrInvalidBatch when entries do not all belong to one scope of one
// tenant. Backends call it first in PutConfigEntries, so every backend refuses the same
// batches.
func CheckConfigBatch(entries []ConfigEntry) error {
	for _, e := range entries[min(1, len(entries)):] {
		if e.TenantID != entries[0].TenantID || e.Scope != entries[0].Scope || e.ScopeID != entries[0].ScopeID {
			return fmt.Errorf("store: put config entries: %w: %s %q and %s %q in one batch",
				ErrInvalidBatch, entries[0].Scope, entries[0].ScopeID, e.Scope, e.ScopeID)
		}
	}
	return nil
}
