package store

import (
	"context"
	"strconv"
	"strings"
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
	// Disabled, when set, keeps only disabled (true) or enabled (false) devices.
	Disabled *bool
	// ConfigStates, when not empty, keeps the devices whose config sync state is one of these.
	ConfigStates []ConfigSyncState
	// IDs, when not empty, keeps only these devices (of the tenant): a batched read by ID.
	// Callers keep it at most MaxPageSize long.
	IDs []string
	// Sort orders ListDevices (CountDevices ignores it). The zero value is ID order.
	Sort DeviceSort
}

// DeviceSort orders a device list by one of DeviceSortColumns, ties broken by ID in the same
// direction. A missing value (no project, never seen) sorts before any value ascending.
//
// ID order pages by keyset (the cursor is the last ID); every other order pages by offset
// (the cursor is "o" and the offset), which stays fast at fleet sizes (tens of thousands)
// because every sortable column is indexed with the tenant.
type DeviceSort struct {
	Column string
	Desc   bool
}

// Device sort columns.
const (
	SortDeviceID       = "id"
	SortDeviceName     = "name"
	SortDeviceStatus   = "status" // offline before online ascending
	SortDeviceProject  = "project"
	SortDeviceFirmware = "firmware"
	SortDeviceTags     = "tags"
	SortDeviceLastSeen = "last_seen"
	SortDeviceCreated  = "created"
)

// DeviceSortColumns lists the columns a device list sorts by.
var DeviceSortColumns = []string{SortDeviceID, SortDeviceName, SortDeviceStatus, SortDeviceProject,
	SortDeviceFirmware, SortDeviceTags, SortDeviceLastSeen, SortDeviceCreated}

// Keyset tells whether the sort pages by ID cursor (ID order) rather than by offset.
func (s DeviceSort) Keyset() bool { return s.Column == "" || s.Column == SortDeviceID }

// OffsetCursor returns the cursor of the page starting at offset.
func OffsetCursor(offset int) string { return "o" + strconv.Itoa(offset) }

// ParseOffsetCursor reads a cursor made by OffsetCursor; "" is offset 0.
func ParseOffsetCursor(c string) (int, error) {
	if c == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(c, "o"))
	if !strings.HasPrefix(c, "o") || err != nil || n < 0 {
		return 0, Invalid("cursor", "is not a cursor this server returned for this order")
	}
	return n, nil
}

// OffsetPage trims items fetched with limit+1 rows at offset to limit and sets the next
// offset cursor when there is more.
func OffsetPage[T any](items []T, offset, limit int) Page[T] {
	if len(items) <= limit {
		return Page[T]{Items: items}
	}
	return Page[T]{Items: items[:limit], NextCursor: OffsetCursor(offset + limit)}
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
	// DeviceCounts sums up a tenant's fleet in one grouped query (the dashboard).
	DeviceCounts(ctx context.Context, tenantID string) (DeviceCounts, error)
}

// DeviceCounts is a tenant's fleet at a glance. ByFirmware keys are reported firmware
// versions, "" for devices that never reported.
type DeviceCounts struct {
	Total, Online, Disabled int64
	ByFirmware              map[string]int64
}

// Add counts n devices with the given firmware, presence and disabled flag.
func (c *DeviceCounts) Add(firmware string, online, disabled bool, n int64) {
	if c.ByFirmware == nil {
		c.ByFirmware = map[string]int64{}
	}
	c.Total += n
	if online {
		c.Online += n
	}
	if disabled {
		c.Disabled += n
	}
	c.ByFirmware[firmware] += n
}
