package store

import (
	"context"
	"time"
)

// SampleKind tells what a device sample records.
type SampleKind string

// Sample kinds.
const (
	SamplePresence SampleKind = "presence" // Online changed
	SampleMetadata SampleKind = "metadata" // the device reported RSSI, free heap and uptime
)

// DeviceSample is one point of a device's history: a presence change (Online) or a metadata
// report (RSSI, FreeHeap, UptimeSeconds).
type DeviceSample struct {
	TenantID      string
	DeviceID      string
	At            time.Time
	Kind          SampleKind
	Online        bool
	RSSI          int
	FreeHeap      int64
	UptimeSeconds int64
}

// FleetSample is a tenant's device count at one moment.
type FleetSample struct {
	TenantID      string
	At            time.Time
	Online, Total int64
}

// MaxSamples bounds one history read.
const MaxSamples = 5000

// HistoryStore keeps presence and health over time, bounded by a retention the caller sweeps
// with PruneHistory.
type HistoryStore interface {
	AddDeviceSample(ctx context.Context, s DeviceSample) error
	// DeviceSamples returns a device's samples at or after since, oldest first: the newest
	// limit of them (at most MaxSamples).
	DeviceSamples(ctx context.Context, tenantID, deviceID string, since time.Time, limit int) ([]DeviceSample, error)
	// AddFleetSample records a tenant's count; a sample at the same At exists already is
	// ErrConflict (replicas taking the same snapshot).
	AddFleetSample(ctx context.Context, s FleetSample) error
	// FleetSamples is DeviceSamples for a tenant's counts.
	FleetSamples(ctx context.Context, tenantID string, since time.Time, limit int) ([]FleetSample, error)
	// PruneHistory deletes every tenant's samples older than before and returns how many.
	PruneHistory(ctx context.Context, before time.Time) (int64, error)
}

// SampleLimit bounds a history read's limit to 1..MaxSamples.
func SampleLimit(limit int) int {
	if limit <= 0 || limit > MaxSamples {
		return MaxSamples
	}
	return limit
}
