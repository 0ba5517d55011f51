package devicerrors

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/periodic"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/blob"
)

// Defaults and bounds of RetentionOptions.
const (
	// DefaultRetention is how long error reports and their core dumps are kept
	// (errors.retention).
	DefaultRetention = 90 * 24 * time.Hour
	// MinRetention is the shortest retention errors.retention accepts: twice CoreDumpTTL, so a
	// report outlives its core dump's upload URL (and an upload still streaming when the URL
	// expires) and no core dump arrives for a report already swept, where nothing would ever
	// delete it.
	MinRetention = 2 * CoreDumpTTL
	// DefaultRetentionInterval is how often the sweep runs.
	DefaultRetentionInterval = time.Hour
	// DefaultPruneBatch is how many reports one store call lists, and deletes.
	DefaultPruneBatch = 1000
)

// RetentionStore is what the retention sweep needs from the store.
type RetentionStore interface {
	ExpiredErrorReports(ctx context.Context, before time.Time, after store.ExpiredCursor, limit int) ([]store.ExpiredErrorReport, error)
	DeleteErrorReports(ctx context.Context, ids []string) error
}

// BlobDeleter deletes core dumps (blob.Store).
type BlobDeleter interface {
	Delete(ctx context.Context, key string) error
}

var _ BlobDeleter = blob.Store(nil)

// RetentionOptions configure the retention sweep. Zero values take the defaults; keeping
// reports forever (errors.retention 0) is not running the sweep.
type RetentionOptions struct {
	Store RetentionStore
	// Blobs holds the core dumps (CoreDumpBlobKey); nil when none are collected.
	Blobs     BlobDeleter
	Retention time.Duration
	Interval  time.Duration
	// Batch is how many reports one store call deletes.
	Batch  int
	Logger *slog.Logger
}

// Retention deletes the error reports received longer than the retention ago, with the core
// dumps uploaded for them, so a crash-looping fleet does not grow the database and the blob
// storage without bound. Error groups stay with their counts, first and last sighting and
// per-device counts: they summarise every report, kept or not. Every replica may run it:
// deletes are idempotent, and a core dump already deleted is no error. A report goes only
// once its core dump is gone: one whose core dump could not be deleted (storage unreachable)
// stays, and the next sweep of any replica, after a restart too, tries again.
type Retention struct {
	o RetentionOptions
}

// NewRetention makes the sweep; Run starts it.
func NewRetention(o RetentionOptions) *Retention {
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.Interval <= 0 {
		o.Interval = DefaultRetentionInterval
	}
	if o.Batch <= 0 || o.Batch > store.MaxPruneBatch {
		o.Batch = DefaultPruneBatch
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Retention{o: o}
}

// Pruned counts what one sweep deleted.
type Pruned struct {
	Reports int
	// CoreDumps counts the core dumps the deleted reports announced that are gone now
	// (deleted, or never uploaded).
	CoreDumps int
	// Kept counts the expired reports kept because their core dump could not be deleted.
	Kept int
}

// Run sweeps at once and then every interval until ctx ends.
func (r *Retention) Run(ctx context.Context) error {
	return periodic.Run(ctx, r.o.Interval, func(ctx context.Context) {
		if p, err := r.Once(ctx); err != nil && ctx.Err() == nil {
			r.o.Logger.Warn("prune error reports", "error", err, "reports", p.Reports)
		} else if p.Reports > 0 || p.Kept > 0 {
			r.o.Logger.Debug("error reports pruned", "reports", p.Reports, "core_dumps", p.CoreDumps, "kept", p.Kept)
		}
	})
}

// Once goes, page by page, through every report received before now less the retention:
// it deletes the core dumps the reports announced, then the reports whose core dump is gone.
// A core dump that cannot be deleted is logged with its key, its report is kept for the next
// sweep, and the sweep goes on past it.
func (r *Retention) Once(ctx context.Context) (Pruned, error) {
	before := time.Now().Add(-r.o.Retention)
	var p Pruned
	var after store.ExpiredCursor
	for {
		batch, err := r.o.Store.ExpiredErrorReports(ctx, before, after, r.o.Batch)
		if err != nil {
			return p, err
		}
		done := make([]string, 0, len(batch))
		dumps := 0
		for _, rep := range batch {
			if r.o.Blobs != nil && announcesCoreDump(rep.CoreDump) {
				key := CoreDumpBlobKey(rep.TenantID, rep.ID)
				if err := r.o.Blobs.Delete(ctx, key); err != nil && !errors.Is(err, blob.ErrNotFound) {
					r.o.Logger.Warn("a pruned report's core dump not deleted; the report is kept until it is",
						"tenant_id", rep.TenantID, "report_id", rep.ID, "key", key, "error", err)
					p.Kept++
					continue
				}
				dumps++
			}
			done = append(done, rep.ID)
		}
		if err := r.o.Store.DeleteErrorReports(ctx, done); err != nil {
			return p, err
		}
		p.Reports += len(done)
		p.CoreDumps += dumps
		if len(batch) < r.o.Batch || ctx.Err() != nil {
			return p, ctx.Err()
		}
		after = batch[len(batch)-1].Cursor()
	}
}

// announcesCoreDump reports whether a stored core dump summary announced a whole core dump,
// the only reports a device was asked to upload one for (Service.ErrorReport).
func announcesCoreDump(summary string) bool {
	var cd protocol.CoreDump
	return summary != "" && json.Unmarshal([]byte(summary), &cd) == nil && cd.Size > 0
}
