package alerts

import (
	"context"
	"log/slog"
	"time"

	"github.com/espadmin/espadmin/server/periodic"
)

// Defaults of RetentionOptions.
const (
	// DefaultRetention is how long resolved and acknowledged alerts and finished deliveries
	// are kept (alerts.retention).
	DefaultRetention = 90 * 24 * time.Hour
	// DefaultRetentionInterval is how often the sweep runs.
	DefaultRetentionInterval = time.Hour
)

// RetentionStore is what the retention sweep needs from the store.
type RetentionStore interface {
	PruneAlertHistory(ctx context.Context, before time.Time) (int64, error)
}

// RetentionOptions configure the retention sweep. Zero values take the defaults.
type RetentionOptions struct {
	Store     RetentionStore
	Retention time.Duration
	Interval  time.Duration
	Logger    *slog.Logger
}

// Retention deletes the alert history and the delivery log past the retention: resolved and
// acknowledged alerts and delivered and failed deliveries whose last change is older. Firing
// alerts and pending deliveries are never deleted. Every replica may run it: a row is
// deleted once, whoever comes first.
type Retention struct{ o RetentionOptions }

// NewRetention makes the sweep; Run starts it.
func NewRetention(o RetentionOptions) *Retention {
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.Interval <= 0 {
		o.Interval = DefaultRetentionInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Retention{o: o}
}

// Run sweeps at once and then every interval until ctx ends.
func (r *Retention) Run(ctx context.Context) error {
	return periodic.Run(ctx, r.o.Interval, func(ctx context.Context) {
		if n, err := r.Once(ctx); err != nil && ctx.Err() == nil {
			r.o.Logger.Warn("prune alert history", "error", err)
		} else if n > 0 {
			r.o.Logger.Debug("alert history pruned", "rows", n)
		}
	})
}

// Once deletes what is past the retention now and returns how many rows went.
func (r *Retention) Once(ctx context.Context) (int64, error) {
	return r.o.Store.PruneAlertHistory(ctx, time.Now().Add(-r.o.Retention))
}
