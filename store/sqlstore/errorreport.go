package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// errorGroupRow is a row of error_groups.
type errorGroupRow struct {
	bun.BaseModel `bun:"table:error_groups,alias:error_groups"`

	ID              string     `bun:"id"`
	TenantID        string     `bun:"tenant_id"`
	ProjectID       string     `bun:"project_id"`
	Fingerprint     string     `bun:"fingerprint"`
	Type            string     `bun:"type"`
	Message         string     `bun:"message"`
	FirmwareVersion string     `bun:"firmware_version"`
	Count           int64      `bun:"count"`
	FirstSeen       time.Time  `bun:"first_seen,nullzero"`
	LastSeen        time.Time  `bun:"last_seen,nullzero"`
	Resolved        bool       `bun:"resolved"`
	ResolvedAt      *time.Time `bun:"resolved_at"`
	ResolvedBy      string     `bun:"resolved_by"`
}

func (r errorGroupRow) domain() store.ErrorGroup {
	return store.ErrorGroup{
		ID: r.ID, TenantID: r.TenantID, ProjectID: r.ProjectID, Fingerprint: r.Fingerprint, Type: r.Type,
		Message: r.Message, FirmwareVersion: r.FirmwareVersion, Count: r.Count,
		FirstSeen: utc(r.FirstSeen), LastSeen: utc(r.LastSeen), Resolved: r.Resolved,
		ResolvedAt: utcPtr(r.ResolvedAt), ResolvedBy: r.ResolvedBy,
	}
}

// errorGroupDeviceRow is a row of error_group_devices.
type errorGroupDeviceRow struct {
	bun.BaseModel `bun:"table:error_group_devices"`

	TenantID  string    `bun:"tenant_id"`
	GroupID   string    `bun:"group_id"`
	DeviceID  string    `bun:"device_id"`
	Count     int64     `bun:"count"`
	FirstSeen time.Time `bun:"first_seen,nullzero"`
	LastSeen  time.Time `bun:"last_seen,nullzero"`
}

func (r errorGroupDeviceRow) domain() store.ErrorGroupDevice {
	return store.ErrorGroupDevice{
		TenantID: r.TenantID, GroupID: r.GroupID, DeviceID: r.DeviceID, Count: r.Count,
		FirstSeen: utc(r.FirstSeen), LastSeen: utc(r.LastSeen),
	}
}

// errorReportRow is a row of error_reports.
type errorReportRow struct {
	bun.BaseModel `bun:"table:error_reports"`

	ID              string    `bun:"id"`
	TenantID        string    `bun:"tenant_id"`
	DeviceID        string    `bun:"device_id"`
	ProjectID       string    `bun:"project_id"`
	GroupID         string    `bun:"group_id"`
	Fingerprint     string    `bun:"fingerprint"`
	Message         string    `bun:"message"`
	Type            string    `bun:"type"`
	Code            string    `bun:"code"`
	Severity        string    `bun:"severity"`
	Stack           string    `bun:"stack"`
	ResetReason     string    `bun:"reset_reason"`
	FirmwareVersion string    `bun:"firmware_version"`
	UptimeSeconds   int64     `bun:"uptime_seconds"`
	FreeHeap        int64     `bun:"free_heap"`
	CoreDump        string    `bun:"core_dump"`
	ReceivedAt      time.Time `bun:"received_at,nullzero"`
}

func (r errorReportRow) domain() store.ErrorReport {
	return store.ErrorReport{
		ID: r.ID, TenantID: r.TenantID, DeviceID: r.DeviceID, ProjectID: r.ProjectID, GroupID: r.GroupID,
		Fingerprint: r.Fingerprint, Message: r.Message, Type: r.Type, Code: r.Code, Severity: r.Severity,
		Stack: r.Stack, ResetReason: r.ResetReason, FirmwareVersion: r.FirmwareVersion,
		UptimeSeconds: r.UptimeSeconds, FreeHeap: r.FreeHeap, CoreDump: r.CoreDump, ReceivedAt: utc(r.ReceivedAt),
	}
}

// Upserts that count a report. The increments happen inside the database (count = count + 1),
// so concurrent reports never lose a count. A report never changes whether the group is resolved:
// reopening is the error service's decision (store.ErrorReportStore). The first report's type, message and firmware version describe the group.
const (
	upsertGroupStandard = `INSERT INTO error_groups
	(id, tenant_id, project_id, fingerprint, type, message, firmware_version, count, first_seen, last_seen, resolved, resolved_at, resolved_by)
	VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, FALSE, NULL, '')
	ON CONFLICT (tenant_id, fingerprint) DO UPDATE SET
	count = error_groups.count + 1, first_seen = %s, last_seen = %s`
	upsertGroupMySQL = `INSERT INTO error_groups
	(id, tenant_id, project_id, fingerprint, type, message, firmware_version, count, first_seen, last_seen, resolved, resolved_at, resolved_by)
	VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, FALSE, NULL, '')
	ON DUPLICATE KEY UPDATE
	count = count + 1, first_seen = LEAST(first_seen, VALUES(first_seen)), last_seen = GREATEST(last_seen, VALUES(last_seen))`

	upsertGroupDeviceStandard = `INSERT INTO error_group_devices
	(tenant_id, group_id, device_id, count, first_seen, last_seen)
	VALUES (?, ?, ?, 1, ?, ?)
	ON CONFLICT (tenant_id, group_id, device_id) DO UPDATE SET
	count = error_group_devices.count + 1, first_seen = %s, last_seen = %s`
	upsertGroupDeviceMySQL = `INSERT INTO error_group_devices
	(tenant_id, group_id, device_id, count, first_seen, last_seen)
	VALUES (?, ?, ?, 1, ?, ?)
	ON DUPLICATE KEY UPDATE
	count = count + 1, first_seen = LEAST(first_seen, VALUES(first_seen)), last_seen = GREATEST(last_seen, VALUES(last_seen))`
)

// upsertSQL returns the dialect's form of the group and group-device upserts.
func (s *Store) upsertSQL() (group, device string) {
	switch s.backend {
	case BackendMySQL:
		return upsertGroupMySQL, upsertGroupDeviceMySQL
	case BackendPostgres:
		return fmt.Sprintf(upsertGroupStandard, "LEAST(error_groups.first_seen, EXCLUDED.first_seen)", "GREATEST(error_groups.last_seen, EXCLUDED.last_seen)"),
			fmt.Sprintf(upsertGroupDeviceStandard, "LEAST(error_group_devices.first_seen, EXCLUDED.first_seen)", "GREATEST(error_group_devices.last_seen, EXCLUDED.last_seen)")
	}
	// SQLite's two-argument min() and max() are its LEAST and GREATEST; the times are UTC text,
	// ordered as text.
	return fmt.Sprintf(upsertGroupStandard, "min(error_groups.first_seen, excluded.first_seen)", "max(error_groups.last_seen, excluded.last_seen)"),
		fmt.Sprintf(upsertGroupDeviceStandard, "min(error_group_devices.first_seen, excluded.first_seen)", "max(error_group_devices.last_seen, excluded.last_seen)")
}

// RecordError stores r and counts it in its group and in the group's per-device count, in
// one transaction, and returns the updated group.
func (s *Store) RecordError(ctx context.Context, r *store.ErrorReport) (store.ErrorGroup, error) {
	c := *r
	if c.ID == "" {
		c.ID = store.NewID()
	}
	c.ReceivedAt = nowOr(c.ReceivedAt)
	groupSQL, deviceSQL := s.upsertSQL()
	var group errorGroupRow
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, groupSQL,
			store.NewID(), c.TenantID, c.ProjectID, c.Fingerprint, c.Type, c.Message, c.FirmwareVersion,
			c.ReceivedAt, c.ReceivedAt); err != nil {
			return err
		}
		if err := tx.NewSelect().Model(&group).
			Where("tenant_id = ?", c.TenantID).
			Where("fingerprint = ?", c.Fingerprint).
			Scan(ctx); err != nil {
			return err
		}
		if c.DeviceID != "" {
			if _, err := tx.ExecContext(ctx, deviceSQL,
				c.TenantID, group.ID, c.DeviceID, c.ReceivedAt, c.ReceivedAt); err != nil {
				return err
			}
		}
		row := errorReportRow{
			ID: c.ID, TenantID: c.TenantID, DeviceID: c.DeviceID, ProjectID: c.ProjectID, GroupID: group.ID,
			Fingerprint: c.Fingerprint, Message: c.Message, Type: c.Type, Code: c.Code, Severity: c.Severity,
			Stack: c.Stack, ResetReason: c.ResetReason, FirmwareVersion: c.FirmwareVersion,
			UptimeSeconds: c.UptimeSeconds, FreeHeap: c.FreeHeap, CoreDump: c.CoreDump, ReceivedAt: c.ReceivedAt,
		}
		_, err := tx.NewInsert().Model(&row).Exec(ctx)
		return err
	})
	if err != nil {
		return store.ErrorGroup{}, wrap(err, "record error %q in tenant %q", c.Fingerprint, c.TenantID)
	}
	c.GroupID = group.ID
	*r = c
	return group.domain(), nil
}

// ErrorGroup returns one of a tenant's error groups.
func (s *Store) ErrorGroup(ctx context.Context, tenantID, id string) (store.ErrorGroup, error) {
	var row errorGroupRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Scan(ctx)
	if err != nil {
		return store.ErrorGroup{}, wrap(err, "get error group %q", id)
	}
	return row.domain(), nil
}

// ListErrorGroups pages through a tenant's error groups matching f.
func (s *Store) ListErrorGroups(ctx context.Context, tenantID string, f store.ErrorGroupFilter, opts store.ListOptions) (store.Page[store.ErrorGroup], error) {
	var rows []errorGroupRow
	q := s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID)
	if f.ProjectID != "" {
		q = q.Where("project_id = ?", f.ProjectID)
	}
	if f.DeviceID != "" {
		q = q.Where("EXISTS (SELECT 1 FROM error_group_devices gd WHERE gd.tenant_id = error_groups.tenant_id AND gd.group_id = error_groups.id AND gd.device_id = ?)", f.DeviceID)
	}
	if f.Fingerprint != "" {
		q = q.Where("fingerprint = ?", f.Fingerprint)
	}
	if f.Resolved != nil {
		q = q.Where("resolved = ?", *f.Resolved)
	}
	if err := pageByID(q, opts).Scan(ctx); err != nil {
		return store.Page[store.ErrorGroup]{}, wrap(err, "list error groups of tenant %q", tenantID)
	}
	items := make([]store.ErrorGroup, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(g store.ErrorGroup) string { return g.ID }), nil
}

// ErrorGroupDevices lists a group's per-device counts ordered by device ID.
func (s *Store) ErrorGroupDevices(ctx context.Context, tenantID, groupID string) ([]store.ErrorGroupDevice, error) {
	var rows []errorGroupDeviceRow
	err := s.r.NewSelect().Model(&rows).
		Where("tenant_id = ?", tenantID).
		Where("group_id = ?", groupID).
		OrderExpr("device_id ASC").
		Scan(ctx)
	if err != nil {
		return nil, wrap(err, "list devices of error group %q", groupID)
	}
	items := make([]store.ErrorGroupDevice, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return items, nil
}

// SetErrorGroupResolved marks a group resolved by userID at at, or reopens it.
func (s *Store) SetErrorGroupResolved(ctx context.Context, tenantID, id string, resolved bool, userID string, at time.Time) error {
	q := s.w.NewUpdate().Table("error_groups").Set("resolved = ?", resolved)
	if resolved {
		q = q.Set("resolved_at = ?", nowOr(at)).Set("resolved_by = ?", userID)
	} else {
		q = q.Set("resolved_at = NULL").Set("resolved_by = ''")
	}
	res, err := q.
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "set error group %q resolved=%t", id, resolved)
	}
	return nil
}

// SetErrorGroupFingerprint re-keys a group. The unique key (tenant_id, fingerprint) makes a
// fingerprint another group of the tenant has a unique violation, which wrap turns into
// store.ErrConflict; the group's per-device counts and reports refer to it by ID, so they move
// with it. (MySQL counts the matched row even when the fingerprint is unchanged:
// clientFoundRows.)
func (s *Store) SetErrorGroupFingerprint(ctx context.Context, tenantID, id, fingerprint string) error {
	res, err := s.w.NewUpdate().Table("error_groups").
		Set("fingerprint = ?", fingerprint).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "set fingerprint of error group %q", id)
	}
	return nil
}

// ListErrorReports pages through a group's reports, or a device's when deviceID is set (both
// filters apply when both are set).
func (s *Store) ListErrorReports(ctx context.Context, tenantID, groupID, deviceID string, opts store.ListOptions) (store.Page[store.ErrorReport], error) {
	var rows []errorReportRow
	q := s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID)
	if groupID != "" {
		q = q.Where("group_id = ?", groupID)
	}
	if deviceID != "" {
		q = q.Where("device_id = ?", deviceID)
	}
	if err := pageByID(q, opts).Scan(ctx); err != nil {
		return store.Page[store.ErrorReport]{}, wrap(err, "list error reports of tenant %q", tenantID)
	}
	items := make([]store.ErrorReport, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(r store.ErrorReport) string { return r.ID }), nil
}

// CountErrorReportsByDay counts a tenant's or a group's reports per 24-hour span in one
// query: the WHERE range reads the window from error_reports_tenant_received_idx or
// error_reports_tenant_group_received_idx (migration 8), which hold received_at, so no row is
// read; one COUNT per span sorts the entries into days. Plain CASE and range comparisons read
// the same in every dialect (SQLite compares its UTC text times as text).
func (s *Store) CountErrorReportsByDay(ctx context.Context, tenantID, groupID string, from time.Time, days int) ([]int64, error) {
	if err := store.CheckReportDays(days); err != nil {
		return nil, err
	}
	from = ts(from)
	const day = 24 * time.Hour
	q := s.r.NewSelect().TableExpr("error_reports").Where("tenant_id = ?", tenantID)
	if groupID != "" {
		q = q.Where("group_id = ?", groupID)
	}
	q = q.Where("received_at >= ?", from).Where("received_at < ?", from.Add(time.Duration(days)*day))
	counts := make([]int64, days)
	dest := make([]any, days)
	for i := range counts {
		start := from.Add(time.Duration(i) * day)
		q = q.ColumnExpr("COUNT(CASE WHEN received_at >= ? AND received_at < ? THEN 1 END)", start, start.Add(day))
		dest[i] = &counts[i]
	}
	if err := q.Scan(ctx, dest...); err != nil {
		return nil, wrap(err, "count error reports of tenant %q by day", tenantID)
	}
	return counts, nil
}

// DeleteErrorGroup removes a group with its device counts and reports.
func (s *Store) DeleteErrorGroup(ctx context.Context, tenantID, id string) error {
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Table("error_groups").
			Where("tenant_id = ?", tenantID).
			Where("id = ?", id).
			Exec(ctx)
		if err := affected(res, err); err != nil {
			return err
		}
		if _, err := tx.NewDelete().Table("error_group_devices").
			Where("tenant_id = ?", tenantID).
			Where("group_id = ?", id).
			Exec(ctx); err != nil {
			return err
		}
		_, err = tx.NewDelete().Table("error_reports").
			Where("tenant_id = ?", tenantID).
			Where("group_id = ?", id).
			Exec(ctx)
		return err
	})
	return wrap(err, "delete error group %q", id)
}

// prunedReportRow is the part of an error_reports row a prune returns.
type expiredReportRow struct {
	bun.BaseModel `bun:"table:error_reports"`

	ID         string    `bun:"id"`
	TenantID   string    `bun:"tenant_id"`
	CoreDump   string    `bun:"core_dump"`
	ReceivedAt time.Time `bun:"received_at,nullzero"`
}

// ExpiredErrorReports lists the oldest reports received before before, after the cursor.
func (s *Store) ExpiredErrorReports(ctx context.Context, before time.Time, after store.ExpiredCursor, limit int) ([]store.ExpiredErrorReport, error) {
	if err := store.CheckPruneBatch(limit); err != nil {
		return nil, err
	}
	var rows []expiredReportRow
	q := s.r.NewSelect().Model(&rows).Where("received_at < ?", ts(before))
	if after.ID != "" {
		q = q.WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("received_at > ?", ts(after.ReceivedAt)).
				WhereOr("received_at = ? AND id > ?", ts(after.ReceivedAt), after.ID)
		})
	}
	if err := q.OrderExpr("received_at ASC, id ASC").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, wrap(err, "list error reports received before %s", ts(before).Format(time.RFC3339))
	}
	out := make([]store.ExpiredErrorReport, len(rows))
	for i, r := range rows {
		out[i] = store.ExpiredErrorReport{ID: r.ID, TenantID: r.TenantID, CoreDump: r.CoreDump, ReceivedAt: utc(r.ReceivedAt)}
	}
	return out, nil
}

// DeleteErrorReports deletes reports by ID on every tenant.
func (s *Store) DeleteErrorReports(ctx context.Context, ids []string) error {
	if err := store.CheckDeleteBatch(ids); err != nil || len(ids) == 0 {
		return err
	}
	_, err := s.w.NewDelete().Table("error_reports").Where("id IN (?)", bun.In(ids)).Exec(ctx)
	return wrap(err, "delete %d error reports", len(ids))
}
