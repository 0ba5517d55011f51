package store

import (
	"context"
	"time"
)

// CommandState is where a command is in its life.
type CommandState string

// Command states. Queued → delivered → succeeded or failed; queued or delivered → expired
// when the device did not answer before ExpiresAt; a config command still queued or delivered
// → superseded when a newer config version for the same device replaces it (only the latest
// config matters, docs/protocol.md §7).
const (
	CommandQueued     CommandState = "queued"
	CommandDelivered  CommandState = "delivered"
	CommandSucceeded  CommandState = "succeeded"
	CommandFailed     CommandState = "failed"
	CommandExpired    CommandState = "expired"
	CommandSuperseded CommandState = "superseded"
)

// Final reports whether no further transition can happen.
func (s CommandState) Final() bool {
	return s == CommandSucceeded || s == CommandFailed || s == CommandExpired || s == CommandSuperseded
}

// Command is a server-to-device request ("restart", "config", "update", "debug"). Payload and
// Result are JSON documents as sent and received.
type Command struct {
	ID          string
	TenantID    string
	DeviceID    string
	Name        string
	Payload     string
	State       CommandState
	Result      string
	Error       string
	RolloutID   string
	CreatedBy   string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	DeliveredAt *time.Time
	CompletedAt *time.Time
	UpdatedAt   time.Time
}

// CommandFilter narrows a command list. Empty fields do not filter.
type CommandFilter struct {
	DeviceID  string
	State     CommandState
	RolloutID string
}

// CommandTransition moves a command from one of From to To. Result and Error are saved when
// set; DeliveredAt or CompletedAt is set from At as To implies. Answered says the device itself
// answered: an answer proves delivery, so DeliveredAt is set from At too unless it already is
// (the answer can overtake the record of its own delivery).
type CommandTransition struct {
	From     []CommandState
	To       CommandState
	Result   string
	Error    string
	Answered bool
	At       time.Time
}

// CommandStore keeps commands and their states.
type CommandStore interface {
	CreateCommand(ctx context.Context, c *Command) error
	Command(ctx context.Context, tenantID, id string) (Command, error)
	ListCommands(ctx context.Context, tenantID string, f CommandFilter, opts ListOptions) (Page[Command], error)
	// TransitionCommand applies t atomically and returns the updated command. When the stored
	// state is not in t.From it returns ErrConflict and changes nothing, so an acknowledgement
	// is applied once even if it arrives twice or at two replicas.
	TransitionCommand(ctx context.Context, tenantID, id string, t CommandTransition) (Command, error)
	// PendingCommands lists a device's queued or delivered commands that have not expired at
	// now, oldest first: what to (re)deliver when it connects.
	PendingCommands(ctx context.Context, tenantID, deviceID string, now time.Time) ([]Command, error)
	// ExpireCommands moves the tenant's queued or delivered commands past ExpiresAt to expired
	// and returns how many.
	ExpireCommands(ctx context.Context, tenantID string, now time.Time) (int64, error)
}
