package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// rolloutRow is a row of rollouts; the target is flattened into target_* columns and the
// stage list and device list are JSON arrays.
type rolloutRow struct {
	bun.BaseModel `bun:"table:rollouts"`

	ID               string    `bun:"id"`
	TenantID         string    `bun:"tenant_id"`
	ProjectID        string    `bun:"project_id"`
	ReleaseID        string    `bun:"release_id"`
	TargetKind       string    `bun:"target_kind"`
	TargetTag        string    `bun:"target_tag"`
	TargetDeviceIDs  string    `bun:"target_device_ids"`
	TargetPercent    int       `bun:"target_percent"`
	Stages           string    `bun:"stages"`
	CurrentStage     int       `bun:"current_stage"`
	FailureThreshold float64   `bun:"failure_threshold"`
	StageSoakSeconds int64     `bun:"stage_soak_seconds"`
	RequireApproval  bool      `bun:"require_approval"`
	StageDoneAt      time.Time `bun:"stage_done_at,nullzero"`
	State            string    `bun:"state"`
	PauseReason      string    `bun:"pause_reason"`
	Version          int64     `bun:"version"`
	CreatedBy        string    `bun:"created_by"`
	CreatedAt        time.Time `bun:"created_at"`
	UpdatedAt        time.Time `bun:"updated_at"`
}

func (r rolloutRow) domain() (store.Rollout, error) {
	ids, err := fromJSON[string](r.TargetDeviceIDs)
	if err != nil {
		return store.Rollout{}, err
	}
	stages, err := fromJSON[int](r.Stages)
	if err != nil {
		return store.Rollout{}, err
	}
	return store.Rollout{
		ID: r.ID, TenantID: r.TenantID, ProjectID: r.ProjectID, ReleaseID: r.ReleaseID,
		Target:       store.RolloutTarget{Kind: store.TargetKind(r.TargetKind), Tag: r.TargetTag, DeviceIDs: ids, Percent: r.TargetPercent},
		Stages:       stages,
		CurrentStage: r.CurrentStage, FailureThreshold: r.FailureThreshold, State: store.RolloutState(r.State),
		StageSoak: time.Duration(r.StageSoakSeconds) * time.Second, RequireApproval: r.RequireApproval, StageDoneAt: utc(r.StageDoneAt),
		PauseReason: r.PauseReason, Version: r.Version, CreatedBy: r.CreatedBy,
		CreatedAt: utc(r.CreatedAt), UpdatedAt: utc(r.UpdatedAt),
	}, nil
}

// rolloutDeviceRow is a row of rollout_devices.
type rolloutDeviceRow struct {
	bun.BaseModel `bun:"table:rollout_devices"`

	TenantID  string    `bun:"tenant_id"`
	RolloutID string    `bun:"rollout_id"`
	DeviceID  string    `bun:"device_id"`
	State     string    `bun:"state"`
	Progress  int       `bun:"progress"`
	Reason    string    `bun:"reason"`
	CommandID string    `bun:"command_id"`
	UpdatedAt time.Time `bun:"updated_at,nullzero"`
}

func (r rolloutDeviceRow) domain() store.RolloutDevice {
	return store.RolloutDevice{
		TenantID: r.TenantID, RolloutID: r.RolloutID, DeviceID: r.DeviceID, State: store.UpdateState(r.State),
		Progress: r.Progress, Reason: r.Reason, CommandID: r.CommandID, UpdatedAt: utc(r.UpdatedAt),
	}
}

// CreateRollout inserts r. Its Version starts at 1 (when left 0) and an empty State is active.
func (s *Store) CreateRollout(ctx context.Context, r *store.Rollout) error {
	c := *r
	store.PrepareCreate(&c.ID, &c.CreatedAt, &c.UpdatedAt)
	if c.Version == 0 {
		c.Version = 1
	}
	if c.State == "" {
		c.State = store.RolloutActive
	}
	row := rolloutRow{
		ID: c.ID, TenantID: c.TenantID, ProjectID: c.ProjectID, ReleaseID: c.ReleaseID,
		TargetKind: string(c.Target.Kind), TargetTag: c.Target.Tag, TargetDeviceIDs: toJSON(c.Target.DeviceIDs),
		TargetPercent: c.Target.Percent, Stages: toJSON(c.Stages), CurrentStage: c.CurrentStage,
		FailureThreshold: c.FailureThreshold, State: string(c.State), PauseReason: c.PauseReason,
		StageSoakSeconds: int64(c.StageSoak / time.Second), RequireApproval: c.RequireApproval, StageDoneAt: c.StageDoneAt,
		Version: c.Version, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create rollout of release %q", c.ReleaseID)
	}
	*r = c
	return nil
}

// Rollout returns one of a tenant's rollouts.
func (s *Store) Rollout(ctx context.Context, tenantID, id string) (store.Rollout, error) {
	var row rolloutRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Scan(ctx)
	if err != nil {
		return store.Rollout{}, wrap(err, "get rollout %q", id)
	}
	r, err := row.domain()
	return r, wrap(err, "get rollout %q", id)
}

// ListRollouts pages through a tenant's rollouts matching f.
func (s *Store) ListRollouts(ctx context.Context, tenantID string, f store.RolloutFilter, opts store.ListOptions) (store.Page[store.Rollout], error) {
	var rows []rolloutRow
	q := s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID)
	if f.ProjectID != "" {
		q = q.Where("project_id = ?", f.ProjectID)
	}
	if f.State != "" {
		q = q.Where("state = ?", string(f.State))
	}
	if err := pageByID(q, opts).Scan(ctx); err != nil {
		return store.Page[store.Rollout]{}, wrap(err, "list rollouts of tenant %q", tenantID)
	}
	items := make([]store.Rollout, len(rows))
	for i, r := range rows {
		ro, err := r.domain()
		if err != nil {
			return store.Page[store.Rollout]{}, wrap(err, "list rollouts of tenant %q", tenantID)
		}
		items[i] = ro
	}
	return store.MakePage(items, opts.PageSize(), func(r store.Rollout) string { return r.ID }), nil
}

// UpdateRollout saves the mutable fields if r.Version is the stored version (one conditional
// UPDATE: of two replicas advancing a rollout, one wins and the other gets store.ErrConflict)
// and increments r.Version.
func (s *Store) UpdateRollout(ctx context.Context, r *store.Rollout) error {
	now := store.Now()
	res, err := s.w.NewUpdate().Table("rollouts").
		Set("stages = ?", toJSON(r.Stages)).
		Set("current_stage = ?", r.CurrentStage).
		Set("failure_threshold = ?", r.FailureThreshold).
		Set("state = ?", string(r.State)).
		Set("pause_reason = ?", r.PauseReason).
		Set("stage_done_at = ?", nullTime(r.StageDoneAt)).
		Set("version = version + 1").
		Set("updated_at = ?", now).
		Where("tenant_id = ?", r.TenantID).
		Where("id = ?", r.ID).
		Where("version = ?", r.Version).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = notFoundOr(ctx, s.w, "rollouts", r.TenantID, r.ID, store.ErrConflict)
		}
		return wrap(err, "update rollout %q at version %d", r.ID, r.Version)
	}
	r.Version++
	r.UpdatedAt = now
	return nil
}

// DeleteRollout removes a rollout and its per-device states.
func (s *Store) DeleteRollout(ctx context.Context, tenantID, id string) error {
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Table("rollouts").
			Where("tenant_id = ?", tenantID).
			Where("id = ?", id).
			Exec(ctx)
		if err := affected(res, err); err != nil {
			return err
		}
		_, err = tx.NewDelete().Table("rollout_devices").
			Where("tenant_id = ?", tenantID).
			Where("rollout_id = ?", id).
			Exec(ctx)
		return err
	})
	return wrap(err, "delete rollout %q", id)
}

// PutRolloutDevice creates or replaces one device's state in a rollout (an upsert on the
// primary key, so concurrent reports never fail on a duplicate).
func (s *Store) PutRolloutDevice(ctx context.Context, d *store.RolloutDevice) error {
	c := *d
	c.UpdatedAt = nowOr(c.UpdatedAt)
	row := rolloutDeviceRow{
		TenantID: c.TenantID, RolloutID: c.RolloutID, DeviceID: c.DeviceID, State: string(c.State),
		Progress: c.Progress, Reason: c.Reason, CommandID: c.CommandID, UpdatedAt: c.UpdatedAt,
	}
	conflict := "CONFLICT (tenant_id, rollout_id, device_id) DO UPDATE"
	set := "state = EXCLUDED.state, progress = EXCLUDED.progress, reason = EXCLUDED.reason, " +
		"command_id = EXCLUDED.command_id, updated_at = EXCLUDED.updated_at"
	if s.backend == BackendMySQL {
		conflict = "DUPLICATE KEY UPDATE"
		set = "state = VALUES(state), progress = VALUES(progress), reason = VALUES(reason), " +
			"command_id = VALUES(command_id), updated_at = VALUES(updated_at)"
	}
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		// The rollout must exist in the tenant: a state under another tenant's rollout ID
		// would otherwise be created silently.
		ok, err := exists(ctx, tx, "rollouts", c.TenantID, c.RolloutID)
		switch {
		case err != nil:
			return err
		case !ok:
			return store.ErrNotFound
		}
		_, err = tx.NewInsert().Model(&row).On(conflict).Set(set).Exec(ctx)
		return err
	})
	if err != nil {
		return wrap(err, "put state of device %q in rollout %q", c.DeviceID, c.RolloutID)
	}
	*d = c
	return nil
}

// RolloutDevice returns one device's state in a rollout.
func (s *Store) RolloutDevice(ctx context.Context, tenantID, rolloutID, deviceID string) (store.RolloutDevice, error) {
	var row rolloutDeviceRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("rollout_id = ?", rolloutID).
		Where("device_id = ?", deviceID).
		Scan(ctx)
	if err != nil {
		return store.RolloutDevice{}, wrap(err, "get state of device %q in rollout %q", deviceID, rolloutID)
	}
	return row.domain(), nil
}

// ListRolloutDevices pages through a rollout's devices; the cursor is the device ID.
func (s *Store) ListRolloutDevices(ctx context.Context, tenantID, rolloutID string, opts store.ListOptions) (store.Page[store.RolloutDevice], error) {
	var rows []rolloutDeviceRow
	q := s.r.NewSelect().Model(&rows).
		Where("tenant_id = ?", tenantID).
		Where("rollout_id = ?", rolloutID)
	if err := paginate(q, "device_id", opts.Cursor, opts.Cursor != "", opts).Scan(ctx); err != nil {
		return store.Page[store.RolloutDevice]{}, wrap(err, "list devices of rollout %q", rolloutID)
	}
	items := make([]store.RolloutDevice, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(d store.RolloutDevice) string { return d.DeviceID }), nil
}

// DeviceUpdates lists one device's rollout states, oldest rollout first.
func (s *Store) DeviceUpdates(ctx context.Context, tenantID, deviceID string) ([]store.RolloutDevice, error) {
	var rows []rolloutDeviceRow
	err := s.r.NewSelect().Model(&rows).
		Where("tenant_id = ?", tenantID).
		Where("device_id = ?", deviceID).
		OrderExpr("rollout_id ASC").
		Scan(ctx)
	if err != nil {
		return nil, wrap(err, "list updates of device %q", deviceID)
	}
	items := make([]store.RolloutDevice, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return items, nil
}

// CountRolloutDevices counts a rollout's devices per state (states with no device are absent).
func (s *Store) CountRolloutDevices(ctx context.Context, tenantID, rolloutID string) (map[store.UpdateState]int64, error) {
	var counts []struct {
		State string `bun:"state"`
		N     int64  `bun:"n"`
	}
	err := s.r.NewSelect().Table("rollout_devices").
		ColumnExpr("state").
		ColumnExpr("COUNT(*) AS n").
		Where("tenant_id = ?", tenantID).
		Where("rollout_id = ?", rolloutID).
		Group("state").
		Scan(ctx, &counts)
	if err != nil {
		return nil, wrap(err, "count devices of rollout %q", rolloutID)
	}
	out := make(map[store.UpdateState]int64, len(counts))
	for _, c := range counts {
		out[store.UpdateState(c.State)] = c.N
	}
	return out, nil
}
