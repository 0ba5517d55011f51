package broker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/devauth"
)

// authHook checks a device's credentials at CONNECT: the username is a valid device ID, the
// client ID equals it, and SHA-256 of the password matches the stored hash (compared in
// constant time). Lookups go through the device-auth cache shared with the server's
// ingestion (package devauth), found and not found alike, so a connect storm (every device
// reconnecting after a network outage) costs one store read per device, and forgetting a
// device or a tenant there takes effect at its next CONNECT.
type authHook struct {
	mqtt.HookBase
	cache   *devauth.Cache
	metrics *metrics
	log     *slog.Logger
	ctx     context.Context
	// failed, when set, learns about each known device that presented a wrong secret.
	failed func(tenantID, deviceID string)
}

// authEntry is the answer of a lookup: the device's hash and state, or that it does not exist.
type authEntry struct {
	hash     []byte
	found    bool
	disabled bool
	tenantID string
}

// unknownHash is compared against when a device does not exist, so an unknown device costs
// the same as a wrong secret.
var unknownHash = sha256.Sum256([]byte("espadmin: no such device"))

func newAuthHook(cache *devauth.Cache, m *metrics, log *slog.Logger, ctx context.Context) *authHook {
	return &authHook{cache: cache, metrics: m, log: log, ctx: ctx}
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
		if h.failed != nil {
			h.failed(e.tenantID, id)
		}
		return connectBadSecret
	case e.disabled:
		return connectDisabled
	}
	return connectOK
}

// lookup returns id's credentials from the cache or the store.
func (h *authHook) lookup(id string) (authEntry, error) {
	ctx, cancel := context.WithTimeout(h.ctx, authLookupTimeout)
	defer cancel()
	a, hit, err := h.cache.Lookup(ctx, id)
	result := "miss"
	if hit {
		result = "hit"
	}
	h.metrics.authCache.WithLabelValues(result).Inc()
	switch {
	case errors.Is(err, store.ErrNotFound):
		return authEntry{}, nil
	case err != nil:
		return authEntry{}, err
	}
	return authEntry{hash: a.SecretHash, found: true, disabled: a.Disabled, tenantID: a.TenantID}, nil
}

// Forget evicts deviceID's cached credentials.
func (h *authHook) Forget(deviceID string) { h.cache.Forget(deviceID) }

func (h *authHook) cached(deviceID string) bool { return h.cache.Cached(deviceID) }
