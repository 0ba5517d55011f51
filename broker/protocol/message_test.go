package protocol

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testCommand = "01hzx4a0b1c2d3e4f5g6h7j8k9"

func TestWillPayloadIsEncodeStatusOffline(t *testing.T) {
	t.Parallel()
	got, err := EncodeStatus(Status{})
	if err != nil || string(got) != WillPayload {
		t.Fatalf("EncodeStatus(offline) = %s, %v; want %s", got, err, WillPayload)
	}
}

func TestEncodeRefusesWhatDecodeRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		msg   any
		class string
		field string
	}{
		{"ack without id", Ack{Result: ResultOK}, "invalid_field", "id"},
		{"ack with bad result", Ack{ID: testCommand, Result: "yes"}, "invalid_field", "result"},
		{"ota failed without reason", OTAProgress{ID: testCommand, Version: "v-1.0.0", State: OTAFailed}, "invalid_field", "reason"},
		{"metadata empty", Metadata{}, "invalid_field", "firmware_version"},
		{"log without lines", LogBatch{}, "invalid_field", "lines"},
		{"error with bad pc", ErrorReport{Message: "m", Type: "t", FirmwareVersion: "f", Backtrace: []Frame{{PC: "1"}}}, "invalid_field", "backtrace[0].pc"},
		{"ack too large", Ack{ID: testCommand, Result: ResultOK, Data: json.RawMessage(`{"x":"` + strings.Repeat("a", MaxAckSize) + `"}`)}, "too_large", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := EncodeUplink(c.msg)
			if Class(err) != c.class || Field(err) != c.field {
				t.Fatalf("EncodeUplink error %v (class %q field %q), want %q %q", err, Class(err), Field(err), c.class, c.field)
			}
		})
	}
	if _, _, err := EncodeUplink(Command{}); err == nil {
		t.Error("EncodeUplink accepted a command")
	}
}

func TestEncodeCommand(t *testing.T) {
	t.Parallel()
	base := Command{ID: testCommand, ExpiresAt: 1767225600000}

	restart := base
	restart.Name = CommandRestart
	data, err := EncodeCommand(restart)
	if err != nil || string(data) != `{"v":1,"id":"`+testCommand+`","name":"restart","expires_at":1767225600000,"params":{}}` {
		t.Fatalf("restart = %s, %v", data, err)
	}

	mismatch := base
	mismatch.Name = CommandRestart
	mismatch.Debug = &DebugParams{Enabled: true}
	if _, err := EncodeCommand(mismatch); Field(err) != "params" {
		t.Errorf("mismatched params: %v", err)
	}

	two := base
	two.Name = CommandDebug
	two.Debug = &DebugParams{Enabled: true}
	two.Restart = &RestartParams{}
	if _, err := EncodeCommand(two); Field(err) != "params" {
		t.Errorf("two params: %v", err)
	}

	noParams := base
	noParams.Name = CommandUpdate
	if _, err := EncodeCommand(noParams); Field(err) != "params.version" {
		t.Errorf("update without params: %v", err)
	}

	unknown := base
	unknown.Name = "reboot"
	if _, err := EncodeCommand(unknown); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("unknown name: %v", err)
	}

	// A config too big for the device's buffer is refused at encode time, where the config
	// service can still turn it into a field error for the user.
	big := base
	big.Name = CommandConfig
	big.Config = &ConfigParams{Version: 1, Hash: strings.Repeat("a", 64)}
	for i := range 5 {
		v, _ := json.Marshal(strings.Repeat("c", MaxConfigValueLength))
		big.Config.Entries = append(big.Config.Entries, ConfigEntry{Key: "k" + string(rune('a'+i)), Type: TypeString, Value: v})
	}
	if _, err := EncodeCommand(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized config: %v", err)
	}

	// Nil entries encode as an empty list, never null.
	empty := base
	empty.Name = CommandConfig
	empty.Config = &ConfigParams{Version: 3, Hash: strings.Repeat("b", 64)}
	data, err = EncodeCommand(empty)
	if err != nil || !strings.Contains(string(data), `"entries":[]`) {
		t.Errorf("empty config = %s, %v", data, err)
	}

	// Signed update round trip: sign, encode, decode, verify.
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	upd := base
	upd.Name = CommandUpdate
	p := SignUpdate(priv, UpdateParams{Version: "v-2.0.0", Size: 1000, SHA256: strings.Repeat("0", 64),
		URL: "https://x.example/a.bin?a=1&b=2", URLExpiresAt: 1767225600000})
	upd.Update = &p
	data, err = EncodeCommand(upd)
	if err != nil || !strings.Contains(string(data), "a=1&b=2") {
		t.Fatalf("update = %s, %v", data, err)
	}
	got, err := DecodeCommand(data)
	if err != nil || got.Update == nil {
		t.Fatalf("decode update: %+v %v", got, err)
	}
	if err := VerifyUpdate(priv.Public().(ed25519.PublicKey), *got.Update); err != nil {
		t.Errorf("verify after round trip: %v", err)
	}
}

func TestParseReleaseVersion(t *testing.T) {
	t.Parallel()
	good := map[string]ReleaseVersion{"v-0.0.0": {}, "v-1.4.0": {1, 4, 0}, "v-10.20.300": {10, 20, 300}, "v-999999999.0.1": {999999999, 0, 1}}
	for s, want := range good {
		got, err := ParseReleaseVersion(s)
		if err != nil || got != want || got.String() != s {
			t.Errorf("ParseReleaseVersion(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "1.4.0", "v1.4.0", "v-1.4", "v-1.4.0.1", "v-01.4.0", "v-1.4.0-rc1", "v-1.4.x", "v-+1.4.0", "v-1000000000.0.0", " v-1.4.0", "V-1.4.0"} {
		if ValidReleaseVersion(s) {
			t.Errorf("ValidReleaseVersion(%q) = true", s)
		}
	}
	order := []string{"v-0.0.1", "v-0.1.0", "v-0.10.0", "v-1.0.0", "v-1.2.9", "v-1.10.0", "v-2.0.0"}
	for i := 1; i < len(order); i++ {
		a, _ := ParseReleaseVersion(order[i-1])
		b, _ := ParseReleaseVersion(order[i])
		if a.Compare(b) != -1 || b.Compare(a) != 1 || a.Compare(a) != 0 {
			t.Errorf("order of %s and %s", order[i-1], order[i])
		}
	}
}

func TestClassAndField(t *testing.T) {
	t.Parallel()
	if Class(nil) != "" || Class(errors.New("x")) != "other" {
		t.Error("Class of nil or foreign error")
	}
	_, err := DecodeAck([]byte(`{"v":1,"id":"x","result":"maybe"}`))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "result" || !errors.Is(err, ErrInvalidField) {
		t.Errorf("DecodeAck error %v", err)
	}
	if _, err := DecodeUplink("telemetry", []byte(`{}`)); Class(err) != "unknown_kind" {
		t.Errorf("DecodeUplink unknown kind: %v", err)
	}
}

func TestSecretErrors(t *testing.T) {
	t.Parallel()
	key := make([]byte, SecretKeySize)
	if _, err := SealSecret(key[:16], testDevice, "k", 1, []byte("1"), nil); err == nil {
		t.Error("short key accepted")
	}
	if _, err := SealSecret(key, testDevice, "k", 1, []byte("1"), make([]byte, 8)); err == nil {
		t.Error("short nonce accepted")
	}
	sealed, err := SealSecret(key, testDevice, "k", 1, []byte(`"v"`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := OpenSecret(key, testDevice, "k", 1, sealed); err != nil || string(pt) != `"v"` {
		t.Errorf("random-nonce round trip: %q %v", pt, err)
	}
	if _, err := OpenSecret(key, testDevice, "k", 1, "not base64!"); !errors.Is(err, ErrSecret) {
		t.Errorf("garbage: %v", err)
	}
}

// decodeAnyPayload runs every decoder on data; the fuzz targets use it.
func decodeAnyPayload(t *testing.T, data []byte) {
	for _, kind := range UplinkKinds() {
		msg, err := DecodeUplink(kind, data)
		if err != nil {
			if Class(err) == "other" {
				t.Fatalf("%s: unclassified error %v", kind, err)
			}
			continue
		}
		_, again, err := EncodeUplink(msg)
		if err != nil {
			t.Fatalf("%s: decoded %+v but cannot encode it: %v", kind, msg, err)
		}
		if _, err := DecodeUplink(kind, again); err != nil {
			t.Fatalf("%s: re-encoded %s does not decode: %v", kind, again, err)
		}
	}
}

func FuzzDecodeUplink(f *testing.F) {
	addVectorSeeds(f, false)
	f.Fuzz(func(t *testing.T, data []byte) { decodeAnyPayload(t, data) })
}

func FuzzDecodeCommand(f *testing.F) {
	addVectorSeeds(f, true)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		if err != nil {
			if Class(err) == "other" {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		again, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", c, err)
		}
		if _, err := DecodeCommand(again); err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", again, err)
		}
		if PeekCommandID(data) != c.ID {
			t.Fatalf("PeekCommandID disagrees with DecodeCommand on %q", c.ID)
		}
	})
}

// addVectorSeeds seeds a fuzz target with every payload of the shared vectors.
func addVectorSeeds(f *testing.F, commands bool) {
	f.Helper()
	files := []string{"status.json", "metadata.json", "ack.json", "ota.json", "log.json", "error.json", "config_req.json"}
	if commands {
		files = []string{"command.json"}
	}
	for _, file := range files {
		data, err := os.ReadFile(filepath.Join(vectorDir, file))
		if err != nil {
			f.Fatal(err)
		}
		var doc struct {
			Cases []messageCase `json:"cases"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			f.Fatalf("%s: %v", file, err)
		}
		for _, c := range doc.Cases {
			if c.Payload != nil {
				f.Add([]byte(*c.Payload))
			}
		}
	}
}
