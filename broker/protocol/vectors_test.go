package protocol

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// The vectors in testdata/vectors are the contract between this package and the firmware's C
// tests, which load the same files. They are data, not generated from this package: when a
// test here fails, fix the code, or change the vector and docs/protocol.md together on purpose.
const vectorDir = "testdata/vectors"

// messageCase is one case of a message vector file.
type messageCase struct {
	Name          string          `json:"name"`
	Topic         string          `json:"topic"`
	Payload       *string         `json:"payload"`
	PayloadBase64 string          `json:"payload_base64"`
	Valid         bool            `json:"valid"`
	Error         string          `json:"error"`
	Field         string          `json:"field"`
	Decoded       json.RawMessage `json:"decoded"`
	PeekID        *string         `json:"peek_id"`
}

func (c messageCase) bytes(t *testing.T) []byte {
	t.Helper()
	if c.Payload != nil {
		return []byte(*c.Payload)
	}
	b, err := base64.StdEncoding.DecodeString(c.PayloadBase64)
	if err != nil {
		t.Fatalf("payload_base64: %v", err)
	}
	return b
}

func loadVectors[T any](t *testing.T, file string) []T {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorDir, file))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []T `json:"cases"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		// Files with top-level extras (keys, seeds) are read by their own tests.
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	if len(doc.Cases) == 0 {
		t.Fatalf("%s: no cases", file)
	}
	return doc.Cases
}

// decodeTopic decodes a payload the way the broker and the firmware would: by the kind in
// its topic.
func decodeTopic(t *testing.T, topic string, payload []byte) (any, error) {
	t.Helper()
	_, dir, kind, err := ParseTopic(DefaultRoot, topic)
	if err != nil {
		t.Fatalf("vector topic %q: %v", topic, err)
	}
	if dir == Down {
		return DecodeCommand(payload)
	}
	return DecodeUplink(kind, payload)
}

func encodeAny(msg any) ([]byte, error) {
	if c, ok := msg.(Command); ok {
		return EncodeCommand(c)
	}
	_, data, err := EncodeUplink(msg)
	return data, err
}

func TestMessageVectors(t *testing.T) {
	t.Parallel()
	files := []string{"status.json", "metadata.json", "ack.json", "ota.json", "log.json", "error.json", "config_req.json", "command.json"}
	seen := map[string]bool{}
	for _, file := range files {
		for _, c := range loadVectors[messageCase](t, file) {
			if _, _, kind, err := ParseTopic(DefaultRoot, c.Topic); err == nil && c.Valid {
				seen[kind] = true
			}
			t.Run(file+"/"+c.Name, func(t *testing.T) {
				t.Parallel()
				payload := c.bytes(t)
				msg, err := decodeTopic(t, c.Topic, payload)
				if c.PeekID != nil {
					if got := PeekCommandID(payload); got != *c.PeekID {
						t.Errorf("PeekCommandID = %q, want %q", got, *c.PeekID)
					}
				}
				if !c.Valid {
					if err == nil {
						t.Fatalf("decoded %+v, want error %s", msg, c.Error)
					}
					if got := Class(err); got != c.Error {
						t.Fatalf("error class %q (%v), want %q", got, err, c.Error)
					}
					if got := Field(err); got != c.Field {
						t.Fatalf("error field %q (%v), want %q", got, err, c.Field)
					}
					return
				}
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				encoded, err := encodeAny(msg)
				if err != nil {
					t.Fatalf("encode the decoded message: %v", err)
				}
				assertJSONEqual(t, encoded, c.Decoded)
				// The expected form is itself a valid payload that decodes to the same message.
				again, err := decodeTopic(t, c.Topic, compact(c.Decoded))
				if err != nil {
					t.Fatalf("decode the expected form: %v", err)
				}
				if !reflect.DeepEqual(normalise(t, again), normalise(t, msg)) {
					t.Errorf("expected form decodes to %+v, payload to %+v", again, msg)
				}
			})
		}
	}
	for _, k := range append(UplinkKinds(), KindCommand) {
		if !seen[k] {
			t.Errorf("no valid vector for kind %q", k)
		}
	}
}

// normalise turns a decoded message into comparable JSON values (RawMessage fields differ in
// white space only before compaction).
func normalise(t *testing.T, msg any) any {
	t.Helper()
	data, err := encodeAny(msg)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func assertJSONEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want invalid JSON %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestTopicVectors(t *testing.T) {
	t.Parallel()
	type topicCase struct {
		Name   string `json:"name"`
		Root   string `json:"root"`
		Topic  string `json:"topic"`
		Valid  bool   `json:"valid"`
		Device string `json:"device"`
		Dir    string `json:"dir"`
		Kind   string `json:"kind"`
		Error  string `json:"error"`
	}
	for _, c := range loadVectors[topicCase](t, "topic.json") {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			id, dir, kind, err := ParseTopic(c.Root, c.Topic)
			if got := Class(err); got != c.Error {
				t.Fatalf("ParseTopic(%q) error %v (class %q), want %q", c.Topic, err, got, c.Error)
			}
			if c.Valid && (id != c.Device || string(dir) != c.Dir || kind != c.Kind) {
				t.Errorf("ParseTopic(%q) = %q %q %q, want %q %q %q", c.Topic, id, dir, kind, c.Device, c.Dir, c.Kind)
			}
			if c.Valid {
				var built string
				if dir == Down {
					built = DownlinkCommand(c.Root, id)
				} else {
					built = Uplink(c.Root, id, kind)
				}
				if built != c.Topic {
					t.Errorf("rebuilt %q, want %q", built, c.Topic)
				}
			}
		})
	}
}

func TestACLVectors(t *testing.T) {
	t.Parallel()
	type aclCase struct {
		Name    string `json:"name"`
		Root    string `json:"root"`
		Device  string `json:"device"`
		Action  string `json:"action"`
		Topic   string `json:"topic"`
		Retain  bool   `json:"retain"`
		Payload string `json:"payload"`
		Allowed bool   `json:"allowed"`
	}
	actions := map[string]bool{}
	for _, c := range loadVectors[aclCase](t, "acl.json") {
		actions[c.Action] = true
		t.Run(c.Action+"/"+c.Name, func(t *testing.T) {
			t.Parallel()
			var got bool
			switch c.Action {
			case "subscribe":
				got = DeviceMaySubscribe(c.Root, c.Device, c.Topic)
			case "publish":
				got = DeviceMayPublish(c.Root, c.Device, c.Topic, c.Retain)
			case "receive":
				got = DeviceMayReceive(c.Root, c.Device, c.Topic)
			case "will":
				got = DeviceMaySetWill(c.Root, c.Device, c.Topic, []byte(c.Payload))
			default:
				t.Fatalf("unknown action %q", c.Action)
			}
			if got != c.Allowed {
				t.Errorf("%s %q (retain %v) by %q: allowed %v, want %v", c.Action, c.Topic, c.Retain, c.Device, got, c.Allowed)
			}
		})
	}
	for _, a := range []string{"subscribe", "publish", "receive", "will"} {
		if !actions[a] {
			t.Errorf("no ACL vector for %q", a)
		}
	}
}

func TestOTASignatureVectors(t *testing.T) {
	t.Parallel()
	var doc struct {
		SeedHex      string `json:"seed_hex"`
		PublicKeyHex string `json:"public_key_hex"`
		Cases        []struct {
			Name         string       `json:"name"`
			Params       UpdateParams `json:"params"`
			Canonical    string       `json:"canonical"`
			CanonicalHex string       `json:"canonical_hex"`
			Signature    string       `json:"signature"`
			Valid        bool         `json:"valid"`
		} `json:"cases"`
	}
	readJSON(t, "ota_signature.json", &doc)
	seed, _ := hex.DecodeString(doc.SeedHex)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	if hex.EncodeToString(pub) != doc.PublicKeyHex {
		t.Fatalf("public key %x, want %s", pub, doc.PublicKeyHex)
	}
	for _, c := range doc.Cases {
		t.Run(c.Name, func(t *testing.T) {
			if got := string(OTASigningString(c.Params)); got != c.Canonical {
				t.Errorf("canonical string\n got %q\nwant %q", got, c.Canonical)
			}
			if c.CanonicalHex != "" && hex.EncodeToString([]byte(c.Canonical)) != c.CanonicalHex {
				t.Errorf("canonical_hex does not match canonical")
			}
			p := c.Params
			p.Signature = c.Signature
			if err := VerifyUpdate(pub, p); (err == nil) != c.Valid {
				t.Errorf("VerifyUpdate = %v, want valid %v", err, c.Valid)
			}
			if c.Valid {
				if got := SignUpdate(priv, c.Params).Signature; got != c.Signature {
					t.Errorf("SignUpdate = %s, want %s", got, c.Signature)
				}
			}
		})
	}
}

func TestConfigSecretVectors(t *testing.T) {
	t.Parallel()
	var doc struct {
		DeviceKeyHex string `json:"device_key_hex"`
		Cases        []struct {
			Name           string `json:"name"`
			DeviceID       string `json:"device_id"`
			Key            string `json:"key"`
			Version        int64  `json:"version"`
			NonceHex       string `json:"nonce_hex"`
			Plaintext      string `json:"plaintext"`
			AssociatedData string `json:"associated_data"`
			Sealed         string `json:"sealed"`
			Valid          bool   `json:"valid"`
		} `json:"cases"`
	}
	readJSON(t, "config_secret.json", &doc)
	key, _ := hex.DecodeString(doc.DeviceKeyHex)
	for _, c := range doc.Cases {
		t.Run(c.Name, func(t *testing.T) {
			pt, err := OpenSecret(key, c.DeviceID, c.Key, c.Version, c.Sealed)
			if !c.Valid {
				if err == nil {
					t.Fatalf("opened %q, want an error", pt)
				}
				return
			}
			if err != nil || string(pt) != c.Plaintext {
				t.Fatalf("OpenSecret = %q, %v; want %q", pt, err, c.Plaintext)
			}
			if got := string(SecretAssociatedData(c.DeviceID, c.Key, c.Version)); got != c.AssociatedData {
				t.Errorf("associated data %q, want %q", got, c.AssociatedData)
			}
			nonce, _ := hex.DecodeString(c.NonceHex)
			sealed, err := SealSecret(key, c.DeviceID, c.Key, c.Version, []byte(c.Plaintext), nonce)
			if err != nil || sealed != c.Sealed {
				t.Errorf("SealSecret = %s, %v; want %s", sealed, err, c.Sealed)
			}
		})
	}
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorDir, file))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// TestEveryVectorFileIsTested keeps new vector files from being silently ignored.
func TestEveryVectorFileIsTested(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir(vectorDir)
	if err != nil {
		t.Fatal(err)
	}
	known := []string{"status.json", "metadata.json", "ack.json", "ota.json", "log.json", "error.json",
		"config_req.json", "command.json", "topic.json", "acl.json", "ota_signature.json", "config_secret.json"}
	for _, e := range entries {
		if !slices.Contains(known, e.Name()) {
			t.Errorf("vector file %s is not loaded by any test", e.Name())
		}
	}
}
