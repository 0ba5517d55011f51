package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// configEntryRow is a row of config_entries ("key" is reserved in MySQL, hence config_key).
type configEntryRow struct {
	bun.BaseModel `bun:"table:config_entries"`

	TenantID    string    `bun:"tenant_id"`
	Scope       string    `bun:"scope"`
	ScopeID     string    `bun:"scope_id"`
	Key         string    `bun:"config_key"`
	Type        string    `bun:"type"`
	Value       string    `bun:"value"`
	Secret      bool      `bun:"secret"`
	ValueSealed []byte    `bun:"value_sealed"`
	Version     int64     `bun:"version"`
	UpdatedBy   string    `bun:"updated_by"`
	UpdatedAt   time.Time `bun:"updated_at,nullzero"`
}

func (r configEntryRow) domain() store.ConfigEntry {
	return store.ConfigEntry{
		TenantID: r.TenantID, Scope: store.ConfigScope(r.Scope), ScopeID: r.ScopeID, Key: r.Key,
		Type: store.ConfigType(r.Type), Value: r.Value, Secret: r.Secret, ValueSealed: r.ValueSealed,
		Version: r.Version, UpdatedBy: r.UpdatedBy, UpdatedAt: utc(r.UpdatedAt),
	}
}

// configVersionRow is a row of config_versions.
type configVersionRow struct {
	bun.BaseModel `bun:"table:config_versions"`

	TenantID  string    `bun:"tenant_id"`
	DeviceID  string    `bun:"device_id"`
	Version   int64     `bun:"version"`
	Hash      string    `bun:"hash"`
	Snapshot  string    `bun:"snapshot"`
	Reason    string    `bun:"reason"`
	CreatedBy string    `bun:"created_by"`
	CreatedAt time.Time `bun:"created_at"`
}

func (r configVersionRow) domain() store.ConfigVersion {
	return store.ConfigVersion{
		TenantID: r.TenantID, DeviceID: r.DeviceID, Version: r.Version, Hash: r.Hash,
		Snapshot: r.Snapshot, Reason: r.Reason, CreatedBy: r.CreatedBy, CreatedAt: utc(r.CreatedAt),
	}
}

// ConfigEntry returns one key of a scope.
func (s *Store) ConfigEntry(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID, key string) (store.ConfigEntry, error) {
	var row configEntryRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("scope = ?", string(scope)).
		Where("scope_id = ?", scopeID).
		Where("config_key = ?", key).
		Scan(ctx)
	if err != nil {
		return store.ConfigEntry{}, wrap(err, "get config %s/%s key %q", scope, scopeID, key)
	}
	return row.domain(), nil
}

// ConfigEntries lists a scope's entries ordered by key.
func (s *Store) ConfigEntries(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID string) ([]store.ConfigEntry, error) {
	var rows []configEntryRow
	err := s.r.NewSelect().Model(&rows).
		Where("tenant_id = ?", tenantID).
		Where("scope = ?", string(scope)).
		Where("scope_id = ?", scopeID).
		OrderExpr("config_key ASC").
		Scan(ctx)
	if err != nil {
		return nil, wrap(err, "list config %s/%s", scope, scopeID)
	}
	items := make([]store.ConfigEntry, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return items, nil
}

// PutConfigEntries writes a batch in one transaction: an entry with Version 0 is inserted
// (the primary key refuses an existing key), any other is updated only where the stored
// version matches. The first mismatch rolls the whole batch back with store.ErrConflict.
func (s *Store) PutConfigEntries(ctx context.Context, entries []store.ConfigEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := store.CheckConfigBatch(entries); err != nil {
		return err
	}
	now := store.Now()
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		for _, e := range entries {
			if e.Version == 0 {
				row := configEntryRow{
					TenantID: e.TenantID, Scope: string(e.Scope), ScopeID: e.ScopeID, Key: e.Key,
					Type: string(e.Type), Value: e.Value, Secret: e.Secret, ValueSealed: e.ValueSealed,
					Version: 1, UpdatedBy: e.UpdatedBy, UpdatedAt: now,
				}
				if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
					return wrap(err, "key %q", e.Key)
				}
				continue
			}
			res, err := tx.NewUpdate().Table("config_entries").
				Set("type = ?", string(e.Type)).
				Set("value = ?", e.Value).
				Set("secret = ?", e.Secret).
				Set("value_sealed = ?", e.ValueSealed).
				Set("version = version + 1").
				Set("updated_by = ?", e.UpdatedBy).
				Set("updated_at = ?", now).
				Where("tenant_id = ?", e.TenantID).
				Where("scope = ?", string(e.Scope)).
				Where("scope_id = ?", e.ScopeID).
				Where("config_key = ?", e.Key).
				Where("version = ?", e.Version).
				Exec(ctx)
			if err := affected(res, err); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmtConflict(e.Key, e.Version)
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrap(err, "put %d config entries", len(entries))
	}
	for i := range entries {
		entries[i].Version++ // 0 → 1 for a new key, n → n+1 for an update
		entries[i].UpdatedAt = now
	}
	return nil
}

// fmtConflict explains which entry of a batch was stale.
func fmtConflict(key string, version int64) error {
	return fmt.Errorf("%w: key %q is not at version %d", store.ErrConflict, key, version)
}

// DeleteConfigEntry deletes a key if its stored version is version.
func (s *Store) DeleteConfigEntry(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID, key string, version int64) error {
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Table("config_entries").
			Where("tenant_id = ?", tenantID).
			Where("scope = ?", string(scope)).
			Where("scope_id = ?", scopeID).
			Where("config_key = ?", key).
			Where("version = ?", version).
			Exec(ctx)
		if err := affected(res, err); !errors.Is(err, store.ErrNotFound) {
			return err
		}
		found, err := tx.NewSelect().Table("config_entries").
			Where("tenant_id = ?", tenantID).
			Where("scope = ?", string(scope)).
			Where("scope_id = ?", scopeID).
			Where("config_key = ?", key).
			Exists(ctx)
		switch {
		case err != nil:
			return err
		case found:
			return fmtConflict(key, version)
		}
		return store.ErrNotFound
	})
	return wrap(err, "delete config %s/%s key %q", scope, scopeID, key)
}

// CreateConfigVersion appends a version; a number already used for the device is
// store.ErrConflict (the primary key decides between racing writers).
func (s *Store) CreateConfigVersion(ctx context.Context, v *store.ConfigVersion) error {
	c := *v
	if c.CreatedAt.IsZero() {
		c.CreatedAt = store.Now()
	}
	c.CreatedAt = ts(c.CreatedAt)
	row := configVersionRow{
		TenantID: c.TenantID, DeviceID: c.DeviceID, Version: c.Version, Hash: c.Hash,
		Snapshot: c.Snapshot, Reason: c.Reason, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt,
	}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create config version %d of device %q", c.Version, c.DeviceID)
	}
	*v = c
	return nil
}

// ConfigVersion returns one version of a device's config.
func (s *Store) ConfigVersion(ctx context.Context, tenantID, deviceID string, version int64) (store.ConfigVersion, error) {
	var row configVersionRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("device_id = ?", deviceID).
		Where("version = ?", version).
		Scan(ctx)
	if err != nil {
		return store.ConfigVersion{}, wrap(err, "get config version %d of device %q", version, deviceID)
	}
	return row.domain(), nil
}

// LatestConfigVersion returns the device's highest version.
func (s *Store) LatestConfigVersion(ctx context.Context, tenantID, deviceID string) (store.ConfigVersion, error) {
	var row configVersionRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("device_id = ?", deviceID).
		OrderExpr("version DESC").
		Limit(1).
		Scan(ctx)
	if err != nil {
		return store.ConfigVersion{}, wrap(err, "get latest config version of device %q", deviceID)
	}
	return row.domain(), nil
}

// ListConfigVersions pages through a device's versions; the cursor is a version number.
func (s *Store) ListConfigVersions(ctx context.Context, tenantID, deviceID string, opts store.ListOptions) (store.Page[store.ConfigVersion], error) {
	cursor, hasCursor, err := int64Cursor(opts.Cursor)
	if err != nil {
		return store.Page[store.ConfigVersion]{}, wrap(err, "list config versions of device %q", deviceID)
	}
	var rows []configVersionRow
	q := s.r.NewSelect().Model(&rows).
		Where("tenant_id = ?", tenantID).
		Where("device_id = ?", deviceID)
	if err := paginate(q, "version", cursor, hasCursor, opts).Scan(ctx); err != nil {
		return store.Page[store.ConfigVersion]{}, wrap(err, "list config versions of device %q", deviceID)
	}
	items := make([]store.ConfigVersion, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(v store.ConfigVersion) string {
		return strconv.FormatInt(v.Version, 10)
	}), nil
}
