package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// tenantSettingsRow is a row of tenant_settings.
type tenantSettingsRow struct {
	bun.BaseModel `bun:"table:tenant_settings"`

	TenantID             string    `bun:"tenant_id"`
	BrokerMode           string    `bun:"broker_mode"`
	BrokerURL            string    `bun:"broker_url"`
	BrokerUsername       string    `bun:"broker_username"`
	BrokerPasswordSealed []byte    `bun:"broker_password_sealed"`
	BrokerCACertPEM      string    `bun:"broker_ca_cert_pem"`
	BrokerTopicRoot      string    `bun:"broker_topic_root"`
	BrokerClientID       string    `bun:"broker_client_id"`
	BugsnagAPIKeySealed  []byte    `bun:"bugsnag_api_key_sealed"`
	BugsnagNotifyURL     string    `bun:"bugsnag_notify_url"`
	BugsnagReleaseStage  string    `bun:"bugsnag_release_stage"`
	Version              int64     `bun:"version"`
	UpdatedAt            time.Time `bun:"updated_at,nullzero"`
	UpdatedBy            string    `bun:"updated_by"`
}

func (r tenantSettingsRow) domain() store.TenantSettings {
	return store.TenantSettings{
		TenantID: r.TenantID,
		Broker: store.BrokerSettings{
			Mode:           store.BrokerMode(r.BrokerMode),
			URL:            r.BrokerURL,
			Username:       r.BrokerUsername,
			PasswordSealed: r.BrokerPasswordSealed,
			CACertPEM:      r.BrokerCACertPEM,
			TopicRoot:      r.BrokerTopicRoot,
			ClientID:       r.BrokerClientID,
		},
		Bugsnag: store.BugsnagSettings{
			APIKeySealed: r.BugsnagAPIKeySealed,
			NotifyURL:    r.BugsnagNotifyURL,
			ReleaseStage: r.BugsnagReleaseStage,
		},
		Version:   r.Version,
		UpdatedAt: utc(r.UpdatedAt),
		UpdatedBy: r.UpdatedBy,
	}
}

// TenantSettings returns the saved settings, or store.ErrNotFound when none were saved.
func (s *Store) TenantSettings(ctx context.Context, tenantID string) (store.TenantSettings, error) {
	var row tenantSettingsRow
	if err := s.r.NewSelect().Model(&row).Where("tenant_id = ?", tenantID).Scan(ctx); err != nil {
		return store.TenantSettings{}, wrap(err, "get settings of tenant %q", tenantID)
	}
	return row.domain(), nil
}

// PutTenantSettings creates the settings (s.Version 0) or replaces them if s.Version is the
// stored version, in one conditional statement; anything else is store.ErrConflict.
func (s *Store) PutTenantSettings(ctx context.Context, ts *store.TenantSettings) error {
	now := store.Now()
	row := tenantSettingsRow{
		TenantID:             ts.TenantID,
		BrokerMode:           string(ts.Broker.Mode),
		BrokerURL:            ts.Broker.URL,
		BrokerUsername:       ts.Broker.Username,
		BrokerPasswordSealed: ts.Broker.PasswordSealed,
		BrokerCACertPEM:      ts.Broker.CACertPEM,
		BrokerTopicRoot:      ts.Broker.TopicRoot,
		BrokerClientID:       ts.Broker.ClientID,
		BugsnagAPIKeySealed:  ts.Bugsnag.APIKeySealed,
		BugsnagNotifyURL:     ts.Bugsnag.NotifyURL,
		BugsnagReleaseStage:  ts.Bugsnag.ReleaseStage,
		Version:              ts.Version + 1,
		UpdatedAt:            now,
		UpdatedBy:            ts.UpdatedBy,
	}
	if ts.Version == 0 {
		// First save: the primary key makes a concurrent first save a conflict.
		if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
			return wrap(err, "put settings of tenant %q", ts.TenantID)
		}
	} else {
		res, err := s.w.NewUpdate().Model(&row).
			ExcludeColumn("tenant_id").
			Where("tenant_id = ?", ts.TenantID).
			Where("version = ?", ts.Version).
			Exec(ctx)
		if err := affected(res, err); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				// Either never saved or saved since by someone else: both mean the caller's
				// version is stale.
				err = store.ErrConflict
			}
			return wrap(err, "put settings of tenant %q at version %d", ts.TenantID, ts.Version)
		}
	}
	ts.Version = row.Version
	ts.UpdatedAt = now
	return nil
}
