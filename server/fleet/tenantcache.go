package fleet

import (
	"context"
	"sync"
	"time"

	"github.com/espadmin/espadmin/store"
)

// DeviceAuther looks up a device by its ID alone (store.Store satisfies it).
type DeviceAuther interface {
	DeviceAuth(ctx context.Context, deviceID string) (store.DeviceAuth, error)
}

// TenantCache maps a device ID (unique across tenants) to its tenant through a small cache, so
// a flood of reports does not become a flood of queries. Ingestion reads it; the device
// service, as one of its Forgetters, drops a device that was deleted, rotated or disabled.
//
// It is a value of its own, shared by both, because the process builds the device service
// long before ingestion: the config service needs the device service, and ingestion needs the
// config service.
type TenantCache struct {
	store DeviceAuther
	ttl   time.Duration

	mu sync.Mutex
	m  map[string]cacheEntry
}

type cacheEntry struct {
	tenantID string
	expires  time.Time
}

var _ Forgetter = (*TenantCache)(nil)

// NewTenantCache returns an empty cache whose entries live ttl (DefaultCacheTTL when not
// positive).
func NewTenantCache(st DeviceAuther, ttl time.Duration) *TenantCache {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	return &TenantCache{store: st, ttl: ttl, m: map[string]cacheEntry{}}
}

// Forget drops the cached tenant of a device (deleted, rotated, disabled).
func (c *TenantCache) Forget(deviceID string) {
	c.mu.Lock()
	delete(c.m, deviceID)
	c.mu.Unlock()
}

// TenantOf returns the tenant of a device, from the cache or the store.
func (c *TenantCache) TenantOf(ctx context.Context, deviceID string) (string, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[deviceID]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.tenantID, nil
	}
	a, err := c.store.DeviceAuth(ctx, deviceID)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if len(c.m) >= maxCacheEntries {
		c.m = map[string]cacheEntry{}
	}
	c.m[deviceID] = cacheEntry{tenantID: a.TenantID, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return a.TenantID, nil
}
