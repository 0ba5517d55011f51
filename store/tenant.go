package store

import (
	"context"
	"time"
)

// Tenant is an organisation: it owns projects, devices, releases and settings. Slug is the
// stable, URL-safe name used in API paths (/api/v1/tenants/{slug}/…); it is unique.
type Tenant struct {
	ID        string
	Slug      string
	Name      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// TenantStore manages tenants. Deleting a tenant deletes everything it owns.
type TenantStore interface {
	// CreateTenant inserts t, assigning ID and times when empty. A taken slug is ErrConflict.
	CreateTenant(ctx context.Context, t *Tenant) error
	Tenant(ctx context.Context, id string) (Tenant, error)
	TenantBySlug(ctx context.Context, slug string) (Tenant, error)
	ListTenants(ctx context.Context, opts ListOptions) (Page[Tenant], error)
	// UpdateTenant saves Slug and Name and sets UpdatedAt.
	UpdateTenant(ctx context.Context, t *Tenant) error
	// DeleteTenant removes the tenant and all data it owns.
	DeleteTenant(ctx context.Context, id string) error
}

// BrokerMode says whether a tenant's devices use the embedded broker or the tenant's own.
type BrokerMode string

// Broker modes.
const (
	BrokerBuiltin  BrokerMode = "builtin"
	BrokerExternal BrokerMode = "external"
)

// BrokerSettings describe a tenant's own MQTT broker. PasswordSealed is encrypted with the
// master key (package seal); the store never sees it in clear text.
type BrokerSettings struct {
	Mode           BrokerMode
	URL            string // tcp://, ssl://, ws://, wss://
	Username       string
	PasswordSealed []byte
	CACertPEM      string
	TopicRoot      string
	ClientID       string
}

// BugsnagSettings say where a tenant's device error reports are forwarded.
type BugsnagSettings struct {
	APIKeySealed []byte // encrypted with the master key; empty means no forwarding
	NotifyURL    string // empty means Bugsnag's public endpoint
	ReleaseStage string
}

// TenantSettings are the per-tenant options. Version is an optimistic-concurrency counter:
// PutTenantSettings succeeds only when it matches the stored one (0 for the first save) and
// increments it, so two admins editing at once cannot silently overwrite each other.
type TenantSettings struct {
	TenantID  string
	Broker    BrokerSettings
	Bugsnag   BugsnagSettings
	Version   int64
	UpdatedAt time.Time
	UpdatedBy string // user ID
}

// SettingsStore keeps tenant settings.
type SettingsStore interface {
	// TenantSettings returns the saved settings, or ErrNotFound when none were ever saved
	// (callers then use defaults).
	TenantSettings(ctx context.Context, tenantID string) (TenantSettings, error)
	// PutTenantSettings creates or replaces the settings with a version check (ErrConflict on a
	// stale Version); on success s.Version and s.UpdatedAt hold the new values.
	PutTenantSettings(ctx context.Context, s *TenantSettings) error
}
