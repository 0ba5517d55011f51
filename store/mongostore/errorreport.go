package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/espadmin/espadmin/store"
)

type errorReportDoc struct {
	ID              string    `bson:"_id"`
	TenantID        string    `bson:"tenant_id"`
	DeviceID        string    `bson:"device_id"`
	ProjectID       string    `bson:"project_id"`
	GroupID         string    `bson:"group_id"`
	Fingerprint     string    `bson:"fingerprint"`
	Message         string    `bson:"message"`
	Type            string    `bson:"type"`
	Code            string    `bson:"code"`
	Severity        string    `bson:"severity"`
	Stack           string    `bson:"stack"`
	ResetReason     string    `bson:"reset_reason"`
	FirmwareVersion string    `bson:"firmware_version"`
	UptimeSeconds   int64     `bson:"uptime_seconds"`
	FreeHeap        int64     `bson:"free_heap"`
	CoreDump        string    `bson:"core_dump"`
	ReceivedAt      time.Time `bson:"received_at"`
}

func errorReportFromDoc(d errorReportDoc) store.ErrorReport {
	r := store.ErrorReport(d)
	r.ReceivedAt = utc(r.ReceivedAt)
	return r
}

type errorGroupDoc struct {
	ID              string     `bson:"_id"`
	TenantID        string     `bson:"tenant_id"`
	ProjectID       string     `bson:"project_id"`
	Fingerprint     string     `bson:"fingerprint"`
	Type            string     `bson:"type"`
	Message         string     `bson:"message"`
	FirmwareVersion string     `bson:"firmware_version"`
	Count           int64      `bson:"count"`
	FirstSeen       time.Time  `bson:"first_seen"`
	LastSeen        time.Time  `bson:"last_seen"`
	Resolved        bool       `bson:"resolved"`
	ResolvedAt      *time.Time `bson:"resolved_at"`
	ResolvedBy      string     `bson:"resolved_by"`
}

func errorGroupFromDoc(d errorGroupDoc) store.ErrorGroup {
	g := store.ErrorGroup(d)
	g.FirstSeen, g.LastSeen, g.ResolvedAt = utc(g.FirstSeen), utc(g.LastSeen), utcPtr(g.ResolvedAt)
	return g
}

type errorGroupDeviceDoc struct {
	TenantID  string    `bson:"tenant_id"`
	GroupID   string    `bson:"group_id"`
	DeviceID  string    `bson:"device_id"`
	Count     int64     `bson:"count"`
	FirstSeen time.Time `bson:"first_seen"`
	LastSeen  time.Time `bson:"last_seen"`
}

func errorGroupDeviceFromDoc(d errorGroupDeviceDoc) store.ErrorGroupDevice {
	g := store.ErrorGroupDevice(d)
	g.FirstSeen, g.LastSeen = utc(g.FirstSeen), utc(g.LastSeen)
	return g
}

// RecordError counts r in its group and in the group's per-device count, then stores r.
//
// Both counts are upserts with commuting operators ($inc for the count, $min and $max for the
// first and last sighting, $setOnInsert for what the first report decides), so concurrent
// reports of one fingerprint lose no count whatever their order. The unique indexes on
// (tenant_id, fingerprint) and (tenant_id, group_id, device_id) make two first reports create
// one document: the upsert that loses the race is run again and becomes an update.
func (s *Store) RecordError(ctx context.Context, r *store.ErrorReport) (store.ErrorGroup, error) {
	if r.ID == "" {
		r.ID = store.NewID()
	}
	r.ReceivedAt = orNow(r.ReceivedAt)

	var group errorGroupDoc
	err := retryDuplicate(func() error {
		return s.col(colErrorGroups).FindOneAndUpdate(ctx,
			bson.D{{Key: "tenant_id", Value: r.TenantID}, {Key: "fingerprint", Value: r.Fingerprint}},
			bson.D{
				{Key: "$inc", Value: bson.D{{Key: "count", Value: int64(1)}}},
				{Key: "$min", Value: bson.D{{Key: "first_seen", Value: r.ReceivedAt}}},
				{Key: "$max", Value: bson.D{{Key: "last_seen", Value: r.ReceivedAt}}},
				{Key: "$setOnInsert", Value: bson.D{
					{Key: "_id", Value: store.NewID()},
					{Key: "project_id", Value: r.ProjectID},
					{Key: "type", Value: r.Type},
					{Key: "message", Value: r.Message},
					{Key: "firmware_version", Value: r.FirmwareVersion},
					{Key: "resolved", Value: false},
					{Key: "resolved_at", Value: nil},
					{Key: "resolved_by", Value: ""},
				}},
			},
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After),
		).Decode(&group)
	})
	if err != nil {
		return store.ErrorGroup{}, wrap(err, "record error %q: group", r.Fingerprint)
	}
	r.GroupID = group.ID

	if r.DeviceID != "" {
		err = retryDuplicate(func() error {
			_, err := s.col(colErrorGroupDevices).UpdateOne(ctx,
				bson.D{{Key: "tenant_id", Value: r.TenantID}, {Key: "group_id", Value: group.ID}, {Key: "device_id", Value: r.DeviceID}},
				bson.D{
					{Key: "$inc", Value: bson.D{{Key: "count", Value: int64(1)}}},
					{Key: "$min", Value: bson.D{{Key: "first_seen", Value: r.ReceivedAt}}},
					{Key: "$max", Value: bson.D{{Key: "last_seen", Value: r.ReceivedAt}}},
				},
				options.UpdateOne().SetUpsert(true))
			return err
		})
		if err != nil {
			return store.ErrorGroup{}, wrap(err, "record error %q: count for device %q", r.Fingerprint, r.DeviceID)
		}
	}

	if _, err := s.col(colErrorReports).InsertOne(ctx, errorReportDoc(*r)); err != nil {
		return store.ErrorGroup{}, wrap(err, "record error %q: report", r.Fingerprint)
	}
	return errorGroupFromDoc(group), nil
}

// ErrorGroup returns one of a tenant's error groups.
func (s *Store) ErrorGroup(ctx context.Context, tenantID, id string) (store.ErrorGroup, error) {
	g, err := findOne(ctx, s.col(colErrorGroups), tenantKey(tenantID, id), errorGroupFromDoc)
	return g, wrap(err, "get error group %q", id)
}

// ListErrorGroups pages through a tenant's groups matching f, by ID. The device filter is
// resolved through the per-device counts first.
func (s *Store) ListErrorGroups(ctx context.Context, tenantID string, f store.ErrorGroupFilter, opts store.ListOptions) (store.Page[store.ErrorGroup], error) {
	filter := bson.D{{Key: "tenant_id", Value: tenantID}}
	if f.ProjectID != "" {
		filter = append(filter, bson.E{Key: "project_id", Value: f.ProjectID})
	}
	if f.Fingerprint != "" {
		filter = append(filter, bson.E{Key: "fingerprint", Value: f.Fingerprint})
	}
	if f.Resolved != nil {
		filter = append(filter, bson.E{Key: "resolved", Value: *f.Resolved})
	}
	if f.DeviceID != "" {
		type groupRef struct {
			GroupID string `bson:"group_id"`
		}
		ids, err := findAll(ctx, s.col(colErrorGroupDevices),
			bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "device_id", Value: f.DeviceID}},
			func(g groupRef) string { return g.GroupID },
			options.Find().SetProjection(bson.D{{Key: "group_id", Value: 1}}))
		if err != nil {
			return store.Page[store.ErrorGroup]{}, wrap(err, "list error groups of device %q", f.DeviceID)
		}
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}})
	}
	p, err := listPage(ctx, s.col(colErrorGroups), pageQuery{filter: filter, field: "_id", listOpts: opts},
		errorGroupFromDoc, func(g store.ErrorGroup) string { return g.ID })
	return p, wrap(err, "list error groups of tenant %q", tenantID)
}

// ErrorGroupDevices lists a group's per-device counts by device ID.
func (s *Store) ErrorGroupDevices(ctx context.Context, tenantID, groupID string) ([]store.ErrorGroupDevice, error) {
	ds, err := findAll(ctx, s.col(colErrorGroupDevices),
		bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "group_id", Value: groupID}},
		errorGroupDeviceFromDoc, options.Find().SetSort(asc("device_id")))
	return ds, wrap(err, "list devices of error group %q", groupID)
}

// SetErrorGroupResolved marks a group resolved by userID at at, or reopens it.
func (s *Store) SetErrorGroupResolved(ctx context.Context, tenantID, id string, resolved bool, userID string, at time.Time) error {
	set := bson.D{{Key: "resolved", Value: false}, {Key: "resolved_at", Value: nil}, {Key: "resolved_by", Value: ""}}
	if resolved {
		set = bson.D{{Key: "resolved", Value: true}, {Key: "resolved_at", Value: orNow(at)}, {Key: "resolved_by", Value: userID}}
	}
	res, err := s.col(colErrorGroups).UpdateOne(ctx, tenantKey(tenantID, id), bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return wrap(err, "resolve error group %q", id)
	}
	if res.MatchedCount == 0 {
		return notFound("resolve error group %q", id)
	}
	return nil
}

// SetErrorGroupFingerprint re-keys a group. The unique index on (tenant_id, fingerprint)
// refuses a fingerprint another group of the tenant has (store.ErrConflict through wrap); the
// group's per-device counts and reports refer to it by ID, so they move with it.
func (s *Store) SetErrorGroupFingerprint(ctx context.Context, tenantID, id, fingerprint string) error {
	res, err := s.col(colErrorGroups).UpdateOne(ctx, tenantKey(tenantID, id),
		bson.D{{Key: "$set", Value: bson.D{{Key: "fingerprint", Value: fingerprint}}}})
	if err != nil {
		return wrap(err, "set fingerprint of error group %q", id)
	}
	if res.MatchedCount == 0 {
		return notFound("set fingerprint of error group %q", id)
	}
	return nil
}

// ListErrorReports pages through a group's reports, or a device's when deviceID is set (both
// filters apply when both are set), by ID.
func (s *Store) ListErrorReports(ctx context.Context, tenantID, groupID, deviceID string, opts store.ListOptions) (store.Page[store.ErrorReport], error) {
	filter := bson.D{{Key: "tenant_id", Value: tenantID}}
	if groupID != "" {
		filter = append(filter, bson.E{Key: "group_id", Value: groupID})
	}
	if deviceID != "" {
		filter = append(filter, bson.E{Key: "device_id", Value: deviceID})
	}
	p, err := listPage(ctx, s.col(colErrorReports), pageQuery{filter: filter, field: "_id", listOpts: opts},
		errorReportFromDoc, func(r store.ErrorReport) string { return r.ID })
	return p, wrap(err, "list error reports of tenant %q", tenantID)
}

// CountErrorReportsByDay counts a tenant's or a group's reports with one count per 24-hour
// span, each a range of the tenant_received or tenant_group_received index (step 7), so no
// report is read. One aggregation that groups by day would need date arithmetic, and FerretDB
// v1.24 implements no expression operator beyond $sum and $type.
func (s *Store) CountErrorReportsByDay(ctx context.Context, tenantID, groupID string, from time.Time, days int) ([]int64, error) {
	if err := store.CheckReportDays(days); err != nil {
		return nil, err
	}
	from = store.Timestamp(from)
	const day = 24 * time.Hour
	counts := make([]int64, days)
	for i := range counts {
		start := from.Add(time.Duration(i) * day)
		filter := bson.D{{Key: "tenant_id", Value: tenantID}}
		if groupID != "" {
			filter = append(filter, bson.E{Key: "group_id", Value: groupID})
		}
		filter = append(filter, bson.E{Key: "received_at", Value: bson.D{{Key: "$gte", Value: start}, {Key: "$lt", Value: start.Add(day)}}})
		n, err := s.col(colErrorReports).CountDocuments(ctx, filter)
		if err != nil {
			return nil, wrap(err, "count error reports of tenant %q by day", tenantID)
		}
		counts[i] = n
	}
	return counts, nil
}

// DeleteErrorGroup removes the group with its per-device counts and its reports.
func (s *Store) DeleteErrorGroup(ctx context.Context, tenantID, id string) error {
	if err := deleteOne(ctx, s.col(colErrorGroups), tenantKey(tenantID, id), "error group", id); err != nil {
		return err
	}
	owned := bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "group_id", Value: id}}
	for _, name := range []string{colErrorGroupDevices, colErrorReports} {
		if _, err := s.col(name).DeleteMany(ctx, owned); err != nil {
			return wrap(err, "delete error group %q: %s", id, name)
		}
	}
	return nil
}

// ExpiredErrorReports lists the oldest reports received before before, after the cursor.
func (s *Store) ExpiredErrorReports(ctx context.Context, before time.Time, after store.ExpiredCursor, limit int) ([]store.ExpiredErrorReport, error) {
	if err := store.CheckPruneBatch(limit); err != nil {
		return nil, err
	}
	filter := bson.D{{Key: "received_at", Value: bson.D{{Key: "$lt", Value: store.Timestamp(before)}}}}
	if after.ID != "" {
		at := store.Timestamp(after.ReceivedAt)
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "received_at", Value: bson.D{{Key: "$gt", Value: at}}}},
			bson.D{{Key: "received_at", Value: at}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: after.ID}}}},
		}})
	}
	out, err := findAll(ctx, s.col(colErrorReports), filter,
		func(d errorReportDoc) store.ExpiredErrorReport {
			return store.ExpiredErrorReport{ID: d.ID, TenantID: d.TenantID, CoreDump: d.CoreDump, ReceivedAt: utc(d.ReceivedAt)}
		},
		options.Find().
			SetSort(bson.D{{Key: "received_at", Value: 1}, {Key: "_id", Value: 1}}).
			SetLimit(int64(limit)).
			SetProjection(bson.D{{Key: "tenant_id", Value: 1}, {Key: "core_dump", Value: 1}, {Key: "received_at", Value: 1}}))
	return out, wrap(err, "list expired error reports")
}

// DeleteErrorReports deletes reports by ID on every tenant.
func (s *Store) DeleteErrorReports(ctx context.Context, ids []string) error {
	if err := store.CheckDeleteBatch(ids); err != nil || len(ids) == 0 {
		return err
	}
	_, err := s.col(colErrorReports).DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	return wrap(err, "delete %d error reports", len(ids))
}
