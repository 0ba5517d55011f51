package fleet

import (
	"fmt"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
)

// DeviceLimits returns the limits the device declared in its metadata (docs/protocol.md
// §3.2), or nil when it declared none: the protocol's own limits apply then.
func DeviceLimits(d store.Device) *protocol.DeviceLimits {
	m := d.Metadata
	if m.LimitCommandBytes <= 0 {
		return nil
	}
	return &protocol.DeviceLimits{CommandBytes: m.LimitCommandBytes, ConfigBytes: m.LimitConfigBytes}
}

// CheckCommandFits refuses (422, field "params") a command payload larger than the device
// accepts: such a command would only be dropped by the device.
func CheckCommandFits(d store.Device, payload []byte) error {
	limit := DeviceLimits(d).EffectiveCommandBytes()
	if len(payload) > limit {
		return store.Invalid("params", fmt.Sprintf("the command is %d bytes; device %s accepts commands of at most %d bytes",
			len(payload), d.ID, limit))
	}
	return nil
}
