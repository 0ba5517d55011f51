// Package periodic runs the server's background sweeps: the same work at start and then at a
// fixed interval, until the server stops.
package periodic

import (
	"context"
	"time"
)

// Run calls fn at once and then every interval until ctx ends, and returns nil then. A call
// that takes longer than interval delays the next one; ticks are not queued up.
func Run(ctx context.Context, interval time.Duration, fn func(context.Context)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
