package store

import (
	"context"
	"fmt"
	"time"
)

// ErrorReport is one error a device reported. Reports are grouped by Fingerprint (computed by
// the caller from type, message and firmware version).
type ErrorReport struct {
	ID              string
	TenantID        string
	DeviceID        string
	ProjectID       string
	GroupID         string // set by RecordError
	Fingerprint     string
	Message         string
	Type            string
	Code            string
	Severity        string // "error", "warning", "info"
	Stack           string // JSON array of frames or addresses, as received
	ResetReason     string
	FirmwareVersion string
	UptimeSeconds   int64
	FreeHeap        int64
	CoreDump        string
	ReceivedAt      time.Time
}

// ErrorGroup aggregates reports with one fingerprint in a tenant.
type ErrorGroup struct {
	ID              string
	TenantID        string
	ProjectID       string
	Fingerprint     string
	Type            string
	Message         string
	FirmwareVersion string
	Count           int64
	FirstSeen       time.Time
	LastSeen        time.Time
	Resolved        bool
	ResolvedAt      *time.Time
	ResolvedBy      string
}

// ErrorGroupDevice counts one group's occurrences on one device.
type ErrorGroupDevice struct {
	TenantID  string
	GroupID   string
	DeviceID  string
	Count     int64
	FirstSeen time.Time
	LastSeen  time.Time
}

// ErrorGroupFilter narrows a group list. Empty fields do not filter.
type ErrorGroupFilter struct {
	ProjectID string
	DeviceID  string // groups that occurred on this device
	Resolved  *bool
	// Fingerprint keeps the group with this fingerprint (a tenant has at most one).
	Fingerprint string
}

// ErrorReportStore keeps device error reports.
type ErrorReportStore interface {
	// RecordError stores r and counts it in its group (created on first sight) and in the
	// group's per-device counts, without losing counts under concurrent reports. It fills
	// r.ID and r.GroupID and returns the updated group. It never changes whether the group is
	// resolved: reopening (on a newer firmware) is the error service's decision.
	RecordError(ctx context.Context, r *ErrorReport) (ErrorGroup, error)
	ErrorGroup(ctx context.Context, tenantID, id string) (ErrorGroup, error)
	ListErrorGroups(ctx context.Context, tenantID string, f ErrorGroupFilter, opts ListOptions) (Page[ErrorGroup], error)
	ErrorGroupDevices(ctx context.Context, tenantID, groupID string) ([]ErrorGroupDevice, error)
	// SetErrorGroupResolved marks a group resolved (by userID) or reopens it.
	SetErrorGroupResolved(ctx context.Context, tenantID, id string, resolved bool, userID string, at time.Time) error
	// SetErrorGroupFingerprint changes a group's fingerprint, so that reports with the new
	// one count in it from then on, with its history (counts, first sighting, per-device
	// counts, reports, resolution): a crash group keyed by address is re-keyed by function
	// once its release's ELF file arrives. The group's reports keep the fingerprint they were
	// grouped by. ErrConflict when another group of the tenant has that fingerprint (groups
	// are not merged); ErrNotFound when the tenant has no group id. Setting the fingerprint
	// the group has is no change and no error.
	SetErrorGroupFingerprint(ctx context.Context, tenantID, id, fingerprint string) error
	// ListErrorReports pages through a group's reports (or a device's, when deviceID is set).
	ListErrorReports(ctx context.Context, tenantID, groupID, deviceID string, opts ListOptions) (Page[ErrorReport], error)
	// CountErrorReportsByDay counts a tenant's reports (one group's, when groupID is set) in
	// days consecutive 24-hour spans from from: counts[i] is the number of reports with
	// from+i·24h ≤ ReceivedAt < from+(i+1)·24h, and len(counts) == days. Passing a UTC
	// midnight makes the spans UTC calendar days. The database counts, over an index on
	// (tenant, [group,] received time), so the cost is the reports in the window, never the
	// tenant's whole history, and no report in the window is left out. days outside
	// 1..MaxReportDays is invalid (store.InvalidError for "days").
	CountErrorReportsByDay(ctx context.Context, tenantID, groupID string, from time.Time, days int) ([]int64, error)
	DeleteErrorGroup(ctx context.Context, tenantID, id string) error
	// ExpiredErrorReports lists, on every tenant, at most limit of the oldest reports received
	// before before, oldest first (by received time, then ID), that come after the cursor
	// after (the zero ExpiredCursor starts at the oldest). The retention sweep deletes what
	// they left outside the store (core dumps) first and then the reports
	// (DeleteErrorReports), so a report stays listed until what it left is gone. The oldest
	// reports are found through an index on the received time (SQL migration 9, Mongo step 8).
	// limit outside 1..MaxPruneBatch is invalid (store.InvalidError for "limit").
	ExpiredErrorReports(ctx context.Context, before time.Time, after ExpiredCursor, limit int) ([]ExpiredErrorReport, error)
	// DeleteErrorReports deletes reports by ID, on every tenant, in one statement; an ID
	// already gone (another replica's sweep) is no error. Groups and their per-device counts
	// stay as they are: a group's Count, FirstSeen and LastSeen summarise every report it had,
	// kept or not. More than MaxPruneBatch IDs is invalid (store.InvalidError for "ids").
	DeleteErrorReports(ctx context.Context, ids []string) error
}

// ExpiredErrorReport is a report past the retention: what locates what it left outside the
// store.
type ExpiredErrorReport struct {
	ID       string
	TenantID string
	// CoreDump is the report's core dump summary as received (ErrorReport.CoreDump); empty
	// when the report announced none.
	CoreDump   string
	ReceivedAt time.Time
}

// ExpiredCursor is where a listing of expired reports goes on: after the report of this
// received time and ID.
type ExpiredCursor struct {
	ReceivedAt time.Time
	ID         string
}

// Cursor is the cursor that lists the reports after r.
func (r ExpiredErrorReport) Cursor() ExpiredCursor {
	return ExpiredCursor{ReceivedAt: r.ReceivedAt, ID: r.ID}
}

// MaxPruneBatch bounds one ExpiredErrorReports or DeleteErrorReports call.
const MaxPruneBatch = 10000

// CheckPruneBatch is ExpiredErrorReports' check of its limit, shared by the backends.
func CheckPruneBatch(limit int) error {
	if limit < 1 || limit > MaxPruneBatch {
		return Invalid("limit", fmt.Sprintf("must be 1 to %d", MaxPruneBatch))
	}
	return nil
}

// MaxReportDays bounds CountErrorReportsByDay's window to a year, so one call is one bounded
// query.
const MaxReportDays = 366

// CheckReportDays is CountErrorReportsByDay's check of its window, shared by the backends.
func CheckReportDays(days int) error {
	if days < 1 || days > MaxReportDays {
		return Invalid("days", fmt.Sprintf("must be 1 to %d", MaxReportDays))
	}
	return nil
}

// CheckDeleteBatch is DeleteErrorReports' check of its IDs, shared by the backends.
func CheckDeleteBatch(ids []string) error {
	if len(ids) > MaxPruneBatch {
		return Invalid("ids", fmt.Sprintf("at most %d at once", MaxPruneBatch))
	}
	return nil
}
