package devconfig

import (
	"encoding/json"
	"fmt"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
)

// checkDeviceLimits refuses (422 on field) an effective config that the device would refuse by
// the limits it declared in its metadata (docs/protocol.md §3.2): its config command over the
// largest command it takes, or its stored size (protocol.ConfigStoredSize) over its config
// limit. commandLen is the config command's encoded length. Devices that declared no limits
// take what the protocol allows, which the caller checked already.
func (s *Service) checkDeviceLimits(dev store.Device, items []item, commandLen int, field string) error {
	limits := fleet.DeviceLimits(dev)
	if limits == nil {
		return nil
	}
	if max := limits.EffectiveCommandBytes(); commandLen > max {
		return store.Invalid(field, fmt.Sprintf("the config command for device %s would be %d bytes; the device accepts at most %d bytes",
			dev.ID, commandLen, max))
	}
	max := limits.EffectiveConfigBytes()
	if max == 0 || max >= protocol.MaxCommandSize {
		// A config's stored form is never larger than its command (a string's text is no
		// longer than its JSON, a secret's plaintext shorter than its sealed form): a limit at
		// the protocol's command size cannot be exceeded by a config that was sent.
		return nil
	}
	entries := make([]protocol.ConfigEntry, len(items))
	for i, it := range items {
		entries[i] = protocol.ConfigEntry{Key: it.Key, Type: string(it.Type), Value: it.Value, Secret: it.Secret}
	}
	size, err := protocol.ConfigStoredSize(entries, func(i int) (json.RawMessage, error) {
		if !items[i].Secret {
			return items[i].Value, nil
		}
		plain, err := s.openItem(dev.TenantID, items[i])
		return json.RawMessage(plain), err
	})
	if err != nil {
		return err
	}
	if size > max {
		return store.Invalid(field, fmt.Sprintf("the config of device %s would take %d bytes; the device stores at most %d bytes (its config limit)",
			dev.ID, size, max))
	}
	return nil
}
