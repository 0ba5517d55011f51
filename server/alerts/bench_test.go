package alerts

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// BenchmarkWebhookDispatch measures outbox rows to signed webhook deliveries per second on
// SQLite, with four fast receivers and one that hangs until the benchmark ends: its
// deliveries hold a few of the dispatcher's workers, and the rest must go on at full speed.
func BenchmarkWebhookDispatch(b *testing.B) {
	b.Run("all receivers fast", func(b *testing.B) { benchDispatch(b, 0) })
	b.Run("one receiver hangs", func(b *testing.B) { benchDispatch(b, 4) })
}

// benchDispatch queues hung deliveries to the hanging receiver, then b.N to the fast ones.
func benchDispatch(b *testing.B, hung int) {
	k := testKeyring(b)
	st := openStore(b, filepath.Join(b.TempDir(), "bench.db"))
	defer st.Close()
	ctx := context.Background()
	tn := store.Tenant{Slug: "bench", Name: "Bench"}
	must(b, st.CreateTenant(ctx, &tn))
	var delivered atomic.Int64
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer fast.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()

	secret := NewWebhookSecret()
	var fastChannels []store.AlertChannel
	for range 4 {
		fastChannels = append(fastChannels, webhookChannel(b, st, k, tn.ID, fast.URL, PresetStandard, secret))
	}
	slowChannel := webhookChannel(b, st, k, tn.ID, slow.URL, PresetStandard, secret)
	// The hanging receiver's deliveries are queued first, so they are claimed first.
	for range hung {
		queue(b, st, slowChannel, "slow")
	}
	for i := range b.N {
		queue(b, st, fastChannels[i%len(fastChannels)], "fast")
	}
	d := NewDispatcher(DispatchOptions{Store: st, Keyring: k, AllowPrivate: true, PollInterval: 10 * time.Millisecond,
		SendTimeout: time.Hour})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	b.ResetTimer()
	start := time.Now()
	go func() { _ = d.Run(runCtx); close(done) }()
	poll.Every(b, time.Millisecond, 10*time.Minute, "every fast delivery", func() bool { return delivered.Load() >= int64(b.N) })
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	close(release)
	cancel()
	<-done
}
