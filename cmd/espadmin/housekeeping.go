package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/server/periodic"
)

// Housekeeping timing: how often expired sessions and stale login limits are removed, and how
// long one sweep may take.
const (
	sweepInterval = 10 * time.Minute
	sweepTimeout  = time.Minute
)

// sweeper is what the housekeeping loop needs from the account service.
type sweeper interface {
	Sweep(ctx context.Context) (account.SweepStats, error)
}

var _ sweeper = (*account.Service)(nil)

// runSweeps sweeps once at start and then every interval until ctx ends. Every replica runs
// it: the deletes are idempotent, so replicas sweeping at once only repeat work, and the sweep
// goes on while any replica runs. A failed sweep is logged and tried again next time.
func runSweeps(ctx context.Context, s sweeper, interval time.Duration, log *slog.Logger) error {
	return periodic.Run(ctx, interval, func(ctx context.Context) { sweepOnce(ctx, s, log) })
}

func sweepOnce(ctx context.Context, s sweeper, log *slog.Logger) {
	sctx, cancel := context.WithTimeout(ctx, sweepTimeout)
	defer cancel()
	stats, err := s.Sweep(sctx)
	switch {
	case ctx.Err() != nil:
		// Shutting down: the sweep was cut short on purpose.
	case err != nil:
		log.Warn("sweep expired sessions and login limits", "error", err,
			"sessions", stats.Sessions, "login_limits", stats.LoginLimits)
	default:
		log.Debug("swept expired sessions and login limits",
			"sessions", stats.Sessions, "login_limits", stats.LoginLimits)
	}
}
