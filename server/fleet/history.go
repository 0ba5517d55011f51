package fleet

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/espadmin/espadmin/server/periodic"
	"github.com/espadmin/espadmin/store"
)

// History timing: a count of each tenant's fleet every FleetSampleInterval, and samples kept
// for HistoryRetention.
const (
	FleetSampleInterval = 5 * time.Minute
	HistoryRetention    = 30 * 24 * time.Hour
)

// HistoryStore is what the history worker reads and writes.
type HistoryStore interface {
	store.HistoryStore
	DeviceCounts(ctx context.Context, tenantID string) (store.DeviceCounts, error)
	ListTenants(ctx context.Context, opts store.ListOptions) (store.Page[store.Tenant], error)
}

// HistoryOptions configure the history worker.
type HistoryOptions struct {
	Store     HistoryStore
	Interval  time.Duration // 0: FleetSampleInterval
	Retention time.Duration // 0: HistoryRetention
	Now       Clock
	Logger    *slog.Logger
}

// History records each tenant's online and total device count every interval (the
// dashboard's "online devices over time") and deletes samples past the retention. Every
// replica runs it: a sample's time is the interval's start, so replicas write the same sample
// and all but the first get a conflict, which is no error.
type History struct{ o HistoryOptions }

// NewHistory makes the worker.
func NewHistory(o HistoryOptions) *History {
	if o.Interval <= 0 {
		o.Interval = FleetSampleInterval
	}
	if o.Retention <= 0 {
		o.Retention = HistoryRetention
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &History{o: o}
}

// Run samples at once and then every interval until ctx ends.
func (h *History) Run(ctx context.Context) error {
	return periodic.Run(ctx, h.o.Interval, func(ctx context.Context) {
		if err := h.Once(ctx); err != nil && ctx.Err() == nil {
			h.o.Logger.Warn("record fleet history", "error", err)
		}
	})
}

// Once records one sample of every tenant and prunes what is past the retention.
func (h *History) Once(ctx context.Context) error {
	now := h.o.Now.now()
	at := now.Truncate(h.o.Interval)
	var errs []error
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := h.o.Store.ListTenants(ctx, opts)
		if err != nil {
			return err
		}
		for _, tn := range page.Items {
			c, err := h.o.Store.DeviceCounts(ctx, tn.ID)
			if err == nil {
				err = h.o.Store.AddFleetSample(ctx, store.FleetSample{TenantID: tn.ID, At: at, Online: c.Online, Total: c.Total})
			}
			if err != nil && !errors.Is(err, store.ErrConflict) {
				errs = append(errs, err)
			}
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	if _, err := h.o.Store.PruneHistory(ctx, now.Add(-h.o.Retention)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
