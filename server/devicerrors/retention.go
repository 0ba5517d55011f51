package devicerrors

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
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
	// DefaultPruneBatch is how many reports one store call deletes, in one transaction.
	DefaultPruneBatch = 1000
	// maxRetryDeletes bounds the core dumps whose delete failed and is tried again at the
	// next sweeps; beyond it a key is only logged.
	maxRetryDeletes = 10000
)

// RetentionStore is what the retention sweep needs from the store.
type RetentionStore interface {
	PruneErrorReports(ctx context.Context, before time.Time, limit int) ([]store.PrunedErrorReport, error)
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
// deletes are idempotent, and a core dump already deleted is no error. A core dump whose delete
// failed (its report is gone, so nothing else would find it) is tried again at the next sweeps
// of this replica.
type Retention struct {
	o RetentionOptions

	mu    sync.Mutex
	retry map[string]struct{} // core dump keys whose delete failed
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
	return &Retention{o: o, retry: map[string]struct{}{}}
}

// Pruned counts what one sweep deleted.
type Pruned struct {
	Reports int
	// CoreDumps counts the core dumps the pruned reports announced that are gone now
	// (deleted, or never uploaded); those that failed to delete are not counted.
	CoreDumps int
}

// Run sweeps at once and then every interval until ctx ends.
func (r *Retention) Run(ctx context.Context) error {
	return periodic.Run(ctx, r.o.Interval, func(ctx context.Context) {
		if p, err := r.Once(ctx); err != nil && ctx.Err() == nil {
			r.o.Logger.Warn("prune error reports", "error", err, "reports", p.Reports)
		} else if p.Reports > 0 {
			r.o.Logger.Debug("error reports pruned", "reports", p.Reports, "core_dumps", p.CoreDumps)
		}
	})
}

// Once deletes, batch by batch, every report received before now less the retention, and
// the core dumps their reports announced. A core dump that cannot be deleted is logged with
// its key, kept to be tried again at the next sweep, and the sweep goes on.
func (r *Retention) Once(ctx context.Context) (Pruned, error) {
	before := time.Now().Add(-r.o.Retention)
	var p Pruned
	p.CoreDumps += r.retryDeletes(ctx)
	for {
		batch, err := r.o.Store.PruneErrorReports(ctx, before, r.o.Batch)
		if err != nil {
			return p, err
		}
		p.Reports += len(batch)
		for _, rep := range batch {
			if r.o.Blobs == nil || !announcesCoreDump(rep.CoreDump) {
				continue
			}
			key := CoreDumpBlobKey(rep.TenantID, rep.ID)
			if err := r.o.Blobs.Delete(ctx, key); err != nil && !errors.Is(err, blob.ErrNotFound) {
				r.o.Logger.Warn("delete a pruned report's core dump", "tenant_id", rep.TenantID, "report_id", rep.ID, "key", key, "error", err,
					"retried", r.keep(key))
				continue
			}
			p.CoreDumps++
		}
		if len(batch) < r.o.Batch || ctx.Err() != nil {
			return p, ctx.Err()
		}
	}
}

// keep remembers a core dump key whose delete failed, and reports whether it will be tried
// again (false once maxRetryDeletes are waiting).
func (r *Retention) keep(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.retry) >= maxRetryDeletes {
		return false
	}
	r.retry[key] = struct{}{}
	return true
}

// retryDeletes tries the core dump deletes that failed before again and returns how many are
// gone now.
func (r *Retention) retryDeletes(ctx context.Context) int {
	r.mu.Lock()
	keys := make([]string, 0, len(r.retry))
	for k := range r.retry {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	gone := 0
	for _, key := range keys {
		if ctx.Err() != nil {
			break
		}
		if err := r.o.Blobs.Delete(ctx, key); err != nil && !errors.Is(err, blob.ErrNotFound) {
			continue
		}
		r.mu.Lock()
		delete(r.retry, key)
		r.mu.Unlock()
		gone++
	}
	return gone
}

// announcesCoreDump reports whether a stored core dump summary announced a whole core dump,
// the only reports a device was asked to upload one for (Service.ErrorReport).
func announcesCoreDump(summary string) bool {
	var cd protocol.CoreDump
	return summary != "" && json.Unmarshal([]byte(summary), &cd) == nil && cd.Size > 0
}
