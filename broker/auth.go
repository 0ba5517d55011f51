package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
)

// authHook checks a device's credentials at CONNECT: the username is a valid device ID, the
// client ID equals it, and SHA-256 of the password matches the stored hash (compared in
// constant time). Lookups are cached briefly, found and not found alike, so a connect storm
// (every device reconnecting after a network outage) costs one store read per device.
type authHook struct {
	mqtt.HookBase
	devices DeviceAuthenticator
	ttl     time.Duration
	max     int
	metrics *metrics
	log     *slog.Logger
	ctx     context.Context
	now     func() time.Time

	mu    sync.Mutex
	cache map[string]authEntry
}

// authEntry is a cached lookup: the device's hash and state, or that it does not exist.
type authEntry struct {
	hash     []byte
	found    bool
	disabled bool
	expires  time.Time
}

// unknownHash is compared against when a device does not exist, so an unknown device costs
// the same as a wrong secret.
var unknownHash = sha256.Sum256([]byte("espadmin: no such device"))

func newAuthHook(d DeviceAuthenticator, ttl time.Duration, max int, m *metrics, log *slog.Logger, ctx context.Context) *authHook {
	return &authHook{devices: d, ttl: ttl, max: max, metrics: m, log: log, ctx: ctx, now: time.Now, cache: map[string]authEntry{}}
}

func (h *authHook) ID() string { return "espadmin-auth" }

func (h *authHook) Provides(b byte) bool { return b == mqtt.OnConnectAuthenticate }

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	result := h.authenticate(pk)
	h.metrics.connects.WithLabelValues(result).Inc()
	if result != connectOK {
		h.log.Debug("mqtt connect refused", "reason", result, "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	return true
}

func (h *authHook) authenticate(pk packets.Packet) string {
	id := string(pk.Connect.Username)
	sum := sha256.Sum256(pk.Connect.Password)
	if !protocol.ValidDeviceID(id) {
		return connectInvalidUsername
	}
	if pk.Connect.ClientIdentifier != id {
		return connectClientIDMismatch
	}
	e, err := h.lookup(id)
	if err != nil {
		h.log.Warn("mqtt credentials lookup failed", "device", id, "error", err)
		return connectStoreError
	}
	want := unknownHash[:]
	if e.found && len(e.hash) == sha256.Size {
		want = e.hash
	}
	ok := subtle.ConstantTimeCompare(sum[:], want) == 1
	switch {
	case !e.found:
		return connectUnknownDevice
	case !ok:
		return connectBadSecret
	case e.disabled:
		return connectDisabled
	}
	return connectOK
}

// lookup returns the cached entry for id or reads it from the store.
func (h *authHook) lookup(id string) (authEntry, error) {
	now := h.now()
	if h.ttl > 0 {
		h.mu.Lock()
		e, ok := h.cache[id]
		h.mu.Unlock()
		if ok && now.Before(e.expires) {
			h.metrics.authCache.WithLabelValues("hit").Inc()
			return e, nil
		}
	}
	h.metrics.authCache.WithLabelValues("miss").Inc()
	ctx, cancel := context.WithTimeout(h.ctx, authLookupTimeout)
	defer cancel()
	a, err := h.devices.DeviceAuth(ctx, id)
	var e authEntry
	switch {
	case errors.Is(err, store.ErrNotFound):
		e = authEntry{}
	case err != nil:
		return authEntry{}, err
	default:
		e = authEntry{hash: bytes.Clone(a.SecretHash), found: true, disabled: a.Disabled}
	}
	if h.ttl > 0 {
		e.expires = now.Add(h.ttl)
		h.mu.Lock()
		h.evictLocked(now)
		h.cache[id] = e
		h.mu.Unlock()
	}
	return e, nil
}

// evictLocked makes room when the cache is full: expired entries go first, then arbitrary
// ones (Go's map order is random, so that is random eviction) until a tenth is free, so the
// sweep runs once per max/10 insertions at most.
func (h *authHook) evictLocked(now time.Time) {
	if len(h.cache) < h.max {
		return
	}
	for k, e := range h.cache {
		if !now.Before(e.expires) {
			delete(h.cache, k)
		}
	}
	for k := range h.cache {
		if len(h.cache) < h.max-h.max/10 {
			break
		}
		delete(h.cache, k)
	}
}

// Forget evicts deviceID's cached credentials.
func (h *authHook) Forget(deviceID string) {
	h.mu.Lock()
	delete(h.cache, deviceID)
	h.mu.Unlock()
}

func (h *authHook) cached(deviceID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.cache[deviceID]
	return ok
}
