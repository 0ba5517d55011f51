package devconfig

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
)

// Input is one entry a caller wants to write. Value is the JSON value itself (a string,
// number, boolean or any JSON for type json). Version is the entry's version the caller last
// read, 0 to create a key that must not exist yet.
type Input struct {
	Key     string
	Type    store.ConfigType
	Value   json.RawMessage
	Secret  bool
	Version int64
}

// Types returns the value types an entry may have.
func Types() []store.ConfigType {
	return []store.ConfigType{store.TypeString, store.TypeInt, store.TypeFloat, store.TypeBool, store.TypeJSON}
}

// checkKey returns why k cannot be a user's key, or "".
func checkKey(k string) string {
	switch {
	case k == "":
		return "is required"
	case len(k) > protocol.MaxConfigKeyLength:
		return fmt.Sprintf("must be at most %d characters (the ESP-IDF NVS key limit)", protocol.MaxConfigKeyLength)
	case !protocol.ValidConfigKey(k):
		return "may only contain A-Z, a-z, 0-9 and _"
	case protocol.ReservedConfigKey(k):
		return "keys starting with _ are managed by the platform"
	}
	return ""
}

// canonicalValue checks raw against typ and returns its canonical JSON: compact, object keys
// sorted, numbers as written (integers) or in shortest form (floats), no HTML escaping. The
// canonical form is what is stored, hashed and sent, so equal values compare equal. It
// refuses what the device could not store as given instead of changing it.
func canonicalValue(typ store.ConfigType, raw json.RawMessage) (json.RawMessage, string) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, "is required"
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, "is not valid JSON"
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "is not a single JSON value"
	}
	switch typ {
	case store.TypeString:
		s, ok := v.(string)
		if !ok {
			return nil, "must be a string"
		}
		if len(s) > protocol.MaxConfigValueLength {
			return nil, fmt.Sprintf("longer than %d bytes (the NVS string limit)", protocol.MaxConfigValueLength)
		}
		if strings.IndexByte(s, 0) >= 0 {
			return nil, "must not contain NUL characters (NVS stores C strings)"
		}
	case store.TypeInt:
		n, ok := v.(json.Number)
		if !ok {
			return nil, "must be an integer"
		}
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil {
			return nil, "must be an integer written without fraction or exponent"
		}
		if i > protocol.MaxSafeInteger || i < -protocol.MaxSafeInteger {
			return nil, fmt.Sprintf("must be within ±%d", int64(protocol.MaxSafeInteger))
		}
		return json.RawMessage(strconv.FormatInt(i, 10)), ""
	case store.TypeFloat:
		n, ok := v.(json.Number)
		if !ok {
			return nil, "must be a number"
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, "must be a finite number"
		}
		return json.RawMessage(strconv.FormatFloat(f, 'g', -1, 64)), ""
	case store.TypeBool:
		if _, ok := v.(bool); !ok {
			return nil, "must be true or false"
		}
	case store.TypeJSON:
	default:
		return nil, "unknown type"
	}
	out, err := encodeCanonical(v)
	if err != nil {
		return nil, "is not encodable"
	}
	if typ == store.TypeJSON && len(out) > protocol.MaxConfigValueLength {
		return nil, fmt.Sprintf("longer than %d bytes in compact form", protocol.MaxConfigValueLength)
	}
	return out, ""
}

// encodeCanonical marshals a value decoded with UseNumber: maps come out with sorted keys.
func encodeCanonical(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return json.RawMessage(bytes.TrimRight(b.Bytes(), "\n")), nil
}

// sealedSecretLength is the length of the `value` string of a secret whose JSON encoding has
// n bytes: base64 of nonce, ciphertext and tag.
func sealedSecretLength(n int) int {
	return base64.StdEncoding.EncodedLen(protocol.SecretNonceSize + n + 16)
}

// checkInput validates one input and returns its canonical value, or field errors under
// prefix (e.g. "entries[0].").
func checkInput(in Input, prefix string, fields map[string]string) json.RawMessage {
	if r := checkKey(in.Key); r != "" {
		fields[prefix+"key"] = r
	}
	valid := false
	for _, t := range Types() {
		valid = valid || in.Type == t
	}
	if !valid {
		fields[prefix+"type"] = "must be one of string, int, float, bool, json"
		return nil
	}
	if in.Version < 0 {
		fields[prefix+"version"] = "must be 0 (new key) or the entry's current version"
	}
	v, reason := canonicalValue(in.Type, in.Value)
	if reason != "" {
		fields[prefix+"value"] = reason
		return nil
	}
	if in.Secret && sealedSecretLength(len(v)) > protocol.MaxSecretValueLength {
		fields[prefix+"value"] = fmt.Sprintf("too long for a secret once encrypted (at most %d characters of base64)", protocol.MaxSecretValueLength)
		return nil
	}
	return v
}
