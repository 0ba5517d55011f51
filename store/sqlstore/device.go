package sqlstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// deviceRow is a row of devices. Presence, metadata and config sync state are flat column
// groups, each written by its own method with an UPDATE that names only its columns, so
// concurrent writers of different groups never overwrite each other.
type deviceRow struct {
	bun.BaseModel `bun:"table:devices,alias:devices"`

	ID                   string    `bun:"id"`
	TenantID             string    `bun:"tenant_id"`
	Name                 string    `bun:"name"`
	ProjectID            string    `bun:"project_id,nullzero"`
	Tags                 string    `bun:"tags"`
	SecretHash           []byte    `bun:"secret_hash"`
	KeySealed            []byte    `bun:"key_sealed"`
	Disabled             bool      `bun:"disabled"`
	CredentialsRotatedAt time.Time `bun:"credentials_rotated_at,nullzero"`

	Online            bool      `bun:"online"`
	PresenceChangedAt time.Time `bun:"presence_changed_at,nullzero"`
	LastSeenAt        time.Time `bun:"last_seen_at,nullzero"`

	FirmwareVersion    string    `bun:"firmware_version"`
	MetaProjectName    string    `bun:"meta_project_name"`
	ChipModel          string    `bun:"chip_model"`
	ChipRevision       int       `bun:"chip_revision"`
	IDFVersion         string    `bun:"idf_version"`
	MAC                string    `bun:"mac"`
	IP                 string    `bun:"ip"`
	RSSI               int       `bun:"rssi"`
	FreeHeap           int64     `bun:"free_heap"`
	UptimeSeconds      int64     `bun:"uptime_seconds"`
	ResetReason        string    `bun:"reset_reason"`
	MetaConfigVersion  int64     `bun:"meta_config_version"`
	ProtocolVersion    int       `bun:"protocol_version"`
	LimitCommandBytes  int64     `bun:"limit_command_bytes"`
	LimitConfigBytes   int64     `bun:"limit_config_bytes"`
	MetadataUpdatedAt  time.Time `bun:"metadata_updated_at,nullzero"`
	ConfigDesired      int64     `bun:"config_desired_version"`
	ConfigDesiredHash  string    `bun:"config_desired_hash"`
	ConfigApplied      int64     `bun:"config_applied_version"`
	ConfigState        string    `bun:"config_state"`
	ConfigError        string    `bun:"config_error"`
	ConfigSyncUpdateAt time.Time `bun:"config_updated_at,nullzero"`

	CreatedAt time.Time `bun:"created_at"`
	UpdatedAt time.Time `bun:"updated_at"`
}

func (r deviceRow) domain() (store.Device, error) {
	tags, err := fromJSON[string](r.Tags)
	if err != nil {
		return store.Device{}, err
	}
	return store.Device{
		ID: r.ID, TenantID: r.TenantID, Name: r.Name, ProjectID: r.ProjectID, Tags: tags,
		SecretHash: r.SecretHash, KeySealed: r.KeySealed, Disabled: r.Disabled,
		CredentialsRotatedAt: utc(r.CredentialsRotatedAt),
		Presence: store.Presence{
			Online: r.Online, ChangedAt: utc(r.PresenceChangedAt), LastSeenAt: utc(r.LastSeenAt),
		},
		Metadata: store.DeviceMetadata{
			FirmwareVersion: r.FirmwareVersion, ProjectName: r.MetaProjectName, ChipModel: r.ChipModel,
			ChipRevision: r.ChipRevision, IDFVersion: r.IDFVersion, MAC: r.MAC, IP: r.IP, RSSI: r.RSSI,
			FreeHeap: r.FreeHeap, UptimeSeconds: r.UptimeSeconds, ResetReason: r.ResetReason,
			ConfigVersion: r.MetaConfigVersion, ProtocolVersion: r.ProtocolVersion,
			LimitCommandBytes: r.LimitCommandBytes, LimitConfigBytes: r.LimitConfigBytes,
			UpdatedAt: utc(r.MetadataUpdatedAt),
		},
		ConfigSync: store.ConfigSync{
			DesiredVersion: r.ConfigDesired, DesiredHash: r.ConfigDesiredHash, AppliedVersion: r.ConfigApplied,
			State: store.ConfigSyncState(r.ConfigState), Error: r.ConfigError, UpdatedAt: utc(r.ConfigSyncUpdateAt),
		},
		CreatedAt: utc(r.CreatedAt), UpdatedAt: utc(r.UpdatedAt),
	}, nil
}

// deviceTagRow is a row of device_tags, the index that makes "devices with tag X" a plain
// join on every dialect; devices.tags keeps the caller's order.
type deviceTagRow struct {
	bun.BaseModel `bun:"table:device_tags"`

	TenantID string `bun:"tenant_id"`
	DeviceID string `bun:"device_id"`
	Tag      string `bun:"tag"`
}

// uniqueTags returns the distinct tags, for device_tags' primary key.
func uniqueTags(tags []string) []string {
	out := slices.Clone(tags)
	slices.Sort(out)
	return slices.Compact(out)
}

// writeTags replaces a device's rows in device_tags.
func writeTags(ctx context.Context, tx bun.Tx, tenantID, deviceID string, tags []string) error {
	if _, err := tx.NewDelete().Table("device_tags").
		Where("tenant_id = ?", tenantID).
		Where("device_id = ?", deviceID).
		Exec(ctx); err != nil {
		return err
	}
	tags = uniqueTags(tags)
	if len(tags) == 0 {
		return nil
	}
	rows := make([]deviceTagRow, len(tags))
	for i, t := range tags {
		rows[i] = deviceTagRow{TenantID: tenantID, DeviceID: deviceID, Tag: t}
	}
	_, err := tx.NewInsert().Model(&rows).Exec(ctx)
	return err
}

// CreateDevice inserts d; an ID already used by any tenant is store.ErrConflict.
func (s *Store) CreateDevice(ctx context.Context, d *store.Device) error {
	c := *d
	store.PrepareCreate(&c.ID, &c.CreatedAt, &c.UpdatedAt)
	c.CredentialsRotatedAt = ts(c.CredentialsRotatedAt)
	c.Presence.ChangedAt, c.Presence.LastSeenAt = ts(c.Presence.ChangedAt), ts(c.Presence.LastSeenAt)
	c.Metadata.UpdatedAt, c.ConfigSync.UpdatedAt = ts(c.Metadata.UpdatedAt), ts(c.ConfigSync.UpdatedAt)
	m, cs := c.Metadata, c.ConfigSync
	row := deviceRow{
		ID: c.ID, TenantID: c.TenantID, Name: c.Name, ProjectID: c.ProjectID, Tags: toJSON(c.Tags),
		SecretHash: c.SecretHash, KeySealed: c.KeySealed, Disabled: c.Disabled,
		CredentialsRotatedAt: c.CredentialsRotatedAt,
		Online:               c.Presence.Online, PresenceChangedAt: c.Presence.ChangedAt, LastSeenAt: c.Presence.LastSeenAt,
		FirmwareVersion: m.FirmwareVersion, MetaProjectName: m.ProjectName, ChipModel: m.ChipModel,
		ChipRevision: m.ChipRevision, IDFVersion: m.IDFVersion, MAC: m.MAC, IP: m.IP, RSSI: m.RSSI,
		FreeHeap: m.FreeHeap, UptimeSeconds: m.UptimeSeconds, ResetReason: m.ResetReason,
		MetaConfigVersion: m.ConfigVersion, ProtocolVersion: m.ProtocolVersion, MetadataUpdatedAt: m.UpdatedAt,
		LimitCommandBytes: m.LimitCommandBytes, LimitConfigBytes: m.LimitConfigBytes,
		ConfigDesired: cs.DesiredVersion, ConfigDesiredHash: cs.DesiredHash, ConfigApplied: cs.AppliedVersion,
		ConfigState: string(cs.State), ConfigError: cs.Error, ConfigSyncUpdateAt: cs.UpdatedAt,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
			return err
		}
		return writeTags(ctx, tx, c.TenantID, c.ID, c.Tags)
	})
	if err != nil {
		return wrap(err, "create device %q", c.ID)
	}
	*d = c
	return nil
}

// Device returns one of a tenant's devices.
func (s *Store) Device(ctx context.Context, tenantID, id string) (store.Device, error) {
	var row deviceRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Scan(ctx)
	if err != nil {
		return store.Device{}, wrap(err, "get device %q", id)
	}
	d, err := row.domain()
	return d, wrap(err, "get device %q", id)
}

// filterDevices adds the conditions of f to q (which selects from devices).
func filterDevices(q *bun.SelectQuery, tenantID string, f store.DeviceFilter) *bun.SelectQuery {
	q = q.Where("tenant_id = ?", tenantID)
	if f.ProjectID != "" {
		q = q.Where("project_id = ?", f.ProjectID)
	}
	if f.Tag != "" {
		// IN (not a correlated EXISTS): every dialect reads the tag's index once.
		q = q.Where("id IN (SELECT t.device_id FROM device_tags t WHERE t.tenant_id = ? AND t.tag = ?)", tenantID, f.Tag)
	}
	if f.Online != nil {
		q = q.Where("online = ?", *f.Online)
	}
	if f.FirmwareVersion != "" {
		q = q.Where("firmware_version = ?", f.FirmwareVersion)
	}
	if f.Disabled != nil {
		q = q.Where("disabled = ?", *f.Disabled)
	}
	if len(f.IDs) > 0 {
		q = q.Where("id IN (?)", bun.In(f.IDs))
	}
	if len(f.ConfigStates) > 0 {
		q = q.Where("config_state IN (?)", bun.In(f.ConfigStates))
	}
	if f.Search != "" {
		q = q.WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("LOWER(name) LIKE ? ESCAPE '!'", "%"+likeEscape(strings.ToLower(f.Search))+"%").
				WhereOr("id LIKE ? ESCAPE '!'", likeEscape(f.Search)+"%")
		})
	}
	return q
}

// ListDevices pages through a tenant's devices matching f.
func (s *Store) ListDevices(ctx context.Context, tenantID string, f store.DeviceFilter, opts store.ListOptions) (store.Page[store.Device], error) {
	var rows []deviceRow
	q := filterDevices(s.r.NewSelect().Model(&rows), tenantID, f)
	offset := 0
	if f.Sort.Keyset() {
		opts.Desc = opts.Desc || f.Sort.Desc
		q = pageByID(q, opts)
	} else {
		col, ok := deviceSortColumns[f.Sort.Column]
		if !ok {
			return store.Page[store.Device]{}, store.Invalid("sort", "unknown column")
		}
		var err error
		if offset, err = store.ParseOffsetCursor(opts.Cursor); err != nil {
			return store.Page[store.Device]{}, wrap(err, "list devices of tenant %q", tenantID)
		}
		// (column, id) in one direction is exactly an index of migration 5, so a page is an
		// index range, never a sort of the tenant's devices. A missing value sorts first
		// ascending: SQLite's and MySQL's own order, PostgreSQL's with NULLS FIRST (nullable
		// columns only, whose indexes are NULLS FIRST).
		dir, nulls := "ASC", ""
		if f.Sort.Desc {
			dir = "DESC"
		}
		if s.backend == BackendPostgres && (col == "project_id" || col == "last_seen_at") {
			nulls = map[bool]string{false: " NULLS FIRST", true: " NULLS LAST"}[f.Sort.Desc]
		}
		q = q.OrderExpr("? "+dir+nulls, bun.Ident(col)).
			OrderExpr("id " + dir).
			Offset(int64(offset)).Limit(int64(opts.PageSize()) + 1)
	}
	if err := q.Scan(ctx); err != nil {
		return store.Page[store.Device]{}, wrap(err, "list devices of tenant %q", tenantID)
	}
	items := make([]store.Device, len(rows))
	for i, r := range rows {
		d, err := r.domain()
		if err != nil {
			return store.Page[store.Device]{}, wrap(err, "list devices of tenant %q", tenantID)
		}
		items[i] = d
	}
	if !f.Sort.Keyset() {
		return store.OffsetPage(items, offset, opts.PageSize()), nil
	}
	return store.MakePage(items, opts.PageSize(), func(d store.Device) string { return d.ID }), nil
}

// deviceSortColumns maps store.DeviceSort columns (other than ID) to columns of devices.
var deviceSortColumns = map[string]string{
	store.SortDeviceName:     "name",
	store.SortDeviceStatus:   "online",
	store.SortDeviceProject:  "project_id",
	store.SortDeviceFirmware: "firmware_version",
	store.SortDeviceTags:     "tags",
	store.SortDeviceLastSeen: "last_seen_at",
	store.SortDeviceCreated:  "created_at",
}

// CountDevices counts a tenant's devices matching f.
func (s *Store) CountDevices(ctx context.Context, tenantID string, f store.DeviceFilter) (int64, error) {
	n, err := filterDevices(s.r.NewSelect().Table("devices"), tenantID, f).Count(ctx)
	if err != nil {
		return 0, wrap(err, "count devices of tenant %q", tenantID)
	}
	return int64(n), nil
}

// DeviceCounts sums up a tenant's devices by firmware, presence and disabled flag.
func (s *Store) DeviceCounts(ctx context.Context, tenantID string) (store.DeviceCounts, error) {
	var rows []struct {
		Firmware string `bun:"firmware_version"`
		Online   bool   `bun:"online"`
		Disabled bool   `bun:"disabled"`
		N        int64  `bun:"n"`
	}
	err := s.r.NewSelect().Table("devices").
		Column("firmware_version", "online", "disabled").ColumnExpr("COUNT(*) AS n").
		Where("tenant_id = ?", tenantID).
		Group("firmware_version", "online", "disabled").
		Scan(ctx, &rows)
	var c store.DeviceCounts
	if err != nil {
		return c, wrap(err, "count devices of tenant %q", tenantID)
	}
	for _, r := range rows {
		c.Add(r.Firmware, r.Online, r.Disabled, r.N)
	}
	return c, nil
}

// UpdateDevice saves Name, ProjectID, Tags and Disabled and sets UpdatedAt.
func (s *Store) UpdateDevice(ctx context.Context, d *store.Device) error {
	now := store.Now()
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var project any // NULL when unlinked
		if d.ProjectID != "" {
			project = d.ProjectID
		}
		res, err := tx.NewUpdate().Table("devices").
			Set("name = ?", d.Name).
			Set("project_id = ?", project).
			Set("tags = ?", toJSON(d.Tags)).
			Set("disabled = ?", d.Disabled).
			Set("updated_at = ?", now).
			Where("tenant_id = ?", d.TenantID).
			Where("id = ?", d.ID).
			Exec(ctx)
		if err := affected(res, err); err != nil {
			return err
		}
		return writeTags(ctx, tx, d.TenantID, d.ID, d.Tags)
	})
	if err != nil {
		return wrap(err, "update device %q", d.ID)
	}
	d.UpdatedAt = now
	return nil
}

// DeleteDevice removes a device with what only makes sense for it: its tags, device-scope
// config entries, config versions, commands, rollout states and error counts. Error reports
// and groups stay (they are the tenant's history).
func (s *Store) DeleteDevice(ctx context.Context, tenantID, id string) error {
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Table("devices").
			Where("tenant_id = ?", tenantID).
			Where("id = ?", id).
			Exec(ctx)
		if err := affected(res, err); err != nil {
			return err
		}
		steps := []*bun.DeleteQuery{
			tx.NewDelete().Table("device_tags").Where("tenant_id = ?", tenantID).Where("device_id = ?", id),
			tx.NewDelete().Table("config_entries").Where("tenant_id = ?", tenantID).
				Where("scope = ?", string(store.ScopeDevice)).Where("scope_id = ?", id),
			tx.NewDelete().Table("config_versions").Where("tenant_id = ?", tenantID).Where("device_id = ?", id),
			tx.NewDelete().Table("commands").Where("tenant_id = ?", tenantID).Where("device_id = ?", id),
			tx.NewDelete().Table("rollout_devices").Where("tenant_id = ?", tenantID).Where("device_id = ?", id),
			tx.NewDelete().Table("error_group_devices").Where("tenant_id = ?", tenantID).Where("device_id = ?", id),
			tx.NewDelete().Table("device_samples").Where("tenant_id = ?", tenantID).Where("device_id = ?", id),
		}
		for _, q := range steps {
			if _, err := q.Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap(err, "delete device %q", id)
}

// SetDeviceCredentials replaces the secret hash and the sealed key.
func (s *Store) SetDeviceCredentials(ctx context.Context, tenantID, id string, secretHash, keySealed []byte, at time.Time) error {
	res, err := s.w.NewUpdate().Table("devices").
		Set("secret_hash = ?", secretHash).
		Set("key_sealed = ?", keySealed).
		Set("credentials_rotated_at = ?", nowOr(at)).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "set credentials of device %q", id)
	}
	return nil
}

// SetDevicePresence records p unless the stored presence is as new or newer: the ChangedAt
// comparison is in the UPDATE's WHERE, so of two racing writers the newer report wins
// whatever the order they commit in. An older report is not an error.
func (s *Store) SetDevicePresence(ctx context.Context, tenantID, id string, p store.Presence) error {
	changed := nowOr(p.ChangedAt)
	res, err := s.w.NewUpdate().Table("devices").
		Set("online = ?", p.Online).
		Set("presence_changed_at = ?", changed).
		Set("last_seen_at = ?", nullTime(p.LastSeenAt)).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		WhereGroup(" AND ", func(q *bun.UpdateQuery) *bun.UpdateQuery {
			return q.Where("presence_changed_at IS NULL").WhereOr("presence_changed_at < ?", changed)
		}).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = notFoundOr(ctx, s.w, "devices", tenantID, id, nil)
		}
		return wrap(err, "set presence of device %q", id)
	}
	return nil
}

// TouchDevices moves LastSeenAt forward (never back) for many devices in one statement.
func (s *Store) TouchDevices(ctx context.Context, tenantID string, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	at = nowOr(at)
	_, err := s.w.NewUpdate().Table("devices").
		Set("last_seen_at = ?", at).
		Where("tenant_id = ?", tenantID).
		Where("id IN (?)", bun.In(ids)).
		WhereGroup(" AND ", func(q *bun.UpdateQuery) *bun.UpdateQuery {
			return q.Where("last_seen_at IS NULL").WhereOr("last_seen_at < ?", at)
		}).
		Exec(ctx)
	return wrap(err, "touch %d devices of tenant %q", len(ids), tenantID)
}

// SetDeviceMetadata replaces the metadata columns only.
func (s *Store) SetDeviceMetadata(ctx context.Context, tenantID, id string, m store.DeviceMetadata) error {
	res, err := s.w.NewUpdate().Table("devices").
		Set("firmware_version = ?", m.FirmwareVersion).
		Set("meta_project_name = ?", m.ProjectName).
		Set("chip_model = ?", m.ChipModel).
		Set("chip_revision = ?", m.ChipRevision).
		Set("idf_version = ?", m.IDFVersion).
		Set("mac = ?", m.MAC).
		Set("ip = ?", m.IP).
		Set("rssi = ?", m.RSSI).
		Set("free_heap = ?", m.FreeHeap).
		Set("uptime_seconds = ?", m.UptimeSeconds).
		Set("reset_reason = ?", m.ResetReason).
		Set("meta_config_version = ?", m.ConfigVersion).
		Set("protocol_version = ?", m.ProtocolVersion).
		Set("limit_command_bytes = ?", m.LimitCommandBytes).
		Set("limit_config_bytes = ?", m.LimitConfigBytes).
		Set("metadata_updated_at = ?", nullTime(m.UpdatedAt)).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "set metadata of device %q", id)
	}
	return nil
}

// SetDeviceConfigSync replaces the config sync columns only.
func (s *Store) SetDeviceConfigSync(ctx context.Context, tenantID, id string, cs store.ConfigSync) error {
	res, err := s.w.NewUpdate().Table("devices").
		Set("config_desired_version = ?", cs.DesiredVersion).
		Set("config_desired_hash = ?", cs.DesiredHash).
		Set("config_applied_version = ?", cs.AppliedVersion).
		Set("config_state = ?", string(cs.State)).
		Set("config_error = ?", cs.Error).
		Set("config_updated_at = ?", nullTime(cs.UpdatedAt)).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "set config sync of device %q", id)
	}
	return nil
}

// DeviceAuth is the broker's lookup by device ID alone (IDs are unique across tenants).
func (s *Store) DeviceAuth(ctx context.Context, deviceID string) (store.DeviceAuth, error) {
	var row deviceRow
	err := s.r.NewSelect().Model(&row).
		Column("id", "tenant_id", "secret_hash", "disabled").
		Where("id = ?", deviceID).
		Scan(ctx)
	if err != nil {
		return store.DeviceAuth{}, wrap(err, "get credentials of device %q", deviceID)
	}
	return store.DeviceAuth{DeviceID: row.ID, TenantID: row.TenantID, SecretHash: row.SecretHash, Disabled: row.Disabled}, nil
}

// nullTime is a normalised time for a Set clause, or NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ts(t)
}
