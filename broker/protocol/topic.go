package protocol

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// DefaultRoot is the topic root used when the configuration does not set one.
const DefaultRoot = "espadmin"

// Topic limits. MQTT allows topics of up to 65,535 bytes (MQTT 3.1.1 §1.5.3); ours are short,
// so anything longer is hostile or broken and is refused before any further parsing.
const (
	MaxIDLength    = 64
	MaxRootLength  = 64
	MaxTopicLength = 256
)

// Direction is the branch of a device's subtree a topic belongs to.
type Direction string

// Directions: Down carries commands from the server to the device, Up carries everything the
// device sends. Keeping them in separate branches is what lets a plain broker ACL pattern
// (read {root}/%u/down/#, write {root}/%u/up/#) confine a device.
const (
	Down Direction = "down"
	Up   Direction = "up"
)

// KindCommand is the only downlink kind: {root}/{deviceID}/down/cmd.
const KindCommand = "cmd"

// Uplink kinds: the last level of {root}/{deviceID}/up/{kind}.
const (
	KindStatus        = "status"     // presence; the only retained uplink (also the last will)
	KindMetadata      = "metadata"   // at every boot
	KindAck           = "ack"        // command acknowledgement
	KindOTA           = "ota"        // update progress and outcome
	KindLog           = "log"        // batched log lines while debug is on
	KindError         = "error"      // error and crash reports
	KindConfigRequest = "config_req" // boot refresh: "this is the config version I hold"
)

// UplinkKinds returns every uplink kind, in the order of docs/protocol.md.
func UplinkKinds() []string {
	return []string{KindStatus, KindMetadata, KindAck, KindOTA, KindLog, KindError, KindConfigRequest}
}

// IsUplinkKind reports whether kind is a defined uplink kind.
func IsUplinkKind(kind string) bool {
	switch kind {
	case KindStatus, KindMetadata, KindAck, KindOTA, KindLog, KindError, KindConfigRequest:
		return true
	}
	return false
}

// ValidDeviceID reports whether id can be a device ID (and so an MQTT username, client ID and
// topic level): 1 to MaxIDLength bytes of [a-z0-9_-]. IDs made by store.NewID always pass; the
// check is general so that nothing with a topic meaning (/ + # $), NUL or upper case (which
// brokers compare case-sensitively) can ever become a level of another device's topics.
func ValidDeviceID(id string) bool {
	if id == "" || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidRoot reports whether root can be the topic root: 1 to MaxRootLength bytes, one or more
// non-empty levels of [A-Za-z0-9_.-]. It therefore never starts with '$' (reserved for broker
// topics, MQTT 3.1.1 §4.7.2) and holds no wildcard, so it can be pasted into ACL patterns.
func ValidRoot(root string) bool {
	if root == "" || len(root) > MaxRootLength {
		return false
	}
	for _, level := range strings.Split(root, "/") {
		if level == "" {
			return false
		}
		for i := 0; i < len(level); i++ {
			c := level[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
				return false
			}
		}
	}
	return true
}

// DownlinkCommand returns the topic commands for deviceID are published to (QoS 1, never
// retained). root and deviceID must be valid; the broker and the server validate them at the
// edge (configuration, device creation), so this function does not repeat the check.
func DownlinkCommand(root, deviceID string) string {
	return root + "/" + deviceID + "/" + string(Down) + "/" + KindCommand
}

// DownlinkFilter returns the filter a device subscribes to: {root}/{deviceID}/down/#.
func DownlinkFilter(root, deviceID string) string {
	return root + "/" + deviceID + "/" + string(Down) + "/#"
}

// Uplink returns the topic deviceID publishes kind on.
func Uplink(root, deviceID, kind string) string {
	return root + "/" + deviceID + "/" + string(Up) + "/" + kind
}

// UplinkFilter returns the filter the server subscribes to for kind from every device, e.g.
// espadmin/+/up/status; an empty kind gives espadmin/+/up/# (every uplink).
func UplinkFilter(root, kind string) string {
	if kind == "" {
		return root + "/+/" + string(Up) + "/#"
	}
	return root + "/+/" + string(Up) + "/" + kind
}

// ParseTopic splits a concrete topic {root}/{deviceID}/{down|up}/{kind}. It returns
// ErrInvalidTopic when the shape, the root, the device ID or the direction is wrong (including
// wildcards, empty levels, NUL and topics longer than MaxTopicLength) and ErrUnknownKind when
// only the last level is not a kind defined for that direction.
func ParseTopic(root, topic string) (deviceID string, dir Direction, kind string, err error) {
	if !ValidRoot(root) {
		return "", "", "", fmt.Errorf("%w: invalid root %q", ErrInvalidTopic, root)
	}
	if !validTopicName(topic) {
		return "", "", "", fmt.Errorf("%w: not a valid topic name", ErrInvalidTopic)
	}
	rest, ok := strings.CutPrefix(topic, root+"/")
	if !ok {
		return "", "", "", fmt.Errorf("%w: not under root %q", ErrInvalidTopic, root)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("%w: want {root}/{device}/{up|down}/{kind}", ErrInvalidTopic)
	}
	deviceID, d, kind := parts[0], Direction(parts[1]), parts[2]
	if !ValidDeviceID(deviceID) {
		return "", "", "", fmt.Errorf("%w: invalid device ID", ErrInvalidTopic)
	}
	switch d {
	case Down:
		if kind != KindCommand {
			return "", "", "", fmt.Errorf("%w: downlink %q", ErrUnknownKind, kind)
		}
	case Up:
		if !IsUplinkKind(kind) {
			return "", "", "", fmt.Errorf("%w: uplink %q", ErrUnknownKind, kind)
		}
	default:
		return "", "", "", fmt.Errorf("%w: direction %q", ErrInvalidTopic, parts[1])
	}
	return deviceID, d, kind, nil
}

// DeviceMaySubscribe is the SUBSCRIBE-time ACL rule: deviceID may subscribe to filter only if
// every topic filter can match lies inside {root}/{deviceID}/down/. That means the literal
// prefix {root}/{deviceID}/down/ followed by one or more non-empty levels, where '+' and a
// final '#' are allowed. Everything else is refused: '#', '+' at the device level, other
// devices, the uplink branch, empty levels, $SYS/…, $share/… and $queue/… (a shared
// subscription would let the broker hand one device's commands to another group member).
func DeviceMaySubscribe(root, deviceID, filter string) bool {
	if !ValidRoot(root) || !ValidDeviceID(deviceID) || !validTopicString(filter) {
		return false
	}
	rest, ok := strings.CutPrefix(filter, root+"/"+deviceID+"/"+string(Down)+"/")
	if !ok {
		return false
	}
	levels := strings.Split(rest, "/")
	for i, level := range levels {
		switch {
		case level == "":
			return false
		case level == "#":
			if i != len(levels)-1 {
				return false
			}
		case level == "+":
		case strings.ContainsAny(level, "+#"):
			return false
		}
	}
	return true
}

// DeviceMayReceive is the delivery-time ACL rule (checked again when the broker delivers a
// message, so a subscription that slipped through cannot leak): the concrete topic must lie
// inside {root}/{deviceID}/down/.
func DeviceMayReceive(root, deviceID, topic string) bool {
	if !ValidRoot(root) || !ValidDeviceID(deviceID) || !validTopicName(topic) {
		return false
	}
	rest, ok := strings.CutPrefix(topic, root+"/"+deviceID+"/"+string(Down)+"/")
	if !ok {
		return false
	}
	for _, level := range strings.Split(rest, "/") {
		if level == "" {
			return false
		}
	}
	return true
}

// DeviceMayPublish is the PUBLISH-time ACL rule: deviceID may publish only to its own uplink
// topics of a defined kind, and may set the retain flag only on status (a retained log, ack or
// error would be replayed to every new server subscriber).
func DeviceMayPublish(root, deviceID, topic string, retain bool) bool {
	id, dir, kind, err := ParseTopic(root, topic)
	if err != nil || dir != Up || id != deviceID {
		return false
	}
	return !retain || kind == KindStatus
}

// DeviceMaySetWill is the CONNECT-time rule for the last will (MQTT 3.1.1 §3.1.2.5): the will
// topic must be the device's own status topic and the payload an offline status, so a device
// cannot use its will to publish anything else, anywhere else, when it disconnects.
func DeviceMaySetWill(root, deviceID, topic string, payload []byte) bool {
	if !DeviceMayPublish(root, deviceID, topic, true) || topic != Uplink(root, deviceID, KindStatus) {
		return false
	}
	s, err := DecodeStatus(payload)
	return err == nil && !s.Online
}

// validTopicName checks a topic name as published: 1 to MaxTopicLength bytes of valid UTF-8,
// no NUL, no wildcard (MQTT 3.1.1 §4.7.1.1, §4.7.3).
func validTopicName(t string) bool {
	return validTopicString(t) && !strings.ContainsAny(t, "+#")
}

// validTopicString checks what topic names and filters share (MQTT 3.1.1 §1.5.3, §4.7.3).
func validTopicString(t string) bool {
	return t != "" && len(t) <= MaxTopicLength && utf8.ValidString(t) && !strings.ContainsRune(t, 0)
}
