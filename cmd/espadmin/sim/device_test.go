package sim

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/espadmin/espadmin/broker"
	"github.com/espadmin/espadmin/broker/brokertest"
	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// devices authenticates the test devices for the broker.
type devices map[string]string // device ID → secret

func (d devices) DeviceAuth(_ context.Context, id string) (store.DeviceAuth, error) {
	s, ok := d[id]
	if !ok {
		return store.DeviceAuth{}, store.ErrNotFound
	}
	return store.DeviceAuth{DeviceID: id, TenantID: "t", SecretHash: fleet.HashSecret(s)}, nil
}

// rig is a real embedded broker with one simulated device and a recorder of its uplink.
type rig struct {
	b      *broker.Broker
	dev    *Device
	bundle fleet.Bundle
	key    []byte

	mu  sync.Mutex
	got []messaging.Message
}

func newRig(t *testing.T, otaKey ed25519.PublicKey) *rig {
	t.Helper()
	id, secret := store.NewID(), "secret-"+store.NewID()
	b := brokertest.Start(t, brokertest.Options{Devices: devices{id: secret}})
	r := &rig{b: b, key: make([]byte, 32)}
	for i := range r.key {
		r.key[i] = byte(i)
	}
	unsub, err := b.Subscribe(t.Context(), protocol.UplinkFilter(protocol.DefaultRoot, ""), 1, func(m messaging.Message) {
		r.mu.Lock()
		r.got = append(r.got, m)
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)
	r.bundle = fleet.Bundle{V: 1, DeviceID: id, Secret: secret, DeviceKey: base64.StdEncoding.EncodeToString(r.key),
		MQTT: fleet.BundleMQTT{TopicRoot: protocol.DefaultRoot}}
	if otaKey != nil {
		r.bundle.OTAPublicKey = base64.StdEncoding.EncodeToString(otaKey)
	}
	r.dev, err = NewDevice(Options{Bundle: r.bundle, BrokerURL: "tcp://" + b.Addr("tcp"), ReconnectDelay: 50 * time.Millisecond, LogLinesPerSecond: 200})
	if err != nil {
		t.Fatal(err)
	}
	r.dev.Start(context.Background())
	t.Cleanup(r.dev.Stop)
	r.wait(t, "boot config_req", func(m messaging.Message, kind string) bool { return kind == protocol.KindConfigRequest })
	return r
}

// wait waits for an uplink message matching cond.
func (r *rig) wait(t *testing.T, what string, cond func(m messaging.Message, kind string) bool) messaging.Message {
	t.Helper()
	var found messaging.Message
	poll.Until(t, 10*time.Second, what, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range r.got {
			if _, _, kind, err := protocol.ParseTopic(protocol.DefaultRoot, m.Topic); err == nil && cond(m, kind) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

func (r *rig) command(t *testing.T, c protocol.Command) {
	t.Helper()
	if c.ExpiresAt == 0 {
		c.ExpiresAt = time.Now().Add(time.Hour).UnixMilli()
	}
	data, err := protocol.EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.b.Publish(t.Context(), messaging.Message{Topic: protocol.DownlinkCommand(protocol.DefaultRoot, r.dev.ID()), Payload: data, QoS: 1}); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) ack(t *testing.T, id string) protocol.Ack {
	t.Helper()
	m := r.wait(t, "ack "+id, func(m messaging.Message, kind string) bool {
		a, err := protocol.DecodeAck(m.Payload)
		return kind == protocol.KindAck && err == nil && a.ID == id
	})
	a, _ := protocol.DecodeAck(m.Payload)
	return a
}

func (r *rig) ota(t *testing.T, id, state string) protocol.OTAProgress {
	t.Helper()
	m := r.wait(t, "ota "+state, func(m messaging.Message, kind string) bool {
		p, err := protocol.DecodeOTAProgress(m.Payload)
		return kind == protocol.KindOTA && err == nil && p.ID == id && p.State == state
	})
	p, _ := protocol.DecodeOTAProgress(m.Payload)
	return p
}

func TestBootSequence(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	var kinds []string
	r.mu.Lock()
	for _, m := range r.got {
		_, _, kind, _ := protocol.ParseTopic(protocol.DefaultRoot, m.Topic)
		kinds = append(kinds, kind)
		if _, err := protocol.DecodeUplink(kind, m.Payload); err != nil {
			t.Errorf("%s payload invalid: %v", kind, err)
		}
	}
	r.mu.Unlock()
	if strings.Join(kinds, ",") != "status,metadata,config_req" {
		t.Errorf("boot sequence %v", kinds)
	}
	if !r.b.Online(r.dev.ID()) || !r.dev.Connected() {
		t.Error("not connected")
	}
}

func TestCommandsAndDuplicates(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	id := store.NewID()
	r.command(t, protocol.Command{ID: id, Name: protocol.CommandDebug, Debug: &protocol.DebugParams{Enabled: true, Level: "info", DurationS: 1}})
	if a := r.ack(t, id); a.Result != protocol.ResultOK {
		t.Fatalf("debug ack %+v", a)
	}
	r.wait(t, "log batch", func(m messaging.Message, kind string) bool {
		b, err := protocol.DecodeLogBatch(m.Payload)
		return kind == protocol.KindLog && err == nil && len(b.Lines) > 0
	})
	// The stream stops by itself after duration_s.
	if !r.dev.Debugging() {
		t.Error("not debugging after debug on")
	}
	poll.Wait(t, "debug stopped", func() bool { return !r.dev.Debugging() })
	lines := r.dev.Stats().LogLines

	// A repeated ID is answered from memory without running again.
	r.command(t, protocol.Command{ID: id, Name: protocol.CommandDebug, Debug: &protocol.DebugParams{Enabled: true, Level: "info", DurationS: 1}})
	poll.Wait(t, "duplicate answered", func() bool { return r.dev.Stats().Duplicates == 1 && r.dev.Stats().Acks == 2 })
	if r.dev.Debugging() || r.dev.Stats().LogLines != lines {
		t.Error("a duplicate debug command ran again")
	}

	// Expired and unknown commands are rejected with the reason.
	exp := store.NewID()
	r.command(t, protocol.Command{ID: exp, Name: protocol.CommandRestart, ExpiresAt: time.Now().Add(-time.Second).UnixMilli()})
	if a := r.ack(t, exp); a.Result != protocol.ResultRejected || a.Message != "expired" {
		t.Errorf("expired ack %+v", a)
	}
	unknown := store.NewID()
	_ = r.b.Publish(t.Context(), messaging.Message{Topic: protocol.DownlinkCommand(protocol.DefaultRoot, r.dev.ID()), QoS: 1,
		Payload: []byte(`{"v":1,"id":"` + unknown + `","name":"selfdestruct","expires_at":9999999999999}`)})
	if a := r.ack(t, unknown); a.Result != protocol.ResultRejected || a.Message != "unknown_command" {
		t.Errorf("unknown command ack %+v", a)
	}

	// restart: ack, clean reconnect, boot metadata with reset reason sw.
	rs := store.NewID()
	r.command(t, protocol.Command{ID: rs, Name: protocol.CommandRestart})
	r.ack(t, rs)
	r.wait(t, "metadata after restart", func(m messaging.Message, kind string) bool {
		md, err := protocol.DecodeMetadata(m.Payload)
		return kind == protocol.KindMetadata && err == nil && md.ResetReason == "sw"
	})
	if r.dev.Stats().Restarts != 1 {
		t.Errorf("restarts %d", r.dev.Stats().Restarts)
	}
}

func TestConfigWithSecrets(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	sealed, err := protocol.SealSecret(r.key, r.dev.ID(), "wifi_pass", 7, []byte(`"hunter2"`), nil)
	if err != nil {
		t.Fatal(err)
	}
	sealedJSON, _ := json.Marshal(sealed)
	id := store.NewID()
	r.command(t, protocol.Command{ID: id, Name: protocol.CommandConfig, Config: &protocol.ConfigParams{
		Version: 7, Hash: strings.Repeat("a", 64), Entries: []protocol.ConfigEntry{
			{Key: "interval_s", Type: "int", Value: json.RawMessage("60")},
			{Key: "wifi_pass", Type: "string", Value: sealedJSON, Secret: true},
		}}})
	a := r.ack(t, id)
	if a.Result != protocol.ResultOK || string(a.Data) != `{"config_version":7}` {
		t.Fatalf("config ack %+v", a)
	}
	if got := r.dev.Config(); string(got["wifi_pass"]) != `"hunter2"` || string(got["interval_s"]) != "60" || r.dev.ConfigVersion() != 7 {
		t.Errorf("applied config %v", got)
	}
	// A secret sealed for another version does not decrypt: error, old config kept.
	bad := store.NewID()
	r.command(t, protocol.Command{ID: bad, Name: protocol.CommandConfig, Config: &protocol.ConfigParams{
		Version: 8, Hash: strings.Repeat("b", 64), Entries: []protocol.ConfigEntry{{Key: "wifi_pass", Type: "string", Value: sealedJSON, Secret: true}}}})
	if a := r.ack(t, bad); a.Result != protocol.ResultError || r.dev.ConfigVersion() != 7 {
		t.Errorf("bad config ack %+v, version %d", a, r.dev.ConfigVersion())
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(nil)
	image := []byte(strings.Repeat("firmware image ", 5000))
	sum := sha256.Sum256(image)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(image) }))
	t.Cleanup(srv.Close)
	r := newRig(t, pub)
	params := protocol.UpdateParams{Version: "v-1.1.0", Size: int64(len(image)), SHA256: hex.EncodeToString(sum[:]), URL: srv.URL + "/fw.bin"}

	// Unsigned (the device has a key) and tampered updates are refused.
	unsigned := store.NewID()
	r.command(t, protocol.Command{ID: unsigned, Name: protocol.CommandUpdate, Update: &params})
	if a := r.ack(t, unsigned); a.Result != protocol.ResultRejected || a.Message != protocol.ReasonBadSignature {
		t.Errorf("unsigned update ack %+v", a)
	}
	// Signed, but the hash does not match the image: failure reported, version kept.
	wrong := params
	wrong.SHA256 = strings.Repeat("0", 64)
	wrong = protocol.SignUpdate(priv, wrong)
	mismatch := store.NewID()
	r.command(t, protocol.Command{ID: mismatch, Name: protocol.CommandUpdate, Update: &wrong})
	r.ack(t, mismatch)
	if p := r.ota(t, mismatch, protocol.OTAFailed); p.Reason != protocol.ReasonHashMismatch || r.dev.Firmware() != DefaultFirmware {
		t.Errorf("hash mismatch: %+v, firmware %s", p, r.dev.Firmware())
	}
	// A good update: progress, reboot, new version in metadata, then succeeded.
	good := protocol.SignUpdate(priv, params)
	ok := store.NewID()
	r.command(t, protocol.Command{ID: ok, Name: protocol.CommandUpdate, Update: &good})
	if a := r.ack(t, ok); a.Result != protocol.ResultOK {
		t.Fatalf("update ack %+v", a)
	}
	r.ota(t, ok, protocol.OTADownloading)
	r.ota(t, ok, protocol.OTARebooting)
	r.wait(t, "metadata with the new version", func(m messaging.Message, kind string) bool {
		md, err := protocol.DecodeMetadata(m.Payload)
		return kind == protocol.KindMetadata && err == nil && md.FirmwareVersion == "v-1.1.0"
	})
	r.ota(t, ok, protocol.OTASucceeded)
	again := store.NewID()
	r.command(t, protocol.Command{ID: again, Name: protocol.CommandUpdate, Update: &good})
	if a := r.ack(t, again); a.Message != protocol.ReasonAlreadyRunning {
		t.Errorf("same version again: %+v", a)
	}
}

// TestStopEndsDownload: a device stopped while it downloads an update ends the request, so
// a server shutting down after its devices is not kept waiting for a download nobody reads.
func TestStopEndsDownload(t *testing.T) {
	t.Parallel()
	started, ended, quit := make(chan struct{}), make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		close(started)
		select { // the rest never comes: only the client ends this request
		case <-r.Context().Done():
			close(ended)
		case <-quit:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(quit) })
	r := newRig(t, nil)
	id := store.NewID()
	r.command(t, protocol.Command{ID: id, Name: protocol.CommandUpdate, Update: &protocol.UpdateParams{
		Version: "v-1.1.0", Size: 100000, SHA256: strings.Repeat("0", 64), URL: srv.URL + "/fw.bin"}})
	poll.Until(t, 10*time.Second, "download started", func() bool {
		select {
		case <-started:
			return true
		default:
			return false
		}
	})
	r.dev.Stop()
	poll.Until(t, 10*time.Second, "the server sees the download end", func() bool {
		select {
		case <-ended:
			return true
		default:
			return false
		}
	})
}
