package broker

import (
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/espadmin/espadmin/broker/protocol"
)

// aclHook confines every device to its own subtree with the rules of docs/protocol.md §1.1
// (package protocol's DeviceMay… functions). It is the only hook that answers OnACLCheck:
// mochi OR-combines hook answers, so an allow-all hook beside it would open everything.
//
//   - SUBSCRIBE: each filter must pass DeviceMaySubscribe; refused filters get the failure
//     reason code (0x87 Not authorized in MQTT 5, 0x80 in MQTT 3.1.1), the others are granted.
//   - delivery: mochi asks again (write=false, concrete topic) before every delivery to a
//     device; the topic must pass DeviceMayReceive.
//   - PUBLISH: the topic must pass DeviceMayPublish; the retain flag is checked in OnPublish,
//     where mochi shows it. A refused QoS 0 message is dropped; a refused QoS 1 message gets
//     PUBACK 0x87 in MQTT 5 and closes the connection in MQTT 3.1.1, which has no way to
//     say no (mochi does the same for its own ACL refusals).
//   - last will: checked at CONNECT with DeviceMaySetWill; a device registering any other
//     will is refused with CONNACK "not authorized", so a misconfigured device is noticed
//     instead of silently running without its offline marker.
//
// The in-process inline client (the server) is the only privileged client.
type aclHook struct {
	mqtt.HookBase
	root    string
	srv     *mqtt.Server
	metrics *metrics

	// subscribing holds clients inside a SUBSCRIBE (between OnSubscribe and OnSubscribed on
	// their own goroutine), so that a refusal there is counted as subscribe, not receive.
	mu          sync.Mutex
	subscribing map[*mqtt.Client]int
}

func (h *aclHook) ID() string { return "espadmin-acl" }

func (h *aclHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnACLCheck, mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnPublish:
		return true
	}
	return false
}

// OnConnect refuses a last will outside the device's own offline status.
func (h *aclHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !pk.Connect.WillFlag {
		return nil
	}
	if protocol.DeviceMaySetWill(h.root, pk.Connect.ClientIdentifier, pk.Connect.WillTopic, pk.Connect.WillPayload) {
		return nil
	}
	h.metrics.aclDenied.WithLabelValues(aclWill).Inc()
	h.metrics.connects.WithLabelValues(connectWillRefused).Inc()
	code := packets.ErrNotAuthorized // 0x87
	if pk.ProtocolVersion < 5 {
		code = packets.Err3NotAuthorized // 0x05; mochi would send 0x87, which 3.1.1 lacks
	}
	_ = h.srv.SendConnack(cl, code, false, nil)
	return packets.ErrNotAuthorized
}

func (h *aclHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	id := cl.ID
	if write {
		if protocol.DeviceMayPublish(h.root, id, topic, false) {
			return true
		}
		h.metrics.aclDenied.WithLabelValues(aclPublish).Inc()
		if _, _, _, err := protocol.ParseTopic(h.root, topic); err != nil {
			h.metrics.dropped.WithLabelValues(dropMalformedTopic).Inc()
		} else {
			h.metrics.dropped.WithLabelValues(dropACL).Inc()
		}
		return false
	}
	var ok bool
	if strings.ContainsAny(topic, "+#") || strings.HasPrefix(topic, "$") {
		ok = protocol.DeviceMaySubscribe(h.root, id, topic) // only filters carry wildcards
	} else {
		ok = protocol.DeviceMayReceive(h.root, id, topic)
	}
	if !ok {
		kind := aclReceive
		h.mu.Lock()
		if h.subscribing[cl] > 0 {
			kind = aclSubscribe
		}
		h.mu.Unlock()
		h.metrics.aclDenied.WithLabelValues(kind).Inc()
	}
	return ok
}

func (h *aclHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline {
		return pk
	}
	h.mu.Lock()
	if h.subscribing == nil {
		h.subscribing = map[*mqtt.Client]int{}
	}
	h.subscribing[cl]++
	h.mu.Unlock()
	return pk
}

func (h *aclHook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	if cl.Net.Inline {
		return
	}
	h.mu.Lock()
	if h.subscribing[cl]--; h.subscribing[cl] <= 0 {
		delete(h.subscribing, cl)
	}
	h.mu.Unlock()
}

// OnPublish refuses retained publishes other than status.
func (h *aclHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || !pk.FixedHeader.Retain || protocol.DeviceMayPublish(h.root, cl.ID, pk.TopicName, true) {
		return pk, nil
	}
	h.metrics.aclDenied.WithLabelValues(aclRetain).Inc()
	h.metrics.dropped.WithLabelValues(dropACL).Inc()
	switch {
	case pk.FixedHeader.Qos == 0:
		return pk, packets.ErrRejectPacket
	case cl.Properties.ProtocolVersion == 5:
		return pk, packets.ErrNotAuthorized // PUBACK with reason code 0x87
	default:
		_ = h.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		return pk, packets.ErrRejectPacket
	}
}
