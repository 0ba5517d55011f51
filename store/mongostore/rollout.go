package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/espadmin/espadmin/store"
)

type rolloutTargetDoc struct {
	Kind      string   `bson:"kind"`
	Tag       string   `bson:"tag"`
	DeviceIDs []string `bson:"device_ids"`
	Percent   int      `bson:"percent"`
}

type rolloutDoc struct {
	ID               string           `bson:"_id"`
	TenantID         string           `bson:"tenant_id"`
	ProjectID        string           `bson:"project_id"`
	ReleaseID        string           `bson:"release_id"`
	Target           rolloutTargetDoc `bson:"target"`
	Stages           []int            `bson:"stages"`
	CurrentStage     int              `bson:"current_stage"`
	FailureThreshold float64          `bson:"failure_threshold"`
	StageSoakSeconds int64            `bson:"stage_soak_seconds,omitempty"`
	RequireApproval  bool             `bson:"require_approval,omitempty"`
	StageDoneAt      *time.Time       `bson:"stage_done_at,omitempty"`
	State            string           `bson:"state"`
	PauseReason      string           `bson:"pause_reason"`
	Version          int64            `bson:"version"`
	CreatedBy        string           `bson:"created_by"`
	CreatedAt        time.Time        `bson:"created_at"`
	UpdatedAt        time.Time        `bson:"updated_at"`
}

func rolloutFromDoc(d rolloutDoc) store.Rollout {
	return store.Rollout{
		ID: d.ID, TenantID: d.TenantID, ProjectID: d.ProjectID, ReleaseID: d.ReleaseID,
		Target: store.RolloutTarget{
			Kind: store.TargetKind(d.Target.Kind), Tag: d.Target.Tag, DeviceIDs: d.Target.DeviceIDs, Percent: d.Target.Percent,
		},
		Stages: d.Stages, CurrentStage: d.CurrentStage, FailureThreshold: d.FailureThreshold,
		State: store.RolloutState(d.State), PauseReason: d.PauseReason, Version: d.Version,
		StageSoak: time.Duration(d.StageSoakSeconds) * time.Second, RequireApproval: d.RequireApproval, StageDoneAt: timeOf(d.StageDoneAt),
		CreatedBy: d.CreatedBy, CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt),
	}
}

// timeOf is utc of an optional time; nil is the zero time.
func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return utc(*t)
}

// timePtr is nil for the zero time, so an unset time is absent from the document.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// CreateRollout inserts r; an empty State becomes active. r.Version is stored as given (0
// normally) and is what the first UpdateRollout must present.
func (s *Store) CreateRollout(ctx context.Context, r *store.Rollout) error {
	store.PrepareCreate(&r.ID, &r.CreatedAt, &r.UpdatedAt)
	if r.State == "" {
		r.State = store.RolloutActive
	}
	_, err := s.col(colRollouts).InsertOne(ctx, rolloutDoc{
		ID: r.ID, TenantID: r.TenantID, ProjectID: r.ProjectID, ReleaseID: r.ReleaseID,
		Target: rolloutTargetDoc{
			Kind: string(r.Target.Kind), Tag: r.Target.Tag, DeviceIDs: r.Target.DeviceIDs, Percent: r.Target.Percent,
		},
		Stages: r.Stages, CurrentStage: r.CurrentStage, FailureThreshold: r.FailureThreshold,
		State: string(r.State), PauseReason: r.PauseReason, Version: r.Version,
		StageSoakSeconds: int64(r.StageSoak / time.Second), RequireApproval: r.RequireApproval, StageDoneAt: timePtr(r.StageDoneAt),
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	})
	return wrap(err, "create rollout of release %q", r.ReleaseID)
}

// Rollout returns one of a tenant's rollouts.
func (s *Store) Rollout(ctx context.Context, tenantID, id string) (store.Rollout, error) {
	r, err := findOne(ctx, s.col(colRollouts), tenantKey(tenantID, id), rolloutFromDoc)
	return r, wrap(err, "get rollout %q", id)
}

// ListRollouts pages through a tenant's rollouts matching f, by ID.
func (s *Store) ListRollouts(ctx context.Context, tenantID string, f store.RolloutFilter, opts store.ListOptions) (store.Page[store.Rollout], error) {
	filter := bson.D{{Key: "tenant_id", Value: tenantID}}
	if f.ProjectID != "" {
		filter = append(filter, bson.E{Key: "project_id", Value: f.ProjectID})
	}
	if f.State != "" {
		filter = append(filter, bson.E{Key: "state", Value: string(f.State)})
	}
	p, err := listPage(ctx, s.col(colRollouts), pageQuery{filter: filter, field: "_id", listOpts: opts},
		rolloutFromDoc, func(r store.Rollout) string { return r.ID })
	return p, wrap(err, "list rollouts of tenant %q", tenantID)
}

// UpdateRollout saves the mutable fields in one update whose filter holds r.Version, so with
// several replicas a rollout advances once; a stale version is store.ErrConflict.
func (s *Store) UpdateRollout(ctx context.Context, r *store.Rollout) error {
	now := store.Now()
	key := tenantKey(r.TenantID, r.ID)
	res, err := s.col(colRollouts).UpdateOne(ctx, append(append(bson.D{}, key...), bson.E{Key: "version", Value: r.Version}), bson.D{
		{Key: "$set", Value: bson.D{
			{Key: "stages", Value: r.Stages},
			{Key: "current_stage", Value: r.CurrentStage},
			{Key: "failure_threshold", Value: r.FailureThreshold},
			{Key: "state", Value: string(r.State)},
			{Key: "pause_reason", Value: r.PauseReason},
			{Key: "stage_done_at", Value: timePtr(r.StageDoneAt)},
			{Key: "updated_at", Value: now},
		}},
		{Key: "$inc", Value: bson.D{{Key: "version", Value: int64(1)}}},
	})
	if err != nil {
		return wrap(err, "update rollout %q", r.ID)
	}
	if res.MatchedCount == 0 {
		ok, err := exists(ctx, s.col(colRollouts), key)
		if err != nil {
			return wrap(err, "update rollout %q", r.ID)
		}
		if ok {
			return conflict("update rollout %q: version %d is not the stored one", r.ID, r.Version)
		}
		return notFound("update rollout %q", r.ID)
	}
	r.Version++
	r.UpdatedAt = now
	return nil
}

// DeleteRollout removes the rollout with its per-device states.
func (s *Store) DeleteRollout(ctx context.Context, tenantID, id string) error {
	if err := deleteOne(ctx, s.col(colRollouts), tenantKey(tenantID, id), "rollout", id); err != nil {
		return err
	}
	_, err := s.col(colRolloutDevices).DeleteMany(ctx, bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "rollout_id", Value: id}})
	return wrap(err, "delete rollout %q: device states", id)
}

// Rollout devices, identified by (tenant_id, rollout_id, device_id) under a unique index.

type rolloutDeviceDoc struct {
	TenantID  string    `bson:"tenant_id"`
	RolloutID string    `bson:"rollout_id"`
	DeviceID  string    `bson:"device_id"`
	State     string    `bson:"state"`
	Progress  int       `bson:"progress"`
	Reason    string    `bson:"reason"`
	CommandID string    `bson:"command_id"`
	UpdatedAt time.Time `bson:"updated_at"`
}

func rolloutDeviceFromDoc(d rolloutDeviceDoc) store.RolloutDevice {
	return store.RolloutDevice{
		TenantID: d.TenantID, RolloutID: d.RolloutID, DeviceID: d.DeviceID, State: store.UpdateState(d.State),
		Progress: d.Progress, Reason: d.Reason, CommandID: d.CommandID, UpdatedAt: utc(d.UpdatedAt),
	}
}

func rolloutDeviceKey(tenantID, rolloutID, deviceID string) bson.D {
	return bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "rollout_id", Value: rolloutID}, {Key: "device_id", Value: deviceID}}
}

// PutRolloutDevice creates or replaces one device's state in a rollout (an upsert on the
// natural key). A zero UpdatedAt becomes the current time. The rollout must exist in the
// tenant (store.ErrNotFound otherwise), as the SQL schema's foreign key demands; a rollout
// deleted at the same moment can still leave one orphaned state behind.
func (s *Store) PutRolloutDevice(ctx context.Context, d *store.RolloutDevice) error {
	ok, err := exists(ctx, s.col(colRollouts), tenantKey(d.TenantID, d.RolloutID))
	if err != nil {
		return wrap(err, "put state of device %q in rollout %q", d.DeviceID, d.RolloutID)
	}
	if !ok {
		return notFound("put state of device %q in rollout %q", d.DeviceID, d.RolloutID)
	}
	d.UpdatedAt = orNow(d.UpdatedAt)
	doc := rolloutDeviceDoc{
		TenantID: d.TenantID, RolloutID: d.RolloutID, DeviceID: d.DeviceID, State: string(d.State),
		Progress: d.Progress, Reason: d.Reason, CommandID: d.CommandID, UpdatedAt: d.UpdatedAt,
	}
	err = retryDuplicate(func() error {
		_, err := s.col(colRolloutDevices).ReplaceOne(ctx, rolloutDeviceKey(d.TenantID, d.RolloutID, d.DeviceID), doc,
			options.Replace().SetUpsert(true))
		return err
	})
	return wrap(err, "put state of device %q in rollout %q", d.DeviceID, d.RolloutID)
}

// RolloutDevice returns one device's state in a rollout.
func (s *Store) RolloutDevice(ctx context.Context, tenantID, rolloutID, deviceID string) (store.RolloutDevice, error) {
	d, err := findOne(ctx, s.col(colRolloutDevices), rolloutDeviceKey(tenantID, rolloutID, deviceID), rolloutDeviceFromDoc)
	return d, wrap(err, "get state of device %q in rollout %q", deviceID, rolloutID)
}

// ListRolloutDevices pages through a rollout's devices; the cursor is the device ID.
func (s *Store) ListRolloutDevices(ctx context.Context, tenantID, rolloutID string, opts store.ListOptions) (store.Page[store.RolloutDevice], error) {
	p, err := listPage(ctx, s.col(colRolloutDevices),
		pageQuery{filter: bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "rollout_id", Value: rolloutID}}, field: "device_id", listOpts: opts},
		rolloutDeviceFromDoc, func(d store.RolloutDevice) string { return d.DeviceID })
	return p, wrap(err, "list devices of rollout %q", rolloutID)
}

// DeviceUpdates lists one device's rollout states, oldest rollout first.
func (s *Store) DeviceUpdates(ctx context.Context, tenantID, deviceID string) ([]store.RolloutDevice, error) {
	ds, err := findAll(ctx, s.col(colRolloutDevices),
		bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "device_id", Value: deviceID}},
		rolloutDeviceFromDoc, options.Find().SetSort(asc("rollout_id")))
	return ds, wrap(err, "list updates of device %q", deviceID)
}

// CountRolloutDevices counts a rollout's devices per state with one $group aggregation.
func (s *Store) CountRolloutDevices(ctx context.Context, tenantID, rolloutID string) (map[store.UpdateState]int64, error) {
	cur, err := s.col(colRolloutDevices).Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "rollout_id", Value: rolloutID}}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$state"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return nil, wrap(err, "count devices of rollout %q", rolloutID)
	}
	var rows []struct {
		State string `bson:"_id"`
		N     int64  `bson:"n"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, wrap(err, "count devices of rollout %q", rolloutID)
	}
	counts := make(map[store.UpdateState]int64, len(rows))
	for _, r := range rows {
		counts[store.UpdateState(r.State)] = r.N
	}
	return counts, nil
}
