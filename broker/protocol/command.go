package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"
)

// Command names.
const (
	CommandRestart = "restart"
	CommandConfig  = "config"
	CommandUpdate  = "update"
	CommandDebug   = "debug"
	// CommandCoreDump asks a device to upload the core dump its error report announced
	// (core_dump.size) with an HTTP PUT to a signed URL; the device erases it once the server
	// answered 2xx.
	CommandCoreDump = "coredump"
)

// CommandNames returns the command names this version defines.
func CommandNames() []string {
	return []string{CommandRestart, CommandConfig, CommandUpdate, CommandDebug, CommandCoreDump}
}

// Debug limits: the live log stream stops by itself after DurationS seconds, so a forgotten
// session cannot flood the broker.
const (
	DefaultDebugDuration = 900   // seconds (15 minutes)
	MaxDebugDuration     = 14400 // seconds (4 hours)
)

// Config limits, from ESP-IDF NVS: keys are at most 15 characters (NVS_KEY_NAME_MAX_SIZE-1)
// and a string value at most 4000 bytes including its NUL.
const (
	MaxConfigKeyLength    = 15
	MaxConfigEntries      = 64
	MaxConfigValueLength  = 3999 // string values, and json values in compact form
	MaxSecretValueLength  = 5400 // base64 of nonce, ciphertext and tag of a 3999-byte value
	MaxImageSize          = 32 << 20
	MaxURLLength          = 2048
	ReservedConfigKeyMark = "_" // keys the platform manages start with it
)

// Config value types.
const (
	TypeString = "string"
	TypeInt    = "int"
	TypeFloat  = "float"
	TypeBool   = "bool"
	TypeJSON   = "json"
)

// Keys the platform manages (the last layer of a device's effective config). Users cannot
// set keys starting with ReservedConfigKeyMark.
const (
	KeyMQTTHost   = "_mqtt_host"   // string
	KeyMQTTPort   = "_mqtt_port"   // int
	KeyMQTTCA     = "_mqtt_ca"     // string, PEM
	KeyMQTTSecret = "_mqtt_secret" // string, secret: the device's new MQTT password after a rotation
)

// Command is a server-to-device request on {root}/{id}/down/cmd (QoS 1, not retained).
// Exactly one of the params pointers is set, the one matching Name. ExpiresAt is a Unix time
// in milliseconds; a device refuses a command it receives after it (ack "rejected",
// "expired") when its clock is set, and the server stops delivering it.
type Command struct {
	ID        string
	Name      string
	ExpiresAt int64
	Restart   *RestartParams
	Config    *ConfigParams
	Update    *UpdateParams
	Debug     *DebugParams
	CoreDump  *CoreDumpParams
}

// CoreDumpParams are the params of coredump: where to PUT the core dump (a URL that needs no
// other credential, valid until URLExpiresAt, Unix ms).
type CoreDumpParams struct {
	URL          string `json:"url"`
	URLExpiresAt int64  `json:"url_expires_at"`
}

// Expired reports whether the command has expired at now.
func (c Command) Expired(now time.Time) bool { return now.UnixMilli() >= c.ExpiresAt }

// RestartParams are the params of restart.
type RestartParams struct {
	Reason string `json:"reason,omitempty"`
}

// DebugParams are the params of debug. Level and DurationS default to "info" and
// DefaultDebugDuration; they are ignored when Enabled is false.
type DebugParams struct {
	Enabled   bool   `json:"enabled"`
	Level     string `json:"level"`
	DurationS int    `json:"duration_s"`
}

// ConfigParams are the params of config: the device's complete effective config at Version.
// Hash is the SHA-256 (hex) of the content, computed by the server; the device echoes it in
// config_req. The device applies all entries or none.
type ConfigParams struct {
	Version int64         `json:"version"`
	Hash    string        `json:"hash"`
	Entries []ConfigEntry `json:"entries"`
}

// ConfigEntry is one typed key-value pair. Value is the JSON value itself (a string, number,
// boolean, or any JSON for type json). When Secret is true, Value is a JSON string holding
// base64(nonce ‖ AES-256-GCM ciphertext ‖ tag) of the JSON encoding of the value; see
// SealSecret.
type ConfigEntry struct {
	Key    string          `json:"key"`
	Type   string          `json:"type"`
	Value  json.RawMessage `json:"value"`
	Secret bool            `json:"secret,omitempty"`
}

// UpdateParams are the params of update. Signature is base64 Ed25519 over
// OTASigningString; it is empty only when the project turned signing off.
type UpdateParams struct {
	Version      string `json:"version"`
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
	URL          string `json:"url"`
	URLExpiresAt int64  `json:"url_expires_at"` // Unix ms; 0 when the URL does not expire
	Signature    string `json:"signature,omitempty"`
}

type commandWire struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	ExpiresAt int64  `json:"expires_at"`
	Params    any    `json:"params"`
}

// EncodeCommand encodes a command. It fails when the params do not match Name, when a field
// is invalid, and with ErrTooLarge when the result exceeds MaxCommandSize (a config with too
// much content: the config service must refuse the edit instead).
func EncodeCommand(c Command) ([]byte, error) {
	w := commandWire{ID: c.ID, Name: c.Name, ExpiresAt: c.ExpiresAt}
	var set []string
	if c.Restart != nil {
		set, w.Params = append(set, CommandRestart), c.Restart
	}
	if c.Config != nil {
		p := *c.Config
		if p.Entries == nil {
			p.Entries = []ConfigEntry{}
		}
		set, w.Params = append(set, CommandConfig), p
	}
	if c.Update != nil {
		set, w.Params = append(set, CommandUpdate), c.Update
	}
	if c.Debug != nil {
		set, w.Params = append(set, CommandDebug), c.Debug
	}
	if c.CoreDump != nil {
		set, w.Params = append(set, CommandCoreDump), c.CoreDump
	}
	switch {
	case len(set) > 1:
		return nil, &FieldError{Field: "params", Reason: fmt.Sprintf("more than one params set: %v", set)}
	case len(set) == 1 && set[0] != c.Name:
		return nil, &FieldError{Field: "params", Reason: fmt.Sprintf("%s params for command %q", set[0], c.Name)}
	case len(set) == 0 && c.Name == CommandRestart:
		w.Params = RestartParams{}
	case len(set) == 0:
		w.Params = struct{}{} // decoding reports the first missing param
	}
	return encode(w, func(data []byte) error {
		_, err := DecodeCommand(data)
		return err
	})
}

// DecodeCommand decodes a command payload. Fields are checked in this order: v, id, name,
// expires_at, params. An unknown name is ErrUnknownCommand; the firmware still acknowledges it
// as rejected when the ID could be read (see PeekCommandID).
func DecodeCommand(data []byte) (Command, error) {
	o, err := open("command", data, MaxCommandSize)
	if err != nil {
		return Command{}, err
	}
	c := Command{ID: o.check("id", o.str("id", true, MaxIDLength), ValidCommandID, "a command ID")}
	c.Name = o.str("name", true, 32)
	if o.r.err != nil {
		return Command{}, o.r.err
	}
	switch c.Name {
	case CommandRestart, CommandConfig, CommandUpdate, CommandDebug, CommandCoreDump:
	default:
		return Command{}, fmt.Errorf("%w: %q", ErrUnknownCommand, c.Name)
	}
	c.ExpiresAt = o.integer("expires_at", true, 1, MaxSafeInteger)
	p, ok := o.child("params", false)
	if !ok {
		p = o.r.object("params", json.RawMessage("{}"))
	}
	switch c.Name {
	case CommandRestart:
		c.Restart = &RestartParams{Reason: p.str("reason", false, MaxReasonLength)}
	case CommandDebug:
		d := &DebugParams{
			Enabled:   p.boolean("enabled", true),
			Level:     p.enum("level", false, LogLevels()...),
			DurationS: int(p.integer("duration_s", false, 1, MaxDebugDuration)),
		}
		if d.Level == "" {
			d.Level = LevelInfo
		}
		if d.DurationS == 0 {
			d.DurationS = DefaultDebugDuration
		}
		c.Debug = d
	case CommandConfig:
		c.Config = decodeConfig(p)
	case CommandUpdate:
		c.Update = &UpdateParams{
			Version:      p.check("version", p.str("version", true, 32), ValidReleaseVersion, "a version v-x.y.z"),
			Size:         p.integer("size", true, 1, MaxImageSize),
			SHA256:       p.check("sha256", p.str("sha256", true, 64), validSHA256, "64 lower-case hex digits"),
			URL:          p.check("url", p.str("url", true, MaxURLLength), validDownloadURL, "an absolute http or https URL of printable ASCII"),
			URLExpiresAt: p.integer("url_expires_at", true, 0, MaxSafeInteger),
			Signature:    p.check("signature", p.str("signature", false, 88), validSignature, "base64 of 64 bytes"),
		}
	case CommandCoreDump:
		c.CoreDump = &CoreDumpParams{
			URL:          p.check("url", p.str("url", true, MaxURLLength), validDownloadURL, "an absolute http or https URL of printable ASCII"),
			URLExpiresAt: p.integer("url_expires_at", true, 0, MaxSafeInteger),
		}
	}
	return done(c, o.r)
}

func decodeConfig(p obj) *ConfigParams {
	c := &ConfigParams{
		Version: p.integer("version", true, 1, MaxSafeInteger),
		Hash:    p.check("hash", p.str("hash", true, 64), validSHA256, "64 lower-case hex digits"),
	}
	items := p.array("entries", true, 0, MaxConfigEntries)
	c.Entries = make([]ConfigEntry, 0, len(items))
	seen := make(map[string]bool, len(items))
	for i, raw := range items {
		e := p.r.object(index(p.name("entries"), i), raw)
		entry := ConfigEntry{
			Key:    e.check("key", e.str("key", true, MaxConfigKeyLength), ValidConfigKey, "1 to 15 characters of [A-Za-z0-9_]"),
			Type:   e.enum("type", true, TypeString, TypeInt, TypeFloat, TypeBool, TypeJSON),
			Secret: e.boolean("secret", false),
		}
		if seen[entry.Key] && p.r.err == nil {
			p.r.fail(e.name("key"), "duplicate key %q", entry.Key)
		}
		seen[entry.Key] = true
		if raw, ok := e.value("value", true); ok && p.r.err == nil {
			entry.Value = p.r.configValue(e.name("value"), entry.Type, entry.Secret, raw)
		}
		c.Entries = append(c.Entries, entry)
	}
	return c
}

// configValue checks a value against its type and returns it in compact form.
func (r *reader) configValue(field, typ string, secret bool, raw json.RawMessage) json.RawMessage {
	kind := jsonType(raw)
	var s string
	if kind == "string" {
		_ = json.Unmarshal(raw, &s) // raw is a valid JSON string
	}
	switch {
	case secret:
		b, err := base64.StdEncoding.DecodeString(s)
		if kind != "string" || len(s) > MaxSecretValueLength || err != nil || len(b) < SecretNonceSize+secretTagSize+1 {
			r.fail(field, "must be a sealed secret: base64 of nonce, ciphertext and tag")
		}
	case typ == TypeString:
		if kind != "string" {
			r.fail(field, "must be a string")
		} else if len(s) > MaxConfigValueLength {
			r.fail(field, "longer than %d bytes", MaxConfigValueLength)
		}
	case typ == TypeInt:
		r.integer(field, raw, -MaxSafeInteger, MaxSafeInteger)
	case typ == TypeFloat:
		f, err := strconv.ParseFloat(string(raw), 64)
		if kind != "number" || err != nil || math.IsInf(f, 0) {
			r.fail(field, "must be a finite number")
		}
	case typ == TypeBool:
		if kind != "boolean" {
			r.fail(field, "must be a boolean")
		}
	case typ == TypeJSON:
		if len(compact(raw)) > MaxConfigValueLength {
			r.fail(field, "longer than %d bytes", MaxConfigValueLength)
		}
	}
	return compact(raw)
}

// ValidConfigKey reports whether k can be a config key: 1 to 15 characters of [A-Za-z0-9_],
// which ESP-IDF NVS stores as is.
func ValidConfigKey(k string) bool {
	if k == "" || len(k) > MaxConfigKeyLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ReservedConfigKey reports whether k belongs to the platform (starts with "_").
func ReservedConfigKey(k string) bool { return len(k) > 0 && k[:1] == ReservedConfigKeyMark }

// validDownloadURL accepts an absolute http(s) URL with a host, made of printable ASCII only,
// so that it cannot break the line structure of OTASigningString.
func validDownloadURL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}

func validSignature(s string) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(b) == 64
}

// PeekCommandID returns the "id" of a command payload that could not be decoded, when the
// payload is within MaxCommandSize, well formed and its id valid; otherwise "". A device uses
// it to acknowledge an unknown or invalid command as rejected instead of staying silent.
func PeekCommandID(data []byte) string {
	if len(data) > MaxCommandSize || checkJSON(data) != nil {
		return ""
	}
	var w struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(data, &w) != nil || jsonType(w.ID) != "string" {
		return ""
	}
	var id string
	if json.Unmarshal(bytes.TrimSpace(w.ID), &id) != nil || !ValidCommandID(id) {
		return ""
	}
	return id
}
