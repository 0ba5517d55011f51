package mongostore

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/espadmin/espadmin/store"
)

type commandDoc struct {
	ID          string     `bson:"_id"`
	TenantID    string     `bson:"tenant_id"`
	DeviceID    string     `bson:"device_id"`
	Name        string     `bson:"name"`
	Payload     string     `bson:"payload"`
	State       string     `bson:"state"`
	Result      string     `bson:"result"`
	Error       string     `bson:"error"`
	RolloutID   string     `bson:"rollout_id"`
	CreatedBy   string     `bson:"created_by"`
	CreatedAt   time.Time  `bson:"created_at"`
	ExpiresAt   time.Time  `bson:"expires_at"`
	DeliveredAt *time.Time `bson:"delivered_at"`
	CompletedAt *time.Time `bson:"completed_at"`
	UpdatedAt   time.Time  `bson:"updated_at"`
}

func commandFromDoc(d commandDoc) store.Command {
	return store.Command{
		ID: d.ID, TenantID: d.TenantID, DeviceID: d.DeviceID, Name: d.Name, Payload: d.Payload,
		State: store.CommandState(d.State), Result: d.Result, Error: d.Error, RolloutID: d.RolloutID,
		CreatedBy: d.CreatedBy, CreatedAt: utc(d.CreatedAt), ExpiresAt: utc(d.ExpiresAt),
		DeliveredAt: utcPtr(d.DeliveredAt), CompletedAt: utcPtr(d.CompletedAt), UpdatedAt: utc(d.UpdatedAt),
	}
}

// CreateCommand inserts c; an empty State becomes queued.
func (s *Store) CreateCommand(ctx context.Context, c *store.Command) error {
	store.PrepareCreate(&c.ID, &c.CreatedAt, &c.UpdatedAt)
	if c.State == "" {
		c.State = store.CommandQueued
	}
	c.ExpiresAt = store.Timestamp(c.ExpiresAt)
	c.DeliveredAt = store.TimestampPtr(c.DeliveredAt)
	c.CompletedAt = store.TimestampPtr(c.CompletedAt)
	_, err := s.col(colCommands).InsertOne(ctx, commandDoc{
		ID: c.ID, TenantID: c.TenantID, DeviceID: c.DeviceID, Name: c.Name, Payload: c.Payload,
		State: string(c.State), Result: c.Result, Error: c.Error, RolloutID: c.RolloutID,
		CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, ExpiresAt: c.ExpiresAt,
		DeliveredAt: c.DeliveredAt, CompletedAt: c.CompletedAt, UpdatedAt: c.UpdatedAt,
	})
	return wrap(err, "create command %q for device %q", c.Name, c.DeviceID)
}

// Command returns one of a tenant's commands.
func (s *Store) Command(ctx context.Context, tenantID, id string) (store.Command, error) {
	c, err := findOne(ctx, s.col(colCommands), tenantKey(tenantID, id), commandFromDoc)
	return c, wrap(err, "get command %q", id)
}

// ListCommands pages through a tenant's commands matching f, by ID.
func (s *Store) ListCommands(ctx context.Context, tenantID string, f store.CommandFilter, opts store.ListOptions) (store.Page[store.Command], error) {
	filter := bson.D{{Key: "tenant_id", Value: tenantID}}
	if f.DeviceID != "" {
		filter = append(filter, bson.E{Key: "device_id", Value: f.DeviceID})
	}
	if f.State != "" {
		filter = append(filter, bson.E{Key: "state", Value: string(f.State)})
	}
	if f.RolloutID != "" {
		filter = append(filter, bson.E{Key: "rollout_id", Value: f.RolloutID})
	}
	p, err := listPage(ctx, s.col(colCommands), pageQuery{filter: filter, field: "_id", listOpts: opts},
		commandFromDoc, func(c store.Command) string { return c.ID })
	return p, wrap(err, "list commands of tenant %q", tenantID)
}

// TransitionCommand applies t in one FindOneAndUpdate whose filter requires the stored state
// to be in t.From, so of two replicas applying the same acknowledgement exactly one succeeds;
// the other (and any transition from a state not in From) gets store.ErrConflict.
func (s *Store) TransitionCommand(ctx context.Context, tenantID, id string, t store.CommandTransition) (store.Command, error) {
	at := orNow(t.At)
	from := make(bson.A, 0, len(t.From))
	for _, st := range t.From {
		from = append(from, string(st))
	}
	set := bson.D{
		{Key: "state", Value: string(t.To)},
		{Key: "updated_at", Value: at},
	}
	if t.Result != "" {
		set = append(set, bson.E{Key: "result", Value: t.Result})
	}
	if t.Error != "" {
		set = append(set, bson.E{Key: "error", Value: t.Error})
	}
	switch {
	case t.To == store.CommandDelivered:
		set = append(set, bson.E{Key: "delivered_at", Value: at})
	case t.To.Final():
		set = append(set, bson.E{Key: "completed_at", Value: at})
	}
	filter := append(tenantKey(tenantID, id), bson.E{Key: "state", Value: bson.D{{Key: "$in", Value: from}}})

	var doc commandDoc
	err := s.col(colCommands).FindOneAndUpdate(ctx, filter, bson.D{{Key: "$set", Value: set}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&doc)
	if err == nil && t.Answered && doc.DeliveredAt == nil {
		// The answer overtook the record of its delivery. The command is final now, so no other
		// transition writes delivered_at; the filter keeps a concurrent writer's value anyway.
		_, err = s.col(colCommands).UpdateOne(ctx,
			append(tenantKey(tenantID, id), bson.E{Key: "delivered_at", Value: nil}),
			bson.D{{Key: "$set", Value: bson.D{{Key: "delivered_at", Value: at}}}})
		if err != nil {
			return store.Command{}, wrap(err, "record delivery of answered command %q", id)
		}
		doc.DeliveredAt = &at
	}
	if err == nil {
		return commandFromDoc(doc), nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return store.Command{}, wrap(err, "transition command %q to %s", id, t.To)
	}
	if cur, getErr := s.Command(ctx, tenantID, id); getErr == nil {
		return store.Command{}, conflict("transition command %q from %s to %s: it is %s", id, t.From, t.To, cur.State)
	}
	return store.Command{}, wrap(err, "transition command %q to %s", id, t.To)
}

// pendingStates are the states in which a command still waits for the device.
var pendingStates = bson.A{string(store.CommandQueued), string(store.CommandDelivered)}

// PendingCommands lists a device's queued or delivered commands that expire after now, oldest
// first.
func (s *Store) PendingCommands(ctx context.Context, tenantID, deviceID string, now time.Time) ([]store.Command, error) {
	cs, err := findAll(ctx, s.col(colCommands), bson.D{
		{Key: "tenant_id", Value: tenantID},
		{Key: "device_id", Value: deviceID},
		{Key: "state", Value: bson.D{{Key: "$in", Value: pendingStates}}},
		{Key: "expires_at", Value: bson.D{{Key: "$gt", Value: store.Timestamp(now)}}},
	}, commandFromDoc, options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}))
	return cs, wrap(err, "list pending commands of device %q", deviceID)
}

// ExpireCommands moves the tenant's queued or delivered commands whose ExpiresAt is at or
// before now to expired, in one multi-document update: each document is updated atomically,
// and its filter re-checks the state, so a command acknowledged meanwhile is not expired.
func (s *Store) ExpireCommands(ctx context.Context, tenantID string, now time.Time) (int64, error) {
	now = orNow(now)
	res, err := s.col(colCommands).UpdateMany(ctx, bson.D{
		{Key: "tenant_id", Value: tenantID},
		{Key: "state", Value: bson.D{{Key: "$in", Value: pendingStates}}},
		{Key: "expires_at", Value: bson.D{{Key: "$lte", Value: now}}},
	}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "state", Value: string(store.CommandExpired)},
		{Key: "completed_at", Value: now},
		{Key: "updated_at", Value: now},
	}}})
	if err != nil {
		return 0, wrap(err, "expire commands of tenant %q", tenantID)
	}
	return res.ModifiedCount, nil
}
