package store

import (
	"context"
	"time"
)

// Device is one ESP32. Its ID is its MQTT username and client ID. Only the SHA-256 of its
// secret is stored; KeySealed is the per-device key (which encrypts secret config values end
// to end) sealed with the master key.
//
// Presence, metadata and config state are written by different goroutines (and replicas) at
// once, so each has its own update method that touches only its own fields.
type Device struct {
	ID         string
	TenantID   string
	Name       string
	ProjectID  string // empty when not linked to a project
	Tags       []string
	SecretHash []byte
	KeySealed  []byte
	Disabled   bool

	CredentialsRotatedAt time.Time

	Presence   Presence
	Metadata   DeviceMetadata
	ConfigSync ConfigSync

	CreatedAt time.Time
	UpdatedAt time.Time
}

// Presence is whether the device is connected, from the broker's view. ChangedAt orders
// updates: an older presence report never overwrites a newer one.
type Presence struct {
	Online     bool
	ChangedAt  time.Time
	LastSeenAt time.Time
}

// DeviceMetadata is what the device reports at every boot.
type DeviceMetadata struct {
	FirmwareVersion string
	ProjectName     string
	ChipModel       string
	ChipRevision    int
	IDFVersion      string
	MAC             string
	IP              string
	RSSI            int
	FreeHeap        int64
	UptimeSeconds   int64
	ResetReason     string
	ConfigVersion   int64
	ProtocolVersion int
	UpdatedAt       time.Time

	// The limits the device declares (protocol.DeviceLimits); 0: none declared, the
	// protocol's own limits apply.
	LimitCommandBytes int64
	LimitConfigBytes  int64
}

// ConfigSyncState tells whether a device runs its current effective config.
type ConfigSyncState string

// Config sync states.
const (
	ConfigInSync  ConfigSyncState = "in_sync"
	ConfigPending ConfigSyncState = "pending"
	ConfigFailed  ConfigSyncState = "failed"
)

// ConfigSync is the device's config delivery state: the version it should run, the one it
// reported applying, and the device's reason when it failed.
type ConfigSync struct {
	DesiredVersion int64
	DesiredHash    string
	AppliedVersion int64
	State          ConfigSyncState
	Error          string
	UpdatedAt      time.Time
}

// DeviceFilter narrows a device list. Empty fields do not filter.
type DeviceFilter struct {
	ProjectID       string
	Tag             string
	Online          *bool
	FirmwareVersion string
	// Search matches a substring of the name (case-insensitive) or a prefix of the ID.
	Search string
}

// DeviceAuth is what the broker needs to authenticate a connecting device.
type DeviceAuth struct {
	DeviceID   string
	TenantID   string
	SecretHash []byte
	Disabled   bool
}

// DeviceStore manages devices.
type DeviceStore interface {
	CreateDevice(ctx context.Context, d *Device) error
	Device(ctx context.Context, tenantID, id string) (Device, error)
	ListDevices(ctx context.Context, tenantID string, f DeviceFilter, opts ListOptions) (Page[Device], error)
	// UpdateDevice saves Name, ProjectID, Tags and Disabled and sets UpdatedAt; it leaves
	// credentials, presence, metadata and config state alone.
	UpdateDevice(ctx context.Context, d *Device) error
	DeleteDevice(ctx context.Context, tenantID, id string) error
	// SetDeviceCredentials replaces the secret hash and the sealed key (rotation).
	SetDeviceCredentials(ctx context.Context, tenantID, id string, secretHash, keySealed []byte, at time.Time) error
	// SetDevicePresence records presence unless a newer one (by ChangedAt) is stored already.
	SetDevicePresence(ctx context.Context, tenantID, id string, p Presence) error
	// TouchDevices moves LastSeenAt forward for many devices at once (batched ingestion).
	TouchDevices(ctx context.Context, tenantID string, ids []string, at time.Time) error
	SetDeviceMetadata(ctx context.Context, tenantID, id string, m DeviceMetadata) error
	SetDeviceConfigSync(ctx context.Context, tenantID, id string, s ConfigSync) error
	// DeviceAuth is the broker's entry point: device IDs are unique across tenants.
	DeviceAuth(ctx context.Context, deviceID string) (DeviceAuth, error)
	// CountDevices counts a tenant's devices matching f.
	CountDevices(ctx context.Context, tenantID string, f DeviceFilter) (int64, error)
}
