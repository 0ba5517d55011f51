package mongostore

import (
	"context"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/espadmin/espadmin/store"
)

// deviceSampleDoc is a document of device_samples.
type deviceSampleDoc struct {
	TenantID      string    `bson:"tenant_id"`
	DeviceID      string    `bson:"device_id"`
	At            time.Time `bson:"at"`
	Kind          string    `bson:"kind"`
	Online        bool      `bson:"online"`
	RSSI          int       `bson:"rssi"`
	FreeHeap      int64     `bson:"free_heap"`
	UptimeSeconds int64     `bson:"uptime_seconds"`
}

// fleetSampleDoc is a document of fleet_samples.
type fleetSampleDoc struct {
	TenantID string    `bson:"tenant_id"`
	At       time.Time `bson:"at"`
	Online   int64     `bson:"online"`
	Total    int64     `bson:"total"`
}

// AddDeviceSample records one point of a device's history.
func (s *Store) AddDeviceSample(ctx context.Context, ds store.DeviceSample) error {
	_, err := s.col(colDeviceSamples).InsertOne(ctx, deviceSampleDoc{TenantID: ds.TenantID, DeviceID: ds.DeviceID,
		At: store.Timestamp(ds.At), Kind: string(ds.Kind), Online: ds.Online, RSSI: ds.RSSI, FreeHeap: ds.FreeHeap,
		UptimeSeconds: ds.UptimeSeconds})
	return wrap(err, "add sample of device %q", ds.DeviceID)
}

// DeviceSamples returns the newest samples of a device since a time, oldest first.
func (s *Store) DeviceSamples(ctx context.Context, tenantID, deviceID string, since time.Time, limit int) ([]store.DeviceSample, error) {
	out, err := findAll(ctx, s.col(colDeviceSamples),
		bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "device_id", Value: deviceID}, {Key: "at", Value: bson.D{{Key: "$gte", Value: store.Timestamp(since)}}}},
		func(d deviceSampleDoc) store.DeviceSample {
			return store.DeviceSample{TenantID: d.TenantID, DeviceID: d.DeviceID, At: d.At.UTC(), Kind: store.SampleKind(d.Kind),
				Online: d.Online, RSSI: d.RSSI, FreeHeap: d.FreeHeap, UptimeSeconds: d.UptimeSeconds}
		},
		options.Find().SetSort(bson.D{{Key: "at", Value: -1}}).SetLimit(int64(store.SampleLimit(limit))))
	slices.Reverse(out)
	return out, wrap(err, "list samples of device %q", deviceID)
}

// AddFleetSample records a tenant's count; one at the same time is store.ErrConflict.
func (s *Store) AddFleetSample(ctx context.Context, fs store.FleetSample) error {
	_, err := s.col(colFleetSamples).InsertOne(ctx, fleetSampleDoc{TenantID: fs.TenantID, At: store.Timestamp(fs.At),
		Online: fs.Online, Total: fs.Total})
	return wrap(err, "add fleet sample of tenant %q", fs.TenantID)
}

// FleetSamples returns the newest counts of a tenant since a time, oldest first.
func (s *Store) FleetSamples(ctx context.Context, tenantID string, since time.Time, limit int) ([]store.FleetSample, error) {
	out, err := findAll(ctx, s.col(colFleetSamples),
		bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "at", Value: bson.D{{Key: "$gte", Value: store.Timestamp(since)}}}},
		func(d fleetSampleDoc) store.FleetSample {
			return store.FleetSample{TenantID: d.TenantID, At: d.At.UTC(), Online: d.Online, Total: d.Total}
		},
		options.Find().SetSort(bson.D{{Key: "at", Value: -1}}).SetLimit(int64(store.SampleLimit(limit))))
	slices.Reverse(out)
	return out, wrap(err, "list fleet samples of tenant %q", tenantID)
}

// PruneHistory deletes every sample older than before.
func (s *Store) PruneHistory(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	for _, name := range []string{colDeviceSamples, colFleetSamples} {
		res, err := s.col(name).DeleteMany(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: store.Timestamp(before)}}}})
		if err != nil {
			return n, wrap(err, "prune %s", name)
		}
		n += res.DeletedCount
	}
	return n, nil
}
