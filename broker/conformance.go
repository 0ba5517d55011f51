package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// conformanceHook corrects what mochi v2.7.9 sends that the client's protocol version does
// not allow, or leaves unanswered (docs/broker.md, "Protocol conformance"):
//
//   - MQTT 3.1.1 has no server DISCONNECT (§3.14: only the client sends it); mochi sends one
//     before closing any client (session takeover, refused publish, shutdown), which 3.1.1
//     clients report as a protocol error (mosquitto_sub then gives up reconnecting). The
//     packet is dropped before encoding, so a 3.1.1 client just sees the connection close.
//   - MQTT 3.1.1 CONNACK return codes are 0-5 (§3.2.2.3); mochi sends MQTT 5 reason codes it
//     has no mapping for (0x82 for a zero-length password, 0x80, 0x8A, …). They are mapped
//     to the nearest 3.1.1 code, or, for a malformed CONNECT, the CONNACK is dropped and the
//     connection closed, as §3.1.4 requires. A zero-length password (allowed by both 3.1.1
//     §3.1.3.5 and 5 §3.1.3.5) is refused as bad credentials: 5 in 3.1.1 like every other
//     credential refusal (mochi's mapping of 0x86), 0x86 in MQTT 5.
//   - The broker offers QoS 0 and 1 only (CONNACK Maximum QoS 1 in MQTT 5). mochi turns a
//     QoS 2 PUBLISH into QoS 1 and answers PUBACK, while the client waits for PUBREC; the
//     client is disconnected instead (DISCONNECT 0x9B in MQTT 5, [MQTT-3.2.2-11]; closed in
//     3.1.1, which has no way to refuse a QoS), and the message is not delivered. A will of
//     QoS 2 is refused at CONNECT (0x9B, or 3 "server unavailable" in 3.1.1).
//   - A QoS 1 or 2 PUBLISH to a topic mochi never routes ($SYS/…) is dropped by mochi without
//     an acknowledgement, so the client resends it forever. It is refused like any publish
//     outside the device's uplink: PUBACK/PUBREC 0x87 in MQTT 5, connection closed in 3.1.1.
type conformanceHook struct {
	mqtt.HookBase
	srv     *mqtt.Server
	metrics *metrics
}

func (h *conformanceHook) ID() string { return "espadmin-conformance" }

func (h *conformanceHook) Provides(b byte) bool {
	return b == mqtt.OnPacketEncode || b == mqtt.OnPacketRead
}

// notEncoded is a packet type mochi's WritePacket does not encode: the write fails and
// nothing reaches the client.
const notEncoded = packets.Reserved

// v3ConnackCodes maps MQTT 5 CONNACK reason codes mochi may send to MQTT 3.1.1 return codes.
var v3ConnackCodes = map[byte]byte{
	packets.ErrUnspecifiedError.Code:           packets.Err3ClientIdentifierNotValid.Code, // persistent session without client ID, [MQTT-3.1.3-8]
	packets.ErrUnsupportedProtocolVersion.Code: packets.Err3UnsupportedProtocolVersion.Code,
	packets.ErrClientIdentifierNotValid.Code:   packets.Err3ClientIdentifierNotValid.Code,
	packets.ErrBadUsernameOrPassword.Code:      packets.Err3NotAuthorized.Code,
	packets.ErrNotAuthorized.Code:              packets.Err3NotAuthorized.Code,
	packets.ErrServerUnavailable.Code:          packets.Err3ServerUnavailable.Code,
	packets.ErrServerBusy.Code:                 packets.Err3ServerUnavailable.Code,
	packets.ErrBanned.Code:                     packets.Err3NotAuthorized.Code,
	packets.ErrBadAuthenticationMethod.Code:    packets.Err3NotAuthorized.Code,
	packets.ErrQuotaExceeded.Code:              packets.Err3ServerUnavailable.Code,
	packets.ErrConnectionRateExceeded.Code:     packets.Err3ServerUnavailable.Code,
	packets.ErrQosNotSupported.Code:            packets.Err3ServerUnavailable.Code,
	packets.ErrRetainNotSupported.Code:         packets.Err3ServerUnavailable.Code,
}

func (h *conformanceHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Disconnect:
		if cl.Properties.ProtocolVersion < 5 {
			pk.FixedHeader.Type = notEncoded
		}
	case packets.Connack:
		if pk.ReasonCode < packets.ErrUnspecifiedError.Code {
			return pk
		}
		emptyPassword := pk.Properties.ReasonString == packets.ErrProtocolViolationFlagNoPassword.Reason
		if cl.Properties.ProtocolVersion == 5 {
			if emptyPassword {
				pk.ReasonCode = packets.ErrBadUsernameOrPassword.Code
				pk.Properties.ReasonString = packets.ErrBadUsernameOrPassword.Reason
			}
			return pk
		}
		switch code, ok := v3ConnackCodes[pk.ReasonCode]; {
		case emptyPassword:
			pk.ReasonCode = packets.Err3NotAuthorized.Code
		case pk.Properties.ReasonString == packets.ErrProtocolViolationProtocolVersion.Reason:
			pk.ReasonCode = packets.Err3UnsupportedProtocolVersion.Code // [MQTT-3.1.2-2]
		case ok:
			pk.ReasonCode = code
		default:
			pk.FixedHeader.Type = notEncoded // malformed CONNECT: close without CONNACK, [MQTT-3.1.4-1]
		}
	}
	return pk
}

func (h *conformanceHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 || cl.Net.Inline {
		return pk, nil
	}
	if pk.FixedHeader.Qos > h.srv.Options.Capabilities.MaximumQos {
		// mochi would downgrade it and answer PUBACK where the client waits for PUBREC.
		h.metrics.dropped.WithLabelValues(dropQoSNotSupported).Inc()
		_ = h.srv.DisconnectClient(cl, packets.ErrQosNotSupported) // [MQTT-3.2.2-11]; 3.1.1: closed silently
		return pk, packets.ErrRejectPacket
	}
	if pk.TopicName == "" || mqtt.IsValidFilter(pk.TopicName, true) {
		return pk, nil
	}
	// mochi's processPublish returns before any acknowledgement for this topic.
	h.metrics.aclDenied.WithLabelValues(aclPublish).Inc()
	h.metrics.dropped.WithLabelValues(dropACL).Inc()
	if cl.Properties.ProtocolVersion == 5 {
		ack := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Puback},
			PacketID:    pk.PacketID,
			ReasonCode:  packets.ErrNotAuthorized.Code,
			Properties:  packets.Properties{ReasonString: packets.ErrNotAuthorized.Reason},
		}
		if pk.FixedHeader.Qos == 2 {
			ack.FixedHeader.Type = packets.Pubrec
		}
		_ = cl.WritePacket(ack)
		return pk, nil // mochi drops it
	}
	_ = h.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	return pk, nil
}
