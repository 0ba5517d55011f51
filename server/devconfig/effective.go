package devconfig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
)

// Layer is where an effective value comes from.
type Layer string

// Layers, in the order they are applied (later wins).
const (
	LayerProject  Layer = "project"
	LayerDevice   Layer = "device"
	LayerPlatform Layer = "platform"
)

// item is one entry of a device's effective config, as a version's snapshot keeps it. A
// secret keeps its value sealed with the master key under the associated data of the entry it
// was read from (Scope, ScopeID), so a snapshot opens even after the entry changed.
type item struct {
	Key          string            `json:"key"`
	Type         store.ConfigType  `json:"type"`
	Value        json.RawMessage   `json:"value,omitempty"`
	Secret       bool              `json:"secret,omitempty"`
	Sealed       []byte            `json:"sealed,omitempty"`
	Fingerprint  string            `json:"fp,omitempty"`
	Layer        Layer             `json:"layer"`
	Scope        store.ConfigScope `json:"scope,omitempty"`
	ScopeID      string            `json:"scope_id,omitempty"`
	EntryVersion int64             `json:"entry_version,omitempty"`
}

// snapshot is the JSON stored in ConfigVersion.Snapshot.
type snapshot struct {
	Entries []item `json:"entries"`
}

func parseSnapshot(v store.ConfigVersion) (snapshot, error) {
	var s snapshot
	if err := json.Unmarshal([]byte(v.Snapshot), &s); err != nil {
		return s, fmt.Errorf("devconfig: snapshot of version %d of device %q: %w", v.Version, v.DeviceID, err)
	}
	return s, nil
}

// entryAD is the associated data a secret entry is sealed with at rest: the value opens only
// in the row (tenant, scope, scope ID, key) it was written to.
func entryAD(tenantID string, scope store.ConfigScope, scopeID, key string) []byte {
	return []byte("espadmin-config-entry\n" + tenantID + "\n" + string(scope) + "\n" + scopeID + "\n" + key)
}

// fingerprint stands for a secret's value in the content hash and in comparisons: an HMAC
// under a key derived from the master key, so it reveals nothing about the value.
func (s *Service) fingerprint(tenantID, key string, plaintext []byte) string {
	m := hmac.New(sha256.New, s.o.FingerprintKey)
	m.Write([]byte(tenantID + "\n" + key + "\n"))
	m.Write(plaintext)
	return hex.EncodeToString(m.Sum(nil))
}

// itemOf turns a stored entry into an effective item; layer is the entry's layer.
func (s *Service) itemOf(e store.ConfigEntry, layer Layer) (item, error) {
	it := item{Key: e.Key, Type: e.Type, Secret: e.Secret, Layer: layer, Scope: e.Scope, ScopeID: e.ScopeID, EntryVersion: e.Version}
	if !e.Secret {
		it.Value = json.RawMessage(e.Value)
		return it, nil
	}
	plain, err := s.o.Keyring.Open(e.ValueSealed, entryAD(e.TenantID, e.Scope, e.ScopeID, e.Key))
	if err != nil {
		return it, fmt.Errorf("devconfig: open secret %q of %s %q: %w", e.Key, e.Scope, e.ScopeID, err)
	}
	it.Sealed, it.Fingerprint = e.ValueSealed, s.fingerprint(e.TenantID, e.Key, plain)
	return it, nil
}

// openItem returns a secret item's plaintext (the JSON encoding of its value).
func (s *Service) openItem(tenantID string, it item) ([]byte, error) {
	plain, err := s.o.Keyring.Open(it.Sealed, entryAD(tenantID, it.Scope, it.ScopeID, it.Key))
	if err != nil {
		return nil, fmt.Errorf("devconfig: open secret %q: %w", it.Key, err)
	}
	return plain, nil
}

// platformItems are the keys the platform manages from the endpoint a tenant's devices
// connect to: the tenant's own broker when it uses one (TenantEndpoint), else the embedded
// broker's.
func (s *Service) platformItems(tenantID string) []item {
	var e fleet.Endpoint
	switch {
	case s.o.TenantEndpoint != nil:
		e = s.o.TenantEndpoint(tenantID)
	case s.o.Endpoint != nil:
		e = s.o.Endpoint()
	default:
		return nil
	}
	var out []item
	if e.MQTTHost != "" {
		host, _ := json.Marshal(e.MQTTHost)
		out = append(out, item{Key: protocol.KeyMQTTHost, Type: store.TypeString, Value: host, Layer: LayerPlatform})
	}
	if e.MQTTPort > 0 {
		out = append(out, item{Key: protocol.KeyMQTTPort, Type: store.TypeInt, Value: json.RawMessage(strconv.Itoa(e.MQTTPort)), Layer: LayerPlatform})
	}
	if e.CAPEM != "" && len(e.CAPEM) <= protocol.MaxConfigValueLength {
		ca, _ := json.Marshal(e.CAPEM)
		out = append(out, item{Key: protocol.KeyMQTTCA, Type: store.TypeString, Value: ca, Layer: LayerPlatform})
	}
	return out
}

// layers holds the entries a device's effective config is merged from.
type layers struct {
	project []store.ConfigEntry
	device  []store.ConfigEntry
}

// merge applies the layers in order and returns the effective items sorted by key. Entries
// of the device scope whose key is reserved were written by the platform (a staged
// credential) and belong to the platform layer.
func (s *Service) merge(tenantID string, l layers) ([]item, error) {
	byKey := map[string]item{}
	for _, e := range l.project {
		it, err := s.itemOf(e, LayerProject)
		if err != nil {
			return nil, err
		}
		byKey[e.Key] = it
	}
	var platform []item
	for _, e := range l.device {
		layer := LayerDevice
		if protocol.ReservedConfigKey(e.Key) {
			layer = LayerPlatform
		}
		it, err := s.itemOf(e, layer)
		if err != nil {
			return nil, err
		}
		if layer == LayerPlatform {
			platform = append(platform, it)
			continue
		}
		byKey[e.Key] = it
	}
	for _, it := range append(s.platformItems(tenantID), platform...) {
		byKey[it.Key] = it
	}
	out := make([]item, 0, len(byKey))
	for _, it := range byKey {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// hasUserContent reports whether items hold anything beyond the endpoint keys, which every
// device already has from its provisioning bundle.
func hasUserContent(items []item) bool {
	for _, it := range items {
		if it.Layer != LayerPlatform || it.ScopeID != "" {
			return true
		}
	}
	return false
}

// contentHash is SHA-256 (hex) over the canonical JSON of what the device receives: key,
// type, secret flag and value (a secret's fingerprint instead of its value), sorted by key.
func contentHash(items []item) string {
	type hashed struct {
		Key    string           `json:"key"`
		Type   store.ConfigType `json:"type"`
		Secret bool             `json:"secret"`
		Value  json.RawMessage  `json:"value,omitempty"`
		FP     string           `json:"fp,omitempty"`
	}
	list := make([]hashed, len(items))
	for i, it := range items {
		list[i] = hashed{Key: it.Key, Type: it.Type, Secret: it.Secret, Value: it.Value, FP: it.Fingerprint}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Key < list[j].Key })
	b, _ := json.Marshal(list)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sameContent reports whether two items would give the device the same entry.
func sameContent(a, b item) bool {
	return a.Key == b.Key && a.Type == b.Type && a.Secret == b.Secret &&
		string(a.Value) == string(b.Value) && a.Fingerprint == b.Fingerprint
}

// params builds the config command's params for a device: secrets are opened and sealed
// again end to end with the device key (docs/protocol.md §5).
func (s *Service) params(dev store.Device, deviceKey []byte, version int64, hash string, items []item) (*protocol.ConfigParams, error) {
	p := &protocol.ConfigParams{Version: version, Hash: hash, Entries: make([]protocol.ConfigEntry, 0, len(items))}
	for _, it := range items {
		e := protocol.ConfigEntry{Key: it.Key, Type: string(it.Type), Value: it.Value, Secret: it.Secret}
		if it.Secret {
			plain, err := s.openItem(dev.TenantID, it)
			if err != nil {
				return nil, err
			}
			sealed, err := protocol.SealSecret(deviceKey, dev.ID, it.Key, version, plain, nil)
			if err != nil {
				return nil, err
			}
			e.Value, _ = json.Marshal(sealed)
		}
		p.Entries = append(p.Entries, e)
	}
	return p, nil
}

// deviceKey opens the device's per-device key (fleet.DeviceKeyAD).
func (s *Service) deviceKey(dev store.Device) ([]byte, error) {
	key, err := s.o.Keyring.Open(dev.KeySealed, fleet.DeviceKeyAD(dev.TenantID, dev.ID))
	if err != nil {
		return nil, fmt.Errorf("devconfig: open key of device %q: %w", dev.ID, err)
	}
	return key, nil
}
