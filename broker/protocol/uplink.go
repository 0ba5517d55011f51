package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Status is the presence report on {root}/{id}/up/status. It is the only retained uplink: the
// device sets {"v":1,"online":false} as its last will (retained) and publishes online
// (retained) once connected. The server derives presence from it (docs/protocol.md, Presence).
type Status struct {
	Online bool `json:"online"`
}

// WillPayload is the exact last-will payload a device registers in CONNECT.
const WillPayload = `{"v":1,"online":false}`

// DecodeStatus decodes a status payload. "online" is required.
func DecodeStatus(data []byte) (Status, error) {
	o, err := open(KindStatus, data, MaxStatusSize)
	if err != nil {
		return Status{}, err
	}
	s := Status{Online: o.boolean("online", true)}
	return done(s, o.r)
}

// EncodeStatus encodes a status payload; EncodeStatus(Status{}) is exactly WillPayload.
func EncodeStatus(s Status) ([]byte, error) { return marshal(s, DecodeStatus) }

// Metadata is what a device reports at every boot, right after its online status. The server
// stores it as the device's current facts; firmware_version is what an OTA rollout compares
// with the release version to confirm success.
type Metadata struct {
	FirmwareVersion string `json:"firmware_version"`  // esp_app_desc_t.version; should equal the release version
	Project         string `json:"project,omitempty"` // esp_app_desc_t.project_name
	ChipModel       string `json:"chip_model"`        // CONFIG_IDF_TARGET, e.g. "esp32s3"
	ChipRevision    int    `json:"chip_revision"`     // esp_chip_info_t.revision (major*100+minor)
	IDFVersion      string `json:"idf_version"`       // esp_get_idf_version()
	MAC             string `json:"mac"`               // station MAC, aa:bb:cc:dd:ee:ff
	IP              string `json:"ip,omitempty"`
	RSSI            int    `json:"rssi,omitempty"` // dBm; absent when not on Wi-Fi
	FreeHeap        int64  `json:"free_heap"`      // bytes, esp_get_free_heap_size()
	MinFreeHeap     int64  `json:"min_free_heap,omitempty"`
	UptimeMS        int64  `json:"uptime_ms"`      // esp_timer_get_time()/1000
	ResetReason     string `json:"reset_reason"`   // see ResetReasons
	ConfigVersion   int64  `json:"config_version"` // 0 when the device holds no config yet
	ProtocolVersion int    `json:"protocol_version"`
	// Limits are what the device accepts; absent: the protocol's own limits.
	Limits *DeviceLimits `json:"limits,omitempty"`
}

// DeviceLimits is what a device declares it accepts, below the protocol's limits: a device
// built with the agent's small-memory profile (ESP8266) takes smaller commands and configs.
// The server refuses, when a config is written, a config the device would refuse, and never
// sends a command over CommandBytes.
type DeviceLimits struct {
	// CommandBytes is the largest command payload the device accepts.
	CommandBytes int64 `json:"command_bytes"`
	// ConfigBytes is the largest config it stores: the sum over its entries of the key's
	// length and the stored value's (a string's text; the compact JSON of any other value;
	// for a secret, the same of its decrypted value). See ConfigStoredSize.
	ConfigBytes int64 `json:"config_bytes"`
}

// Bounds of the declared limits: no device takes less than a command of MinDeviceCommandBytes.
const (
	MinDeviceCommandBytes = 1 << 10
	MinDeviceConfigBytes  = 256
	MaxDeviceConfigBytes  = 1 << 20
)

// EffectiveCommandBytes is the largest command the device takes: its declared limit, or the
// protocol's when it declared none.
func (l *DeviceLimits) EffectiveCommandBytes() int {
	if l == nil || l.CommandBytes <= 0 || l.CommandBytes > MaxCommandSize {
		return MaxCommandSize
	}
	return int(l.CommandBytes)
}

// EffectiveConfigBytes is the largest config the device stores (ConfigStoredSize), or 0 when
// it declared no limit.
func (l *DeviceLimits) EffectiveConfigBytes() int {
	if l == nil || l.ConfigBytes <= 0 {
		return 0
	}
	return int(l.ConfigBytes)
}

// ConfigStoredSize is what a config takes on a device, as DeviceLimits.ConfigBytes counts it:
// for each entry the key's length plus the stored value's length (a string's text, the compact
// JSON of any other value). plain gives an entry's value in clear (a secret's decrypted JSON).
func ConfigStoredSize(entries []ConfigEntry, plain func(i int) (json.RawMessage, error)) (int, error) {
	n := 0
	for i, e := range entries {
		v := e.Value
		if plain != nil {
			var err error
			if v, err = plain(i); err != nil {
				return 0, err
			}
		}
		n += len(e.Key)
		var s string
		if e.Type == TypeString && json.Unmarshal(v, &s) == nil {
			n += len(s)
			continue
		}
		var b bytes.Buffer
		if err := json.Compact(&b, v); err != nil {
			return 0, fmt.Errorf("protocol: config entry %q: %w", e.Key, err)
		}
		n += b.Len()
	}
	return n, nil
}

// DecodeMetadata decodes a metadata payload.
func DecodeMetadata(data []byte) (Metadata, error) {
	o, err := open(KindMetadata, data, MaxMetadataSize)
	if err != nil {
		return Metadata{}, err
	}
	m := Metadata{
		FirmwareVersion: o.str("firmware_version", true, MaxAppStringLength),
		Project:         o.str("project", false, MaxAppStringLength),
		ChipModel:       o.str("chip_model", true, MaxChipModelLength),
		ChipRevision:    int(o.integer("chip_revision", true, 0, 65535)),
		IDFVersion:      o.str("idf_version", true, MaxAppStringLength),
		MAC:             o.check("mac", o.str("mac", true, 17), validMAC, "a MAC address aa:bb:cc:dd:ee:ff in lower case"),
		IP:              o.check("ip", o.str("ip", false, 45), validIP, "an IPv4 or IPv6 address"),
		RSSI:            int(o.integer("rssi", false, -127, 0)),
		FreeHeap:        o.integer("free_heap", true, 0, MaxSafeInteger),
		MinFreeHeap:     o.integer("min_free_heap", false, 0, MaxSafeInteger),
		UptimeMS:        o.integer("uptime_ms", true, 0, MaxSafeInteger),
		ResetReason:     o.enum("reset_reason", true, ResetReasons()...),
		ConfigVersion:   o.integer("config_version", true, 0, MaxSafeInteger),
		ProtocolVersion: int(o.integer("protocol_version", true, 1, 65535)),
	}
	if l, ok := o.child("limits", false); ok {
		m.Limits = &DeviceLimits{
			CommandBytes: l.integer("command_bytes", true, MinDeviceCommandBytes, MaxCommandSize),
			ConfigBytes:  l.integer("config_bytes", true, MinDeviceConfigBytes, MaxDeviceConfigBytes),
		}
	}
	return done(m, o.r)
}

// EncodeMetadata encodes a metadata payload.
func EncodeMetadata(m Metadata) ([]byte, error) { return marshal(m, DecodeMetadata) }

// ConfigRequest is the boot refresh on {root}/{id}/up/config_req: the device tells which config
// version (and content hash) it holds; the server answers with a config command when that is
// not the device's current version, and with nothing when it is.
type ConfigRequest struct {
	ConfigVersion int64  `json:"config_version"`
	Hash          string `json:"hash,omitempty"`
}

// DecodeConfigRequest decodes a config_req payload.
func DecodeConfigRequest(data []byte) (ConfigRequest, error) {
	o, err := open(KindConfigRequest, data, MaxConfigRequestSize)
	if err != nil {
		return ConfigRequest{}, err
	}
	c := ConfigRequest{
		ConfigVersion: o.integer("config_version", true, 0, MaxSafeInteger),
		Hash:          o.check("hash", o.str("hash", false, 64), validSHA256, "64 lower-case hex digits"),
	}
	return done(c, o.r)
}

// EncodeConfigRequest encodes a config_req payload.
func EncodeConfigRequest(c ConfigRequest) ([]byte, error) { return marshal(c, DecodeConfigRequest) }

// Ack results.
const (
	ResultOK       = "ok"       // the command was carried out (update: accepted and started)
	ResultError    = "error"    // it was attempted and failed; Message says why
	ResultRejected = "rejected" // it was refused without being attempted (expired, invalid, unknown, busy)
)

// Ack acknowledges one command on {root}/{id}/up/ack. ID is the command's ID. Data is an
// optional JSON object whose content depends on the command (config: {"config_version": n}).
type Ack struct {
	ID      string          `json:"id"`
	Result  string          `json:"result"`
	Message string          `json:"message,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// DecodeAck decodes an ack payload.
func DecodeAck(data []byte) (Ack, error) {
	o, err := open(KindAck, data, MaxAckSize)
	if err != nil {
		return Ack{}, err
	}
	a := Ack{
		ID:      o.check("id", o.str("id", true, MaxIDLength), ValidCommandID, "a command ID"),
		Result:  o.enum("result", true, ResultOK, ResultError, ResultRejected),
		Message: o.str("message", false, MaxMessageLength),
	}
	if raw, ok := o.value("data", false); ok {
		if jsonType(raw) != "object" {
			o.r.fail("data", "must be an object")
		} else {
			a.Data = compact(raw)
		}
	}
	return done(a, o.r)
}

// EncodeAck encodes an ack payload.
func EncodeAck(a Ack) ([]byte, error) { return marshal(a, DecodeAck) }

// OTA states, in the order a successful update passes through them.
const (
	OTADownloading = "downloading"
	OTADownloaded  = "downloaded" // hash and size checked
	OTAInstalling  = "installing" // boot partition being switched
	OTARebooting   = "rebooting"
	OTASucceeded   = "succeeded" // sent by the new image once it reached the server
	OTAFailed      = "failed"    // Reason says why
)

// OTA failure reasons.
const (
	ReasonHashMismatch         = "hash_mismatch"
	ReasonSizeMismatch         = "size_mismatch"
	ReasonBadSignature         = "bad_signature"
	ReasonDownloadError        = "download_error"
	ReasonNoSpace              = "no_space"
	ReasonInvalidImage         = "invalid_image" // esp_ota_end/esp_ota_set_boot_partition refused it
	ReasonBootFailedRolledBack = "boot_failed_rolled_back"
	ReasonAlreadyRunning       = "already_running"
	ReasonExpired              = "expired" // command or URL past its expiry
	ReasonBusy                 = "busy"    // another update is in progress
	ReasonInternal             = "internal"
)

// OTAStates returns the OTA states in order.
func OTAStates() []string {
	return []string{OTADownloading, OTADownloaded, OTAInstalling, OTARebooting, OTASucceeded, OTAFailed}
}

// OTAReasons returns the OTA failure reasons.
func OTAReasons() []string {
	return []string{ReasonHashMismatch, ReasonSizeMismatch, ReasonBadSignature, ReasonDownloadError,
		ReasonNoSpace, ReasonInvalidImage, ReasonBootFailedRolledBack, ReasonAlreadyRunning,
		ReasonExpired, ReasonBusy, ReasonInternal}
}

// OTAProgress reports an update's progress on {root}/{id}/up/ota. ID is the update command's
// ID (the device keeps it in NVS across the reboot) and Version the release being installed.
// Reason is required with state failed and not allowed otherwise.
type OTAProgress struct {
	ID       string `json:"id"`
	Version  string `json:"version"`
	State    string `json:"state"`
	Progress int    `json:"progress"` // percent, 0..100
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
}

// DecodeOTAProgress decodes an ota payload.
func DecodeOTAProgress(data []byte) (OTAProgress, error) {
	o, err := open(KindOTA, data, MaxOTASize)
	if err != nil {
		return OTAProgress{}, err
	}
	p := OTAProgress{
		ID:       o.check("id", o.str("id", true, MaxIDLength), ValidCommandID, "a command ID"),
		Version:  o.check("version", o.str("version", true, 32), ValidReleaseVersion, "a version v-x.y.z"),
		State:    o.enum("state", true, OTAStates()...),
		Progress: int(o.integer("progress", false, 0, 100)),
		Reason:   o.enum("reason", false, OTAReasons()...),
		Message:  o.str("message", false, MaxMessageLength),
	}
	if o.r.err == nil {
		switch {
		case p.State == OTAFailed && p.Reason == "":
			o.r.fail("reason", "required with state %q", OTAFailed)
		case p.State != OTAFailed && p.Reason != "":
			o.r.fail("reason", "allowed only with state %q", OTAFailed)
		}
	}
	return done(p, o.r)
}

// EncodeOTAProgress encodes an ota payload.
func EncodeOTAProgress(p OTAProgress) ([]byte, error) { return marshal(p, DecodeOTAProgress) }

// compact returns raw without insignificant white space (raw has passed checkJSON).
func compact(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	return buf.Bytes()
}
