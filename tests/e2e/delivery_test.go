package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/tests/testkit/poll"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// deliveryWait bounds the waits of the delivery tests: a backlog of hundreds of commands on a
// loaded two-core machine.
const deliveryWait = 90 * time.Second

// createDevice creates a device and returns its provisioning bundle.
func createDevice(t *testing.T, s *server, name string) fleet.Bundle {
	t.Helper()
	var created struct {
		ID           string          `json:"id"`
		Secret       string          `json:"secret"`
		Provisioning json.RawMessage `json:"provisioning"`
	}
	s.must(t, "POST", "/devices", map[string]any{"name": name}, http.StatusCreated, &created)
	var b fleet.Bundle
	if err := json.Unmarshal(created.Provisioning, &b); err != nil {
		t.Fatal(err)
	}
	b.Secret = created.Secret
	return b
}

// metric reads one sample (its full name with labels, e.g. `x_total{kind="ack"}`) from the
// server's /metrics; 0 when absent.
func metric(t *testing.T, s *server, sample string) float64 {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", sc.Text(), err)
			}
			return f
		}
	}
	return 0
}

// commandStates counts the device's commands by state (every page).
func commandStates(t *testing.T, s *server, deviceID string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	cursor := ""
	for {
		var page struct {
			Items      []command `json:"items"`
			NextCursor string    `json:"next_cursor"`
		}
		path := "/devices/" + deviceID + "/commands?limit=500"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		s.must(t, "GET", path, nil, http.StatusOK, &page)
		for _, c := range page.Items {
			counts[c.State]++
		}
		if page.NextCursor == "" {
			return counts
		}
		cursor = page.NextCursor
	}
}

// ackDevice is a device written for these tests with paho: it boots as docs/protocol.md §8
// says (subscribe, online status, config request), records every command it receives and,
// while acking is on, acknowledges each with ok from one goroutine, in order, without waiting
// for PUBACK (paho keeps an unacknowledged publish and resends it after a reconnect).
type ackDevice struct {
	b      fleet.Bundle
	c      mqtt.Client
	acking atomic.Bool
	lost   atomic.Int32 // connections lost
	boots  atomic.Int32 // connections made

	mu       sync.Mutex
	received map[string]int // command ID → times received
	names    map[string]int // command name → commands received
	held     []protocol.Command
	acks     chan protocol.Ack
	tokens   []mqtt.Token
}

func newAckDevice(t *testing.T, b fleet.Bundle, acking bool) *ackDevice {
	t.Helper()
	d := &ackDevice{b: b, received: map[string]int{}, names: map[string]int{}, acks: make(chan protocol.Ack, 10000)}
	d.acking.Store(acking)
	root := b.MQTT.TopicRoot
	opts := mqtt.NewClientOptions().
		AddBroker(fmt.Sprintf("tcp://%s:%d", b.MQTT.Host, b.MQTT.Port)).
		SetClientID(b.DeviceID).SetUsername(b.DeviceID).SetPassword(b.Secret).
		SetCleanSession(true).SetAutoReconnect(true).SetMaxReconnectInterval(time.Second).
		SetKeepAlive(30*time.Second).SetOrderMatters(true).
		SetWill(protocol.Uplink(root, b.DeviceID, protocol.KindStatus), protocol.WillPayload, 1, true).
		SetConnectionLostHandler(func(mqtt.Client, error) { d.lost.Add(1) }).
		SetOnConnectHandler(func(c mqtt.Client) {
			d.boots.Add(1)
			c.Subscribe(protocol.DownlinkFilter(root, b.DeviceID), 1, d.onCommand)
			_, status, _ := protocol.EncodeUplink(protocol.Status{Online: true})
			c.Publish(protocol.Uplink(root, b.DeviceID, protocol.KindStatus), 1, true, status)
			_, req, _ := protocol.EncodeUplink(protocol.ConfigRequest{})
			c.Publish(protocol.Uplink(root, b.DeviceID, protocol.KindConfigRequest), 1, false, req)
		})
	d.c = mqtt.NewClient(opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for a := range d.acks {
			data, err := protocol.EncodeAck(a)
			if err != nil {
				panic(err)
			}
			tok := d.c.Publish(protocol.Uplink(root, b.DeviceID, protocol.KindAck), 1, false, data)
			d.mu.Lock()
			d.tokens = append(d.tokens, tok)
			d.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		d.c.Disconnect(100)
		close(d.acks)
		<-done
	})
	return d
}

func (d *ackDevice) connect(t *testing.T) {
	t.Helper()
	tok := d.c.Connect()
	if !tok.WaitTimeout(deliveryWait) || tok.Error() != nil {
		t.Fatalf("device %s: connect: %v", d.b.DeviceID, tok.Error())
	}
}

// onCommand runs on paho's goroutine (in order): record, then ack or hold.
func (d *ackDevice) onCommand(_ mqtt.Client, m mqtt.Message) {
	cmd, err := protocol.DecodeCommand(m.Payload())
	if err != nil {
		panic(fmt.Sprintf("undecodable command %s: %v", m.Payload(), err))
	}
	d.mu.Lock()
	d.received[cmd.ID]++
	d.names[cmd.Name]++
	if !d.acking.Load() {
		d.held = append(d.held, cmd)
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	d.acks <- protocol.Ack{ID: cmd.ID, Result: protocol.ResultOK}
}

// ack acknowledges the commands held so far.
func (d *ackDevice) ackHeld() []protocol.Command {
	d.mu.Lock()
	held := d.held
	d.held = nil
	d.mu.Unlock()
	for _, c := range held {
		d.acks <- protocol.Ack{ID: c.ID, Result: protocol.ResultOK}
	}
	return held
}

// duplicates counts commands received more than once.
func (d *ackDevice) duplicates() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, times := range d.received {
		if times > 1 {
			n++
		}
	}
	return n
}

func (d *ackDevice) count(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.names[name]
}

// sendRestarts queues n restart commands for deviceID, one request each, and returns their IDs.
func sendRestarts(t *testing.T, s *server, deviceID string, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for i := range n {
		var sent struct{ Items []command }
		s.must(t, "POST", "/commands", map[string]any{"name": "restart", "params": map[string]any{"reason": fmt.Sprintf("backlog %d", i)},
			"target": map[string]any{"device_ids": []string{deviceID}}}, http.StatusAccepted, &sent)
		ids = append(ids, sent.Items[0].ID)
	}
	return ids
}

// TestDeliveryBacklogAcks: a device reconnecting to 300 queued commands receives each once,
// acknowledges all in a burst far above the publish rate limit, and every command ends
// succeeded: the broker acknowledged no ack it then dropped.
func TestDeliveryBacklogAcks(t *testing.T) {
	pg := testsvc.NewPausablePostgres(t)
	s := startServerOn(t, repoRoot(t), pg.URL)
	b := createDevice(t, s, "backlog")
	const backlog = 300
	sendRestarts(t, s, b.DeviceID, backlog)

	d := newAckDevice(t, b, true)
	d.connect(t)
	poll.State(t, 100*time.Millisecond, deliveryWait, "every command succeeded", func() (bool, string) {
		st := commandStates(t, s, b.DeviceID)
		return st["succeeded"] == backlog, fmt.Sprintf("%v, received %d restarts", st, d.count(protocol.CommandRestart))
	})
	if dup := d.duplicates(); dup != 0 || d.lost.Load() != 0 {
		t.Errorf("%d commands received more than once on one connection; %d connections lost", dup, d.lost.Load())
	}
	if got := d.count(protocol.CommandRestart); got != backlog {
		t.Errorf("device received %d restart commands, want %d", got, backlog)
	}
	if n := metric(t, s, `espadmin_mqtt_messages_dropped_total{reason="rate_limited"}`); n != 0 {
		t.Errorf("%v messages dropped by the rate limit", n)
	}
}

// TestDeliveryAckDuringOutage: an ack published while PostgreSQL is frozen is not
// acknowledged until it is stored, and is applied once the database is back.
func TestDeliveryAckDuringOutage(t *testing.T) {
	pg := testsvc.NewPausablePostgres(t)
	s := startServerOn(t, repoRoot(t), pg.URL)
	b := createDevice(t, s, "outage")
	d := newAckDevice(t, b, false)
	d.connect(t)
	ids := sendRestarts(t, s, b.DeviceID, 1)
	poll.State(t, 50*time.Millisecond, deliveryWait, "the command delivered", func() (bool, string) {
		return d.count(protocol.CommandRestart) == 1, fmt.Sprint(d.count(protocol.CommandRestart))
	})

	retried := `espadmin_mqtt_confirmed_messages_total{outcome="retried"}`
	before := metric(t, s, retried)
	pg.Pause(t)
	resumed := false
	defer func() {
		if !resumed {
			pg.Resume(t)
		}
	}()
	d.ackHeld()
	poll.State(t, 100*time.Millisecond, deliveryWait, "the ack held while the database is down", func() (bool, string) {
		n := metric(t, s, retried)
		return n > before, fmt.Sprintf("%v retried, handled %v, uplink acks %v, received %v, ack outcomes %v/%v/%v", n,
			metric(t, s, `espadmin_mqtt_confirmed_messages_total{outcome="handled"}`),
			metric(t, s, `espadmin_mqtt_uplink_messages_total{kind="ack"}`),
			metric(t, s, `espadmin_mqtt_messages_received_total`),
			metric(t, s, `espadmin_command_acks_total{outcome="succeeded"}`),
			metric(t, s, `espadmin_command_acks_total{outcome="duplicate"}`),
			metric(t, s, `espadmin_command_acks_total{outcome="unknown"}`))
	})
	d.mu.Lock()
	tok := d.tokens[len(d.tokens)-1]
	d.mu.Unlock()
	select {
	case <-tok.Done():
		t.Fatal("the broker acknowledged an ack it could not store")
	default:
	}
	pg.Resume(t)
	resumed = true
	if !tok.WaitTimeout(deliveryWait) {
		t.Fatal("the ack was never acknowledged after the database came back")
	}
	waitCommandIn(t, s, b.DeviceID, ids[0], "succeeded", deliveryWait)
}

// waitCommandIn waits until a command reaches state.
func waitCommandIn(t *testing.T, s *server, deviceID, commandID, state string, timeout time.Duration) {
	t.Helper()
	poll.State(t, 100*time.Millisecond, timeout, "command "+commandID+" "+state, func() (bool, string) {
		var c command
		s.must(t, "GET", "/devices/"+deviceID+"/commands/"+commandID, nil, http.StatusOK, &c)
		return c.State == state, fmt.Sprintf("%+v", c)
	})
}

// TestDeliveryLargeBacklog: a device that was offline while its config changed 60 times
// (each version about 12 KB) and 100 restarts were queued gets the backlog at the pace it
// acknowledges, without being closed as a slow client, and receives only the latest config
// version; the older ones are marked superseded.
func TestDeliveryLargeBacklog(t *testing.T) {
	pg := testsvc.NewPausablePostgres(t)
	s := startServerOn(t, repoRoot(t), pg.URL)
	b := createDevice(t, s, "large")
	big := func(c byte, i int) string {
		return fmt.Sprintf("%04d", i) + strings.Repeat(string(c), protocol.MaxConfigValueLength-100)
	}
	put := func(key, value string) {
		t.Helper()
		var e struct {
			Version int64 `json:"version"`
		}
		status, body := s.call(t, "GET", "/devices/"+b.DeviceID+"/config/"+key, nil)
		if status == http.StatusOK {
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
		}
		s.must(t, "PUT", "/devices/"+b.DeviceID+"/config/"+key, map[string]any{"type": "string", "value": value, "version": e.Version}, http.StatusOK, nil)
	}
	const versions, restarts = 60, 100
	put("blob_a", big('a', 0))
	put("blob_b", big('b', 0))
	for i := range versions - 2 {
		put("blob_c", big('c', i))
	}
	sendRestarts(t, s, b.DeviceID, restarts)

	d := newAckDevice(t, b, true)
	d.connect(t)
	poll.State(t, 100*time.Millisecond, deliveryWait, "the backlog acknowledged", func() (bool, string) {
		st := commandStates(t, s, b.DeviceID)
		return st["succeeded"] == restarts+1 && st["superseded"] == versions-1, fmt.Sprint(st)
	})
	var eff struct {
		Version int64 `json:"version"`
		Sync    struct {
			State          string `json:"state"`
			AppliedVersion int64  `json:"applied_version"`
			DesiredVersion int64  `json:"desired_version"`
		} `json:"sync"`
	}
	s.must(t, "GET", "/devices/"+b.DeviceID+"/config/effective", nil, http.StatusOK, &eff)
	if eff.Sync.State != "in_sync" || eff.Sync.AppliedVersion != eff.Version || eff.Version != versions {
		t.Errorf("config sync %+v of version %d, want in_sync at %d", eff.Sync, eff.Version, versions)
	}
	if got := d.count(protocol.CommandConfig); got != 1 {
		t.Errorf("device received %d config commands, want 1 (the latest version)", got)
	}
	if lost, dup := d.lost.Load(), d.duplicates(); lost != 0 || dup != 0 {
		t.Errorf("%d connections lost, %d commands received twice", lost, dup)
	}
	if n := metric(t, s, "espadmin_mqtt_inflight_dropped_total"); n != 0 {
		t.Errorf("%v messages dropped from the device's in-flight queue", n)
	}
}
