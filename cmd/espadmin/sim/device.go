package sim

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
)

// Defaults of a simulated device.
const (
	DefaultFirmware   = "v-1.0.0"
	DefaultChip       = "esp32s3"
	DefaultIDFVersion = "v5.2.1"

	// rememberedCommands is how many command IDs a device remembers to answer duplicates
	// (docs/protocol.md §4).
	rememberedCommands = 16
	logBatchInterval   = 250 * time.Millisecond
	ackWait            = 2 * time.Second
)

// Options configure one simulated device.
type Options struct {
	Bundle fleet.Bundle
	// BrokerURL overrides the bundle's broker address, e.g. "tcp://127.0.0.1:1883".
	BrokerURL string
	// Firmware is the running version (v-x.y.z); DefaultFirmware when empty.
	Firmware string
	Logger   *slog.Logger
	// HTTPClient downloads updates; http.DefaultClient when nil.
	HTTPClient *http.Client
	// LogLinesPerSecond is how many log lines the device produces while debug is on
	// (default 20).
	LogLinesPerSecond int
	// ReconnectDelay is the pause between connection attempts (default 1 s).
	ReconnectDelay time.Duration
	// StateDir, when set, is where the device keeps its bundle (WriteBundle): a rotated
	// _mqtt_secret from a config is saved there before the config is acknowledged, as the
	// firmware commits it to NVS, so the next run connects with it.
	StateDir string
	// Profile is the firmware profile simulated: ProfileESP32 (the default) or ProfileESP8266,
	// whose agent declares small limits in its metadata and drops commands over them.
	Profile string
}

// Profiles of the simulated firmware (firmware/include/espadmin/profile.h).
const (
	ProfileESP32   = "esp32"
	ProfileESP8266 = "esp8266"
)

// ESP8266Limits are the limits the agent's small-memory profile declares.
var ESP8266Limits = protocol.DeviceLimits{CommandBytes: 4608, ConfigBytes: 4096}

// profileLimits returns the limits a profile declares; the default profile declares the
// protocol's own (as the firmware does).
func profileLimits(profile string) (protocol.DeviceLimits, error) {
	switch profile {
	case "", ProfileESP32:
		return protocol.DeviceLimits{CommandBytes: protocol.MaxCommandSize, ConfigBytes: protocol.MaxCommandSize}, nil
	case ProfileESP8266:
		return ESP8266Limits, nil
	}
	return protocol.DeviceLimits{}, fmt.Errorf("sim: unknown profile %q (want %s or %s)", profile, ProfileESP32, ProfileESP8266)
}

// Stats are counters a test or benchmark reads.
type Stats struct {
	Connects    int64 // successful CONNECTs
	Refused     int64 // failed connection attempts
	Commands    int64 // command payloads received (duplicates included)
	Duplicates  int64 // commands answered from memory
	Acks        int64 // acks published
	LogBatches  int64 // log batches published
	LogLines    int64
	Restarts    int64
	OTAFailures int64
}

// Device is one simulated ESP32. Its methods are safe for concurrent use.
type Device struct {
	o    Options
	id   string
	root string
	key  []byte
	otaK ed25519.PublicKey
	log  *slog.Logger

	mu            sync.Mutex
	secret        string
	firmware      string
	configVersion int64
	configHash    string
	config        map[string]json.RawMessage
	bootAt        time.Time
	resetReason   string
	recent        []rememberedAck
	pendingOTA    *protocol.OTAProgress // reported after the reboot into the new image, like NVS
	debugStop     chan struct{}
	otaBusy       bool
	conn          mqtt.Client
	raw           net.Conn
	connected     bool

	stats struct {
		connects, refused, commands, duplicates, acks, logBatches, logLines, restarts, otaFailures atomic.Int64
	}
	logSeq atomic.Int64

	reboot chan struct{}
	lost   chan struct{}
	cmds   chan []byte
	stop   context.CancelFunc
	done   chan struct{}
	// life ends when the device stops; downloads run under it, and Stop waits for them, so a
	// stopped device leaves no request behind on the server.
	life      context.Context
	downloads sync.WaitGroup
}

type rememberedAck struct {
	id  string
	ack protocol.Ack
}

// NewDevice checks the bundle and returns a device that is not connected yet.
func NewDevice(o Options) (*Device, error) {
	b := o.Bundle
	if !protocol.ValidDeviceID(b.DeviceID) {
		return nil, fmt.Errorf("sim: bundle has an invalid device_id %q", b.DeviceID)
	}
	key, err := base64.StdEncoding.DecodeString(b.DeviceKey)
	if err != nil || len(key) != protocol.SecretKeySize {
		return nil, fmt.Errorf("sim: device %s: device_key is not base64 of %d bytes", b.DeviceID, protocol.SecretKeySize)
	}
	var otaKey ed25519.PublicKey
	if b.OTAPublicKey != "" {
		k, err := base64.StdEncoding.DecodeString(b.OTAPublicKey)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("sim: device %s: ota_public_key is not an Ed25519 public key", b.DeviceID)
		}
		otaKey = k
	}
	if _, err := profileLimits(o.Profile); err != nil {
		return nil, err
	}
	root := b.MQTT.TopicRoot
	if root == "" {
		root = protocol.DefaultRoot
	}
	if o.Firmware == "" {
		o.Firmware = DefaultFirmware
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.LogLinesPerSecond <= 0 {
		o.LogLinesPerSecond = 20
	}
	if o.ReconnectDelay <= 0 {
		o.ReconnectDelay = time.Second
	}
	if o.BrokerURL == "" {
		scheme := "tcp"
		if b.MQTT.TLS {
			scheme = "ssl"
		}
		o.BrokerURL = scheme + "://" + net.JoinHostPort(b.MQTT.Host, strconv.Itoa(b.MQTT.Port))
	}
	return &Device{
		o: o, id: b.DeviceID, root: root, key: key, otaK: otaKey,
		log:    o.Logger.With("device_id", b.DeviceID),
		secret: b.Secret, firmware: o.Firmware, resetReason: "poweron",
		config: map[string]json.RawMessage{},
		reboot: make(chan struct{}, 1), lost: make(chan struct{}, 1), cmds: make(chan []byte, 64),
	}, nil
}

// ID is the device ID.
func (d *Device) ID() string { return d.id }

// Start runs the device until Stop: it connects, boots, handles commands and reconnects
// after every lost connection, like the firmware's MQTT task.
func (d *Device) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	d.stop = cancel
	d.life = ctx
	d.done = make(chan struct{})
	go func() {
		defer close(d.done)
		d.run(ctx)
	}()
}

// Stop disconnects cleanly (no last will) and waits for the device to end.
func (d *Device) Stop() {
	if d.stop == nil {
		return
	}
	d.stop()
	<-d.done
	d.downloads.Wait()
}

// Kill drops the TCP connection without DISCONNECT, as a power loss does: the broker then
// publishes the device's last will. The device reconnects after ReconnectDelay unless it is
// stopped.
func (d *Device) Kill() {
	d.mu.Lock()
	raw := d.raw
	d.mu.Unlock()
	if raw != nil {
		_ = raw.Close()
	}
	// The MQTT client does not always notice a socket closed under it; the device's own
	// loop does, like the firmware's network event handler.
	select {
	case d.lost <- struct{}{}:
	default:
	}
}

// SetSecret replaces the MQTT password (after a credential rotation).
func (d *Device) SetSecret(secret string) {
	d.mu.Lock()
	d.secret = secret
	d.mu.Unlock()
}

// Connected reports whether the device holds a live MQTT connection.
func (d *Device) Connected() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.connected
}

// Firmware is the running firmware version.
func (d *Device) Firmware() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.firmware
}

// ConfigVersion is the config version the device applied, and Config the applied values
// (secrets decrypted), as the JSON encoding of each value.
func (d *Device) ConfigVersion() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.configVersion
}

// Config returns a copy of the applied config.
func (d *Device) Config() map[string]json.RawMessage {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]json.RawMessage, len(d.config))
	for k, v := range d.config {
		out[k] = v
	}
	return out
}

// Debugging reports whether the device streams log lines (debug on and not timed out).
func (d *Device) Debugging() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.debugStop != nil
}

// Stats returns the device's counters.
func (d *Device) Stats() Stats {
	s := &d.stats
	return Stats{
		Connects: s.connects.Load(), Refused: s.refused.Load(), Commands: s.commands.Load(),
		Duplicates: s.duplicates.Load(), Acks: s.acks.Load(), LogBatches: s.logBatches.Load(),
		LogLines: s.logLines.Load(), Restarts: s.restarts.Load(), OTAFailures: s.otaFailures.Load(),
	}
}

// PublishRaw publishes payload on the device's own uplink kind as it is, for tests of
// malformed input. It fails when the device is not connected.
func (d *Device) PublishRaw(kind string, payload []byte) error {
	c := d.client()
	if c == nil {
		return errors.New("sim: not connected")
	}
	return wait(c.Publish(protocol.Uplink(d.root, d.id, kind), 1, false, payload))
}

func (d *Device) client() mqtt.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.connected {
		return nil
	}
	return d.conn
}

func wait(t mqtt.Token) error {
	if !t.WaitTimeout(10 * time.Second) {
		return errors.New("sim: MQTT operation timed out")
	}
	return t.Error()
}

// run is the device's main loop: one iteration per connection.
func (d *Device) run(ctx context.Context) {
	defer d.stopDebug()
	for ctx.Err() == nil {
		c, err := d.connect()
		if err != nil {
			d.stats.refused.Add(1)
			d.log.Debug("connect refused", "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(d.o.ReconnectDelay):
			}
			continue
		}
		d.stats.connects.Add(1)
		if err := d.boot(c); err != nil {
			d.log.Debug("boot", "error", err)
		}
		rebooting := d.serve(ctx, c)
		d.mu.Lock()
		d.connected = false
		d.mu.Unlock()
		if rebooting || ctx.Err() != nil {
			c.Disconnect(250) // clean: the broker discards the will
		} else {
			go c.Disconnect(0) // release the lost client's workers; its socket is gone
		}
		if rebooting {
			d.stats.restarts.Add(1)
			d.stopDebug()
			d.mu.Lock()
			d.bootAt = time.Now()
			d.resetReason = "sw"
			d.mu.Unlock()
			continue
		}
		if ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(d.o.ReconnectDelay):
			}
		}
	}
}

// connect opens one MQTT connection with the offline status as last will (retained, QoS 1).
func (d *Device) connect() (mqtt.Client, error) {
	d.mu.Lock()
	secret := d.secret
	if d.bootAt.IsZero() {
		d.bootAt = time.Now()
	}
	d.mu.Unlock()
	drain(d.lost)
	opts := mqtt.NewClientOptions().
		AddBroker(d.o.BrokerURL).
		SetClientID(d.id).SetUsername(d.id).SetPassword(secret).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(30*time.Second).
		SetConnectTimeout(10*time.Second).
		SetOrderMatters(false).
		SetWill(protocol.Uplink(d.root, d.id, protocol.KindStatus), protocol.WillPayload, 1, true).
		SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) {}).
		SetConnectionLostHandler(func(mqtt.Client, error) {
			select {
			case d.lost <- struct{}{}:
			default:
			}
		}).
		SetCustomOpenConnectionFn(d.dial)
	c := mqtt.NewClient(opts)
	if err := wait(c.Connect()); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conn, d.connected = c, true
	d.mu.Unlock()
	return c, nil
}

// dial opens the socket itself so Kill can drop it without a DISCONNECT.
func (d *Device) dial(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
	var conn net.Conn
	var err error
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	switch u.Scheme {
	case "ssl", "tls", "mqtts":
		cfg := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		if pem := d.o.Bundle.MQTT.CAPEM; pem != "" {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(pem)) {
				return nil, errors.New("sim: ca_pem holds no certificate")
			}
			cfg.RootCAs = pool
		}
		conn, err = tls.DialWithDialer(dialer, "tcp", u.Host, cfg)
	default:
		conn, err = dialer.Dial("tcp", u.Host)
	}
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.raw = conn
	d.mu.Unlock()
	return conn, nil
}

// boot is the boot sequence of docs/protocol.md §8: subscribe, online, metadata, config
// request, then an OTA outcome still to report.
func (d *Device) boot(c mqtt.Client) error {
	err := wait(c.Subscribe(protocol.DownlinkFilter(d.root, d.id), 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case d.cmds <- append([]byte(nil), m.Payload()...):
		default: // like a full esp-mqtt event queue: the server redelivers on reconnect
		}
	}))
	if err != nil {
		return err
	}
	if err := d.publish(c, protocol.Status{Online: true}, true); err != nil {
		return err
	}
	if err := d.publish(c, d.metadata(), false); err != nil {
		return err
	}
	d.mu.Lock()
	req := protocol.ConfigRequest{ConfigVersion: d.configVersion, Hash: d.configHash}
	ota := d.pendingOTA
	d.pendingOTA = nil
	d.mu.Unlock()
	if err := d.publish(c, req, false); err != nil {
		return err
	}
	if ota != nil {
		return d.publish(c, *ota, false)
	}
	return nil
}

func (d *Device) metadata() protocol.Metadata {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := fnv.New32a()
	_, _ = h.Write([]byte(d.id))
	n := h.Sum32()
	limits, _ := profileLimits(d.o.Profile)
	chip, idf, heap := DefaultChip, DefaultIDFVersion, int64(180000)
	if d.o.Profile == ProfileESP8266 {
		chip, idf, heap = "esp8266", "v3.4", 38000
	}
	return protocol.Metadata{
		Limits:          &limits,
		FirmwareVersion: d.firmware,
		Project:         "sim",
		ChipModel:       chip,
		ChipRevision:    2,
		IDFVersion:      idf,
		MAC:             fmt.Sprintf("24:0a:c4:%02x:%02x:%02x", byte(n>>16), byte(n>>8), byte(n)),
		IP:              fmt.Sprintf("10.%d.%d.%d", byte(n>>16), byte(n>>8), byte(n)|1),
		RSSI:            -40 - int(n%50),
		FreeHeap:        heap,
		MinFreeHeap:     heap * 2 / 3,
		UptimeMS:        time.Since(d.bootAt).Milliseconds(),
		ResetReason:     d.resetReason,
		ConfigVersion:   d.configVersion,
		ProtocolVersion: protocol.Version,
	}
}

func (d *Device) publish(c mqtt.Client, msg any, retain bool) error {
	kind, data, err := protocol.EncodeUplink(msg)
	if err != nil {
		return err
	}
	qos := byte(1)
	if kind == protocol.KindLog {
		qos = 0
	}
	return wait(c.Publish(protocol.Uplink(d.root, d.id, kind), qos, retain, data))
}

// serve handles commands until the connection is lost, ctx ends (false) or a reboot is due
// (true).
func (d *Device) serve(ctx context.Context, c mqtt.Client) (reboot bool) {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-d.lost:
			return false
		case <-d.reboot:
			return true
		case payload := <-d.cmds:
			d.handle(c, payload)
		}
	}
}

// handle carries out one command and acknowledges it (docs/protocol.md §4).
func (d *Device) handle(c mqtt.Client, payload []byte) {
	d.stats.commands.Add(1)
	if limits, _ := profileLimits(d.o.Profile); len(payload) > int(limits.CommandBytes) {
		// the firmware's inbox drops a message over its limit before reading it
		d.log.Warn("command over the device's limit dropped", "bytes", len(payload))
		return
	}
	cmd, err := protocol.DecodeCommand(payload)
	if err != nil {
		if id := protocol.PeekCommandID(payload); id != "" {
			d.ack(c, protocol.Ack{ID: id, Result: protocol.ResultRejected, Message: rejectMessage(err)})
		}
		return
	}
	if prev, ok := d.remembered(cmd.ID); ok {
		d.stats.duplicates.Add(1)
		d.send(c, prev)
		return
	}
	if cmd.Expired(time.Now()) {
		d.ack(c, protocol.Ack{ID: cmd.ID, Result: protocol.ResultRejected, Message: protocol.ReasonExpired})
		return
	}
	switch cmd.Name {
	case protocol.CommandRestart:
		d.ack(c, protocol.Ack{ID: cmd.ID, Result: protocol.ResultOK})
		d.requestReboot()
	case protocol.CommandDebug:
		d.debug(c, *cmd.Debug)
		d.ack(c, protocol.Ack{ID: cmd.ID, Result: protocol.ResultOK})
	case protocol.CommandConfig:
		d.ack(c, d.applyConfig(*cmd.Config, cmd.ID))
	case protocol.CommandUpdate:
		d.update(c, cmd.ID, *cmd.Update)
	}
}

func rejectMessage(err error) string {
	class := protocol.Class(err)
	if f := protocol.Field(err); f != "" {
		return class + ": " + f
	}
	return class
}

func (d *Device) remembered(id string) (protocol.Ack, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.recent {
		if r.id == id {
			return r.ack, true
		}
	}
	return protocol.Ack{}, false
}

// ack remembers and sends an acknowledgement.
func (d *Device) ack(c mqtt.Client, a protocol.Ack) {
	d.mu.Lock()
	d.recent = append(d.recent, rememberedAck{id: a.ID, ack: a})
	if len(d.recent) > rememberedCommands {
		d.recent = d.recent[len(d.recent)-rememberedCommands:]
	}
	d.mu.Unlock()
	d.send(c, a)
}

func (d *Device) send(c mqtt.Client, a protocol.Ack) {
	if err := d.publish(c, a, false); err != nil {
		d.log.Debug("publish ack", "command_id", a.ID, "error", err)
		return
	}
	d.stats.acks.Add(1)
}

func (d *Device) requestReboot() {
	select {
	case d.reboot <- struct{}{}:
	default:
	}
}

// debug switches the log stream (docs/protocol.md §4.2).
func (d *Device) debug(c mqtt.Client, p protocol.DebugParams) {
	d.stopDebug()
	if !p.Enabled {
		return
	}
	stop := make(chan struct{})
	d.mu.Lock()
	d.debugStop = stop
	d.mu.Unlock()
	deadline := time.Now().Add(time.Duration(p.DurationS) * time.Second)
	go d.streamLogs(c, p.Level, deadline, stop)
}

func (d *Device) stopDebug() {
	d.mu.Lock()
	stop := d.debugStop
	d.debugStop = nil
	d.mu.Unlock()
	if stop != nil {
		close(stop)
	}
}

// streamLogs produces log lines and publishes them in batches every 250 ms (or 64 lines)
// until stopped or the debug duration passes.
func (d *Device) streamLogs(c mqtt.Client, level string, deadline time.Time, stop chan struct{}) {
	lineEvery := time.Second / time.Duration(d.o.LogLinesPerSecond)
	produce := time.NewTicker(lineEvery)
	defer produce.Stop()
	flush := time.NewTicker(logBatchInterval)
	defer flush.Stop()
	end := time.NewTimer(time.Until(deadline))
	defer end.Stop()
	var batch []protocol.LogLine
	var first int64
	send := func() {
		if len(batch) == 0 {
			return
		}
		if err := d.publish(c, protocol.LogBatch{Seq: first, Lines: batch}, false); err == nil {
			d.stats.logBatches.Add(1)
			d.stats.logLines.Add(int64(len(batch)))
		}
		batch = nil
	}
	for {
		select {
		case <-stop:
			send()
			return
		case <-end.C:
			send()
			d.mu.Lock()
			if d.debugStop == stop {
				d.debugStop = nil
			}
			d.mu.Unlock()
			return
		case <-produce.C:
			seq := d.logSeq.Add(1) - 1
			if len(batch) == 0 {
				first = seq
			}
			d.mu.Lock()
			uptime := time.Since(d.bootAt).Milliseconds()
			d.mu.Unlock()
			batch = append(batch, protocol.LogLine{Level: level, Tag: "sim", Msg: fmt.Sprintf("simulated line %d", seq), MS: uptime})
			if len(batch) == protocol.MaxLogLines {
				send()
			}
		case <-flush.C:
			send()
		}
	}
}

// applyConfig validates every entry and decrypts every secret before changing anything, as
// the firmware does with one NVS commit (docs/protocol.md §4.3).
func (d *Device) applyConfig(p protocol.ConfigParams, id string) protocol.Ack {
	values := make(map[string]json.RawMessage, len(p.Entries))
	for _, e := range p.Entries {
		v := e.Value
		if e.Secret {
			var sealed string
			if err := json.Unmarshal(e.Value, &sealed); err != nil {
				return protocol.Ack{ID: id, Result: protocol.ResultError, Message: "secret " + e.Key + " is not a string"}
			}
			plain, err := protocol.OpenSecret(d.key, d.id, e.Key, p.Version, sealed)
			if err != nil {
				return protocol.Ack{ID: id, Result: protocol.ResultError, Message: "secret " + e.Key + " does not decrypt"}
			}
			v = plain
		}
		values[e.Key] = v
	}
	limits, _ := profileLimits(d.o.Profile)
	size, err := protocol.ConfigStoredSize(p.Entries, func(i int) (json.RawMessage, error) { return values[p.Entries[i].Key], nil })
	if err != nil || size > int(limits.ConfigBytes) {
		return protocol.Ack{ID: id, Result: protocol.ResultError,
			Message: fmt.Sprintf("config exceeds the device's limit of %d bytes", limits.ConfigBytes)}
	}
	var secret string
	if s, ok := values[protocol.KeyMQTTSecret]; ok {
		if json.Unmarshal(s, &secret) != nil || secret == "" {
			return protocol.Ack{ID: id, Result: protocol.ResultError, Message: protocol.KeyMQTTSecret + " is not a non-empty string"}
		}
		if d.o.StateDir != "" {
			b := d.o.Bundle
			b.Secret = secret
			if err := WriteBundle(d.o.StateDir, b); err != nil {
				return protocol.Ack{ID: id, Result: protocol.ResultError, Message: "state not saved"}
			}
		}
	}
	d.mu.Lock()
	d.config, d.configVersion, d.configHash = values, p.Version, p.Hash
	if secret != "" {
		d.secret = secret // used from the next connection on
	}
	d.mu.Unlock()
	data, _ := json.Marshal(map[string]int64{"config_version": p.Version})
	return protocol.Ack{ID: id, Result: protocol.ResultOK, Data: data}
}

// update checks an update command and, when it is acceptable, downloads the image in the
// background (docs/protocol.md §4.4 and the OTA sequence).
func (d *Device) update(c mqtt.Client, id string, p protocol.UpdateParams) {
	reject := func(reason string) {
		d.ack(c, protocol.Ack{ID: id, Result: protocol.ResultRejected, Message: reason})
	}
	if d.otaK != nil || p.Signature != "" {
		if d.otaK == nil || protocol.VerifyUpdate(d.otaK, p) != nil {
			reject(protocol.ReasonBadSignature)
			return
		}
	}
	d.mu.Lock()
	running, busy := d.firmware, d.otaBusy
	if !busy && running != p.Version {
		d.otaBusy = true
	}
	d.mu.Unlock()
	switch {
	case running == p.Version:
		reject(protocol.ReasonAlreadyRunning)
		return
	case busy:
		reject(protocol.ReasonBusy)
		return
	case p.URLExpiresAt != 0 && time.Now().UnixMilli() >= p.URLExpiresAt:
		d.mu.Lock()
		d.otaBusy = false
		d.mu.Unlock()
		reject(protocol.ReasonExpired)
		return
	}
	d.ack(c, protocol.Ack{ID: id, Result: protocol.ResultOK})
	d.downloads.Add(1)
	go func() {
		defer d.downloads.Done()
		d.download(c, id, p)
	}()
}

func (d *Device) download(c mqtt.Client, id string, p protocol.UpdateParams) {
	report := func(state string, progress int, reason string) {
		if err := d.publish(c, protocol.OTAProgress{ID: id, Version: p.Version, State: state, Progress: progress, Reason: reason}, false); err != nil {
			d.log.Debug("publish ota progress", "error", err)
		}
	}
	fail := func(reason string) {
		d.stats.otaFailures.Add(1)
		report(protocol.OTAFailed, 0, reason)
		d.mu.Lock()
		d.otaBusy = false
		d.mu.Unlock()
	}
	report(protocol.OTADownloading, 0, "")
	ctx := d.life
	if ctx == nil {
		ctx = context.Background()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		fail(protocol.ReasonDownloadError)
		return
	}
	resp, err := d.o.HTTPClient.Do(req)
	if err != nil {
		fail(protocol.ReasonDownloadError)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fail(protocol.ReasonDownloadError)
		return
	}
	h := sha256.New()
	var got int64
	lastPct, lastAt := 0, time.Now()
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			got += int64(n)
			if got > p.Size {
				fail(protocol.ReasonSizeMismatch)
				return
			}
			h.Write(buf[:n])
			pct := int(got * 100 / p.Size)
			if pct >= lastPct+5 || time.Since(lastAt) >= 2*time.Second {
				report(protocol.OTADownloading, pct, "")
				lastPct, lastAt = pct, time.Now()
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fail(protocol.ReasonDownloadError)
			return
		}
	}
	switch {
	case got != p.Size:
		fail(protocol.ReasonSizeMismatch)
		return
	case hex.EncodeToString(h.Sum(nil)) != p.SHA256:
		fail(protocol.ReasonHashMismatch)
		return
	}
	report(protocol.OTADownloaded, 100, "")
	report(protocol.OTAInstalling, 100, "")
	report(protocol.OTARebooting, 100, "")
	d.mu.Lock()
	d.firmware = p.Version
	d.otaBusy = false
	d.pendingOTA = &protocol.OTAProgress{ID: id, Version: p.Version, State: protocol.OTASucceeded, Progress: 100}
	d.mu.Unlock()
	d.requestReboot()
}

func drain(ch chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}
