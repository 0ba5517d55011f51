// Package devauth caches the device credentials lookup (store.DeviceAuth) that both the
// embedded broker (at every CONNECT) and the server's ingestion (for every report's tenant)
// make, so a connect storm or a flood of reports costs one store read per device. One cache
// serves both, so one Forget clears a device everywhere at once.
//
// Entries, found and not found alike, live for a TTL and the least recently used go first
// when the cache is full (github.com/hashicorp/golang-lru/v2). Expiry is checked on read
// against an injected clock rather than with the library's expirable variant, whose sweeper
// goroutine never stops and which reads the wall clock. A device is forgotten on its
// own (rotated, disabled, deleted) or with its whole tenant (deleted); a lookup that was
// reading the store while a Forget ran does not put its possibly stale answer back.
package devauth

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/espadmin/espadmin/store"
)

// Source looks up a device's credentials; store.Store satisfies it.
type Source interface {
	DeviceAuth(ctx context.Context, deviceID string) (store.DeviceAuth, error)
}

// DefaultSize bounds a cache whose Options.Size is 0 (entries of about 200 bytes).
const DefaultSize = 100_000

// Options configure New.
type Options struct {
	// TTL is how long an answer is kept; 0 or less turns caching off (every lookup reads the
	// store).
	TTL time.Duration
	// Size bounds the number of entries; 0 means DefaultSize.
	Size int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Cache is a Source that remembers answers. It is safe for concurrent use.
type Cache struct {
	src Source
	ttl time.Duration
	now func() time.Time

	mu  sync.Mutex
	lru *lru.Cache[string, entry]
	gen uint64 // bumped by every Forget and ForgetTenant
}

// entry is a cached answer: the credentials, or that the device does not exist.
type entry struct {
	auth    store.DeviceAuth
	found   bool
	expires time.Time
}

var _ Source = (*Cache)(nil)

// New returns a cache in front of src.
func New(src Source, o Options) *Cache {
	if o.Size <= 0 {
		o.Size = DefaultSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	l, err := lru.New[string, entry](o.Size)
	if err != nil {
		panic("devauth: " + err.Error()) // only for a size <= 0, excluded above
	}
	return &Cache{src: src, ttl: o.TTL, now: o.Now, lru: l}
}

// DeviceAuth returns the device's credentials, or an error matching store.ErrNotFound when it
// does not exist; it lets a Cache stand wherever a Source does.
func (c *Cache) DeviceAuth(ctx context.Context, deviceID string) (store.DeviceAuth, error) {
	a, _, err := c.Lookup(ctx, deviceID)
	return a, err
}

// Lookup is DeviceAuth that also reports whether the answer came from the cache.
func (c *Cache) Lookup(ctx context.Context, deviceID string) (_ store.DeviceAuth, hit bool, _ error) {
	if c.ttl <= 0 {
		a, err := c.src.DeviceAuth(ctx, deviceID)
		return a, false, err
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.lru.Get(deviceID)
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.result(deviceID)
	}
	a, err := c.src.DeviceAuth(ctx, deviceID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		e = entry{}
	case err != nil:
		return store.DeviceAuth{}, false, err // errors are not cached: the next lookup retries
	default:
		a.SecretHash = bytes.Clone(a.SecretHash)
		e = entry{auth: a, found: true}
	}
	e.expires = now.Add(c.ttl)
	c.mu.Lock()
	if c.gen == gen {
		c.lru.Add(deviceID, e)
	}
	c.mu.Unlock()
	a, _, err = e.result(deviceID)
	return a, false, err
}

func (e entry) result(deviceID string) (store.DeviceAuth, bool, error) {
	if !e.found {
		return store.DeviceAuth{}, true, &notFoundError{deviceID: deviceID}
	}
	a := e.auth
	a.SecretHash = bytes.Clone(a.SecretHash)
	return a, true, nil
}

// notFoundError is the answer for a device that does not exist.
type notFoundError struct{ deviceID string }

func (e *notFoundError) Error() string {
	return "devauth: device " + e.deviceID + ": " + store.ErrNotFound.Error()
}
func (e *notFoundError) Unwrap() error { return store.ErrNotFound }

// Forget drops what is cached about deviceID, so its next lookup reads the store.
func (c *Cache) Forget(deviceID string) {
	c.mu.Lock()
	c.gen++
	c.lru.Remove(deviceID)
	c.mu.Unlock()
}

// ForgetTenant drops every cached device of tenantID (a deleted tenant), so none of them is
// accepted from the cache again.
func (c *Cache) ForgetTenant(tenantID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, k := range c.lru.Keys() {
		if e, ok := c.lru.Peek(k); ok && e.found && e.auth.TenantID == tenantID {
			c.lru.Remove(k)
		}
	}
}

// Cached reports whether an unexpired answer about deviceID is cached.
func (c *Cache) Cached(deviceID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Peek(deviceID)
	return ok && c.now().Before(e.expires)
}

// Len is the number of entries, expired ones included until they are evicted or read.
func (c *Cache) Len() int { return c.lru.Len() }
