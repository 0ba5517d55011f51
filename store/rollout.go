package store

import (
	"context"
	"time"
)

// RolloutState is the state of a whole rollout.
type RolloutState string

// Rollout states.
const (
	RolloutActive    RolloutState = "active"
	RolloutPaused    RolloutState = "paused"
	RolloutAborted   RolloutState = "aborted"
	RolloutCompleted RolloutState = "completed"
)

// TargetKind says which devices a rollout addresses.
type TargetKind string

// Rollout target kinds.
const (
	TargetAll     TargetKind = "all"     // every device of the project
	TargetTag     TargetKind = "tag"     // the project's devices with Tag
	TargetDevices TargetKind = "devices" // DeviceIDs
	TargetPercent TargetKind = "percent" // a deterministic Percent of the project's devices
)

// RolloutTarget selects devices.
type RolloutTarget struct {
	Kind      TargetKind
	Tag       string
	DeviceIDs []string
	Percent   int
}

// Rollout sends one release to a set of devices, optionally in stages (percentages of the
// target, e.g. 5, 25, 100) that advance while the failure rate stays under FailureThreshold.
// Version is an optimistic-concurrency counter so that with several replicas a rollout
// advances once.
type Rollout struct {
	ID               string
	TenantID         string
	ProjectID        string
	ReleaseID        string
	Target           RolloutTarget
	Stages           []int
	CurrentStage     int
	FailureThreshold float64 // fraction of failed devices, 0..1
	// StageSoak is how long a finished stage waits before the next one starts, so failures
	// that show only after a while (a crash an hour after boot) can pause the rollout first.
	StageSoak time.Duration
	// RequireApproval pauses the rollout at the end of every stage but the last with
	// PauseReason "awaiting approval"; a resume approves the next stage.
	RequireApproval bool
	// StageDoneAt is when every device of the current stage had finished; zero while the
	// stage runs. The soak time counts from it.
	StageDoneAt time.Time
	State       RolloutState
	PauseReason string
	Version     int64
	CreatedBy   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// UpdateState is where one device is in a rollout.
type UpdateState string

// Per-device update states.
const (
	UpdatePending     UpdateState = "pending"
	UpdateDownloading UpdateState = "downloading"
	UpdateDownloaded  UpdateState = "downloaded"
	UpdateInstalling  UpdateState = "installing"
	UpdateRebooting   UpdateState = "rebooting"
	UpdateSucceeded   UpdateState = "succeeded"
	UpdateFailed      UpdateState = "failed"
	UpdateSkipped     UpdateState = "skipped"
)

// RolloutDevice is one device's progress in a rollout; (RolloutID, DeviceID) is unique.
type RolloutDevice struct {
	TenantID  string
	RolloutID string
	DeviceID  string
	State     UpdateState
	Progress  int // percent downloaded
	Reason    string
	CommandID string
	UpdatedAt time.Time
}

// RolloutFilter narrows a rollout list.
type RolloutFilter struct {
	ProjectID string
	State     RolloutState
}

// RolloutStore keeps rollouts and per-device update states.
type RolloutStore interface {
	CreateRollout(ctx context.Context, r *Rollout) error
	Rollout(ctx context.Context, tenantID, id string) (Rollout, error)
	ListRollouts(ctx context.Context, tenantID string, f RolloutFilter, opts ListOptions) (Page[Rollout], error)
	// UpdateRollout saves Stages, CurrentStage, FailureThreshold, StageDoneAt, State and PauseReason if
	// r.Version matches the stored one (ErrConflict otherwise) and increments r.Version.
	UpdateRollout(ctx context.Context, r *Rollout) error
	DeleteRollout(ctx context.Context, tenantID, id string) error
	// PutRolloutDevice creates or replaces one device's state in a rollout; a rollout that
	// does not exist in the tenant is ErrNotFound.
	PutRolloutDevice(ctx context.Context, d *RolloutDevice) error
	RolloutDevice(ctx context.Context, tenantID, rolloutID, deviceID string) (RolloutDevice, error)
	// ListRolloutDevices pages through a rollout's devices; the cursor is the device ID.
	ListRolloutDevices(ctx context.Context, tenantID, rolloutID string, opts ListOptions) (Page[RolloutDevice], error)
	// DeviceUpdates lists one device's rollout states, for its update history.
	DeviceUpdates(ctx context.Context, tenantID, deviceID string) ([]RolloutDevice, error)
	// CountRolloutDevices counts a rollout's devices per state.
	CountRolloutDevices(ctx context.Context, tenantID, rolloutID string) (map[UpdateState]int64, error)
}
