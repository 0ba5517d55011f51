package devauth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
)

// fakeSource is a device table that counts lookups; block, when set, is waited on inside a
// lookup (to run a Forget while the store is being read).
type fakeSource struct {
	mu      sync.Mutex
	devices map[string]store.DeviceAuth
	calls   int
	block   chan struct{}
	entered chan struct{}
}

func (f *fakeSource) DeviceAuth(_ context.Context, id string) (store.DeviceAuth, error) {
	f.mu.Lock()
	f.calls++
	a, ok := f.devices[id]
	block, entered := f.block, f.entered
	f.mu.Unlock()
	if block != nil {
		entered <- struct{}{}
		<-block
	}
	if !ok {
		return store.DeviceAuth{}, fmt.Errorf("store: device %s: %w", id, store.ErrNotFound)
	}
	return a, nil
}

func (f *fakeSource) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func newFake(tenants map[string]string) *fakeSource {
	f := &fakeSource{devices: map[string]store.DeviceAuth{}}
	for dev, tenant := range tenants {
		f.devices[dev] = store.DeviceAuth{DeviceID: dev, TenantID: tenant, SecretHash: []byte("h-" + dev)}
	}
	return f
}

func TestCache(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	ctx := context.Background()

	t.Run("hits, misses, not found and expiry", func(t *testing.T) {
		now = time.Unix(1000, 0)
		src := newFake(map[string]string{"d1": "t1"})
		c := New(src, Options{TTL: 30 * time.Second, Now: clock})
		for i, wantHit := range []bool{false, true, true} {
			a, hit, err := c.Lookup(ctx, "d1")
			if err != nil || a.TenantID != "t1" || hit != wantHit {
				t.Fatalf("lookup %d = %+v hit %v %v, want t1 hit %v", i, a, hit, err, wantHit)
			}
		}
		for range 2 {
			if _, err := c.DeviceAuth(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("unknown device: %v, want ErrNotFound", err)
			}
		}
		if got := src.count(); got != 2 {
			t.Fatalf("store lookups = %d, want 2 (found and not found cached)", got)
		}
		now = now.Add(31 * time.Second)
		if _, hit, _ := c.Lookup(ctx, "d1"); hit {
			t.Fatal("expired entry served")
		}
		if got := src.count(); got != 3 {
			t.Fatalf("store lookups after expiry = %d, want 3", got)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		src := newFake(nil)
		c := New(src, Options{TTL: time.Minute, Size: 10, Now: clock})
		for i := range 50 {
			_, _ = c.DeviceAuth(ctx, fmt.Sprintf("d%d", i))
		}
		if n := c.Len(); n > 10 {
			t.Fatalf("cache holds %d entries, bound is 10", n)
		}
	})

	t.Run("forget device and tenant", func(t *testing.T) {
		src := newFake(map[string]string{"a1": "ta", "a2": "ta", "b1": "tb"})
		c := New(src, Options{TTL: time.Hour, Now: clock})
		for _, d := range []string{"a1", "a2", "b1"} {
			if _, err := c.DeviceAuth(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		c.Forget("b1")
		if c.Cached("b1") {
			t.Fatal("Forget left b1 cached")
		}
		_, _ = c.DeviceAuth(ctx, "b1")
		c.ForgetTenant("ta")
		for d, want := range map[string]bool{"a1": false, "a2": false, "b1": true} {
			if got := c.Cached(d); got != want {
				t.Errorf("after ForgetTenant(ta): cached(%s) = %v, want %v", d, got, want)
			}
		}
	})

	t.Run("a lookup racing a forget does not cache its answer", func(t *testing.T) {
		src := newFake(map[string]string{"d1": "t1"})
		src.block, src.entered = make(chan struct{}), make(chan struct{})
		c := New(src, Options{TTL: time.Hour, Now: clock})
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = c.DeviceAuth(ctx, "d1")
		}()
		<-src.entered
		c.ForgetTenant("t1")
		close(src.block)
		<-done
		if c.Cached("d1") {
			t.Fatal("an answer read before ForgetTenant was cached after it")
		}
	})

	t.Run("off", func(t *testing.T) {
		src := newFake(map[string]string{"d1": "t1"})
		c := New(src, Options{})
		_, _ = c.DeviceAuth(ctx, "d1")
		_, _ = c.DeviceAuth(ctx, "d1")
		if got := src.count(); got != 2 {
			t.Fatalf("store lookups with TTL 0 = %d, want 2", got)
		}
	})
}
