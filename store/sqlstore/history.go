package sqlstore

import (
	"context"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// deviceSampleRow is a row of device_samples.
type deviceSampleRow struct {
	bun.BaseModel `bun:"table:device_samples"`

	TenantID      string    `bun:"tenant_id"`
	DeviceID      string    `bun:"device_id"`
	At            time.Time `bun:"at"`
	Kind          string    `bun:"kind"`
	Online        bool      `bun:"online"`
	RSSI          int       `bun:"rssi"`
	FreeHeap      int64     `bun:"free_heap"`
	UptimeSeconds int64     `bun:"uptime_seconds"`
}

// fleetSampleRow is a row of fleet_samples.
type fleetSampleRow struct {
	bun.BaseModel `bun:"table:fleet_samples"`

	TenantID string    `bun:"tenant_id"`
	At       time.Time `bun:"at"`
	Online   int64     `bun:"online"`
	Total    int64     `bun:"total"`
}

// AddDeviceSample records one point of a device's history.
func (s *Store) AddDeviceSample(ctx context.Context, ds store.DeviceSample) error {
	row := deviceSampleRow{TenantID: ds.TenantID, DeviceID: ds.DeviceID, At: ts(ds.At), Kind: string(ds.Kind),
		Online: ds.Online, RSSI: ds.RSSI, FreeHeap: ds.FreeHeap, UptimeSeconds: ds.UptimeSeconds}
	_, err := s.w.NewInsert().Model(&row).Exec(ctx)
	return wrap(err, "add sample of device %q", ds.DeviceID)
}

// DeviceSamples returns the newest samples of a device since a time, oldest first.
func (s *Store) DeviceSamples(ctx context.Context, tenantID, deviceID string, since time.Time, limit int) ([]store.DeviceSample, error) {
	var rows []deviceSampleRow
	err := s.r.NewSelect().Model(&rows).
		Where("tenant_id = ?", tenantID).Where("device_id = ?", deviceID).Where("at >= ?", ts(since)).
		OrderExpr("at DESC").Limit(int64(store.SampleLimit(limit))).Scan(ctx)
	if err != nil {
		return nil, wrap(err, "list samples of device %q", deviceID)
	}
	out := make([]store.DeviceSample, len(rows))
	for i, r := range rows {
		out[len(rows)-1-i] = store.DeviceSample{TenantID: r.TenantID, DeviceID: r.DeviceID, At: utc(r.At), Kind: store.SampleKind(r.Kind),
			Online: r.Online, RSSI: r.RSSI, FreeHeap: r.FreeHeap, UptimeSeconds: r.UptimeSeconds}
	}
	return out, nil
}

// AddFleetSample records a tenant's count; one at the same time is store.ErrConflict.
func (s *Store) AddFleetSample(ctx context.Context, fs store.FleetSample) error {
	row := fleetSampleRow{TenantID: fs.TenantID, At: ts(fs.At), Online: fs.Online, Total: fs.Total}
	_, err := s.w.NewInsert().Model(&row).Exec(ctx)
	return wrap(err, "add fleet sample of tenant %q", fs.TenantID)
}

// FleetSamples returns the newest counts of a tenant since a time, oldest first.
func (s *Store) FleetSamples(ctx context.Context, tenantID string, since time.Time, limit int) ([]store.FleetSample, error) {
	var rows []fleetSampleRow
	err := s.r.NewSelect().Model(&rows).
		Where("tenant_id = ?", tenantID).Where("at >= ?", ts(since)).
		OrderExpr("at DESC").Limit(int64(store.SampleLimit(limit))).Scan(ctx)
	if err != nil {
		return nil, wrap(err, "list fleet samples of tenant %q", tenantID)
	}
	out := make([]store.FleetSample, len(rows))
	for i, r := range rows {
		out[i] = store.FleetSample{TenantID: r.TenantID, At: utc(r.At), Online: r.Online, Total: r.Total}
	}
	slices.Reverse(out)
	return out, nil
}

// PruneHistory deletes every sample older than before.
func (s *Store) PruneHistory(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	for _, table := range []string{"device_samples", "fleet_samples"} {
		res, err := s.w.NewDelete().Table(table).Where("at < ?", ts(before)).Exec(ctx)
		if err != nil {
			return n, wrap(err, "prune %s", table)
		}
		if k, err := res.RowsAffected(); err == nil {
			n += k
		}
	}
	return n, nil
}
