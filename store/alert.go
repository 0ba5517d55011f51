package store

import (
	"context"
	"time"
)

// AlertChannel is where a tenant's alerts are sent: a webhook (plain, Slack- or
// Discord-compatible), an email list, an ntfy topic or the Web Push subscriptions of the
// tenant's members. Options holds the kind's settings as a JSON object (package
// server/alerts defines them); SecretSealed holds its secret (a webhook's signing secret, an
// ntfy token) sealed with the master key.
type AlertChannel struct {
	ID           string
	TenantID     string
	Name         string
	Kind         string // "webhook", "email", "ntfy", "push"
	Target       string // a URL, or comma-separated email addresses; empty for push
	Options      string // JSON object
	SecretSealed []byte
	Enabled      bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// AlertRule says which events of a tenant raise an alert, for which devices, and where it is
// sent. Params holds the kind's thresholds as a JSON object (package server/alerts defines
// them). An empty scope (ProjectID, Tag, DeviceID) covers every device of the tenant.
type AlertRule struct {
	ID              string
	TenantID        string
	Name            string
	Kind            string
	ProjectID       string
	Tag             string
	DeviceID        string
	Params          string // JSON object
	ChannelIDs      []string
	CooldownSeconds int
	Enabled         bool
	CreatedBy       string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// AlertState is where an alert is in its life.
type AlertState string

// Alert states. An acknowledged alert is one a member has seen; it may still resolve.
const (
	AlertFiring       AlertState = "firing"
	AlertAcknowledged AlertState = "acknowledged"
	AlertResolved     AlertState = "resolved"
)

// Alert is one notification of a rule: one or many subjects (devices, a rollout, an error
// group) that met the rule's condition together.
type Alert struct {
	ID             string
	TenantID       string
	RuleID         string
	RuleName       string
	Kind           string
	State          AlertState
	Summary        string
	Subjects       []string
	FiredAt        time.Time
	ResolvedAt     *time.Time
	AcknowledgedAt *time.Time
	AcknowledgedBy string
	UpdatedAt      time.Time
}

// AlertFilter narrows an alert listing. Empty fields do not filter.
type AlertFilter struct {
	State  AlertState
	RuleID string
}

// DeliveryState is where a delivery is in the outbox.
type DeliveryState string

// Delivery states.
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryFailed    DeliveryState = "failed" // gave up after the last attempt
)

// AlertDelivery is one message to one channel: a row of the persistent outbox while pending,
// then a line of the delivery log. A worker claims a pending row for a lease (LeaseOwner,
// LeaseUntil), so replicas sharing the database never send it twice at once, and a row
// whose worker died is claimed again when its lease runs out.
type AlertDelivery struct {
	ID              string
	TenantID        string
	ChannelID       string
	AlertID         string
	MessageID       string // stable across retries and resends (the webhook-id)
	Payload         string // JSON
	State           DeliveryState
	Attempts        int
	NextAttemptAt   time.Time
	LeaseOwner      string
	LeaseUntil      *time.Time
	LastStatus      int
	LastLatencyMS   int64
	LastError       string
	ResponseExcerpt string
	CreatedAt       time.Time
	UpdatedAt       time.Time
	DeliveredAt     *time.Time
}

// DeliveryFilter narrows a delivery listing. Empty fields do not filter.
type DeliveryFilter struct {
	ChannelID string
	AlertID   string
	State     DeliveryState
}

// PushSubscription is one browser of a member subscribed to a tenant's Web Push
// notifications (the PushSubscription of the Push API: its endpoint and keys).
type PushSubscription struct {
	ID        string
	TenantID  string
	UserID    string
	Endpoint  string
	P256dh    string // the browser's public key, base64url
	Auth      string // the authentication secret, base64url
	CreatedAt time.Time
}

// ServerSecret is a secret of the installation (not of a tenant), sealed with the master
// key: the VAPID key pair of Web Push. It is written once and never changed.
type ServerSecret struct {
	Name      string
	Sealed    []byte
	CreatedAt time.Time
}

// AlertStore keeps alert rules, channels, the alert history and the delivery outbox, the
// tenants' Web Push subscriptions and the server's VAPID key.
type AlertStore interface {
	CreateAlertChannel(ctx context.Context, c *AlertChannel) error
	AlertChannel(ctx context.Context, tenantID, id string) (AlertChannel, error)
	ListAlertChannels(ctx context.Context, tenantID string, opts ListOptions) (Page[AlertChannel], error)
	// UpdateAlertChannel writes Name, Target, Options, SecretSealed and Enabled.
	UpdateAlertChannel(ctx context.Context, c *AlertChannel) error
	// DeleteAlertChannel removes the channel and its deliveries.
	DeleteAlertChannel(ctx context.Context, tenantID, id string) error

	CreateAlertRule(ctx context.Context, r *AlertRule) error
	AlertRule(ctx context.Context, tenantID, id string) (AlertRule, error)
	ListAlertRules(ctx context.Context, tenantID string, opts ListOptions) (Page[AlertRule], error)
	// UpdateAlertRule writes every field but the IDs, CreatedBy and CreatedAt.
	UpdateAlertRule(ctx context.Context, r *AlertRule) error
	DeleteAlertRule(ctx context.Context, tenantID, id string) error

	CreateAlert(ctx context.Context, a *Alert) error
	Alert(ctx context.Context, tenantID, id string) (Alert, error)
	ListAlerts(ctx context.Context, tenantID string, f AlertFilter, opts ListOptions) (Page[Alert], error)
	// AcknowledgeAlert records who acknowledged the alert; a firing alert becomes
	// acknowledged, a resolved one stays resolved. ErrConflict when it was acknowledged
	// already.
	AcknowledgeAlert(ctx context.Context, tenantID, id, userID string, at time.Time) error
	// ResolveAlert marks the alert resolved at at. ErrConflict when it is resolved already.
	ResolveAlert(ctx context.Context, tenantID, id string, at time.Time) error

	CreateAlertDelivery(ctx context.Context, d *AlertDelivery) error
	AlertDelivery(ctx context.Context, tenantID, id string) (AlertDelivery, error)
	ListAlertDeliveries(ctx context.Context, tenantID string, f DeliveryFilter, opts ListOptions) (Page[AlertDelivery], error)
	// ClaimAlertDeliveries leases up to limit pending deliveries of any tenant that are due at
	// now and not leased by a live worker, to owner until now+lease, earliest due first.
	ClaimAlertDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]AlertDelivery, error)
	// FinishAlertDeliveryAttempt writes the outcome of an attempt (State, Attempts,
	// NextAttemptAt, the Last* fields, ResponseExcerpt, DeliveredAt) and releases the lease.
	// ErrConflict when d.LeaseOwner no longer holds the lease (it ran out and another worker
	// claimed the row).
	FinishAlertDeliveryAttempt(ctx context.Context, d *AlertDelivery) error
	// PruneAlertHistory deletes, on every tenant, the resolved and acknowledged alerts and the
	// delivered and failed deliveries last changed before before, and returns how many rows
	// went. Firing alerts and pending deliveries stay, however old.
	PruneAlertHistory(ctx context.Context, before time.Time) (int64, error)

	// CreatePushSubscription stores a browser's subscription; ErrConflict when the tenant
	// has one with that endpoint already.
	CreatePushSubscription(ctx context.Context, p *PushSubscription) error
	ListPushSubscriptions(ctx context.Context, tenantID string, opts ListOptions) (Page[PushSubscription], error)
	DeletePushSubscription(ctx context.Context, tenantID, id string) error

	// ServerSecret returns the secret called name, or ErrNotFound.
	ServerSecret(ctx context.Context, name string) (ServerSecret, error)
	// CreateServerSecret writes a secret; ErrConflict when one of that name exists (two
	// replicas starting at once: the loser reads the winner's).
	CreateServerSecret(ctx context.Context, s *ServerSecret) error
}
