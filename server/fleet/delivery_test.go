package fleet

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
)

// connBus is a broker that knows connections (messaging.Connection) and records the
// commands it was asked to publish.
type connBus struct {
	mu    sync.Mutex
	conn  map[string]uint64
	sent  []string // command IDs, in publish order
	perID map[string]int
}

func (b *connBus) Publish(_ context.Context, m messaging.Message) error {
	c, err := protocol.DecodeCommand(m.Payload)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, c.ID)
	b.perID[c.ID]++
	return nil
}

func (b *connBus) Subscribe(context.Context, string, byte, messaging.Handler) (func(), error) {
	return func() {}, nil
}

func (b *connBus) ConnectionID(id string) (uint64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.conn[id]
	return c, ok
}

func (b *connBus) Online(id string) bool { _, ok := b.ConnectionID(id); return ok }

func (b *connBus) connect(id string) {
	b.mu.Lock()
	b.conn[id]++
	b.mu.Unlock()
}

func (b *connBus) published() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sent)
}

// deliveryFixture is a tenant with one device on a connBus.
type deliveryFixture struct {
	st       store.Store
	bus      *connBus
	cmds     *Commands
	tenantID string
	deviceID string
	now      time.Time
}

func newDeliveryFixture(t *testing.T) *deliveryFixture {
	t.Helper()
	f := &deliveryFixture{st: openStore(t), bus: &connBus{conn: map[string]uint64{}, perID: map[string]int{}}, now: time.Now()}
	kr, _ := seal.NewKeyring(bytes.Repeat([]byte{1}, 32))
	tn := store.Tenant{Slug: "t", Name: "T"}
	if err := f.st.CreateTenant(t.Context(), &tn); err != nil {
		t.Fatal(err)
	}
	f.cmds = NewCommands(CommandsOptions{Store: f.st, Bus: f.bus, Root: protocol.DefaultRoot, Hub: NewHub(nil),
		Now: func() time.Time { return f.now }})
	p, err := NewDevices(DevicesOptions{Store: f.st, Keyring: kr, Hub: NewHub(nil)}).Create(t.Context(), tn.ID, DeviceInput{Name: "d"})
	if err != nil {
		t.Fatal(err)
	}
	f.tenantID, f.deviceID = tn.ID, p.Device.ID
	return f
}

func (f *deliveryFixture) restarts(t *testing.T, n int) []store.Command {
	t.Helper()
	var out []store.Command
	for range n {
		c, err := f.cmds.Send(t.Context(), f.tenantID, SendRequest{Name: protocol.CommandRestart, Target: Target{DeviceIDs: []string{f.deviceID}}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c...)
	}
	return out
}

func (f *deliveryFixture) ack(t *testing.T, id string) {
	t.Helper()
	if err := f.cmds.HandleAck(t.Context(), f.tenantID, f.deviceID, protocol.Ack{ID: id, Result: protocol.ResultOK}); err != nil {
		t.Fatal(err)
	}
}

// TestDeliveryWindow: a backlog goes out Window commands at a time, each once per
// connection however often delivery is triggered, the next as each ack arrives; a new
// connection gets what is still unacknowledged again.
func TestDeliveryWindow(t *testing.T) {
	t.Parallel()
	f := newDeliveryFixture(t)
	const backlog = 20
	cmds := f.restarts(t, backlog) // offline: all queued
	if n := f.bus.published(); n != 0 {
		t.Fatalf("%d published to an offline device", n)
	}
	f.bus.connect(f.deviceID)
	for range 3 { // online status, config_req, …
		if err := f.cmds.DeliverPending(t.Context(), f.tenantID, f.deviceID); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.bus.published(); n != DefaultWindow {
		t.Fatalf("published %d, want the window of %d", n, DefaultWindow)
	}
	for i := range 5 {
		f.ack(t, cmds[i].ID)
	}
	if n := f.bus.published(); n != DefaultWindow+5 {
		t.Fatalf("published %d after 5 acks, want %d", n, DefaultWindow+5)
	}
	// A new command while the window is full waits its turn.
	extra := f.restarts(t, 1)[0]
	if extra.State != store.CommandQueued || f.bus.published() != DefaultWindow+5 {
		t.Fatalf("new command %s, published %d", extra.State, f.bus.published())
	}
	// Reconnect: the unacknowledged ones go out again, oldest first.
	f.bus.connect(f.deviceID)
	if err := f.cmds.DeliverPending(t.Context(), f.tenantID, f.deviceID); err != nil {
		t.Fatal(err)
	}
	f.bus.mu.Lock()
	again := f.bus.sent[DefaultWindow+5:]
	f.bus.mu.Unlock()
	if len(again) != DefaultWindow || again[0] != cmds[5].ID {
		t.Fatalf("after reconnect sent %d starting %v, want %d starting %s", len(again), again, DefaultWindow, cmds[5].ID)
	}
	// Everything acknowledged: every command sent, none more than twice (once per connection).
	all := append(cmds, extra)
	for i := 5; i < len(all); i++ {
		f.ack(t, all[i].ID)
	}
	for _, c := range all {
		got, err := f.st.Command(t.Context(), f.tenantID, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.CommandSucceeded {
			t.Errorf("command %s %s", c.ID, got.State)
		}
		if n := f.bus.perID[c.ID]; n < 1 || n > 2 {
			t.Errorf("command %s published %d times", c.ID, n)
		}
	}
}

// TestDeliveryAckWait: a command left unanswered for AckWait is published again.
func TestDeliveryAckWait(t *testing.T) {
	t.Parallel()
	f := newDeliveryFixture(t)
	f.bus.connect(f.deviceID)
	c := f.restarts(t, 1)[0]
	if c.State != store.CommandDelivered || f.bus.published() != 1 {
		t.Fatalf("command %s, published %d", c.State, f.bus.published())
	}
	f.cmds.refill(t.Context())
	if f.bus.published() != 1 {
		t.Fatal("published again before AckWait")
	}
	f.now = f.now.Add(DefaultAckWait)
	f.cmds.refill(t.Context())
	if f.bus.published() != 2 {
		t.Fatalf("published %d times after AckWait, want 2", f.bus.published())
	}
}

// TestConfigCoalesced: a new config version supersedes the device's pending older ones,
// which are never sent.
func TestConfigCoalesced(t *testing.T) {
	t.Parallel()
	f := newDeliveryFixture(t)
	send := func(version int64) store.Command {
		t.Helper()
		c, err := f.cmds.SendSystem(t.Context(), f.tenantID, SystemCommand{DeviceID: f.deviceID, Build: func(id string, exp int64) protocol.Command {
			return protocol.Command{ID: id, Name: protocol.CommandConfig, ExpiresAt: exp,
				Config: &protocol.ConfigParams{Version: version, Hash: strings.Repeat("a", 64), Entries: []protocol.ConfigEntry{}}}
		}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var versions []store.Command
	for v := int64(1); v <= 5; v++ {
		versions = append(versions, send(v))
	}
	f.bus.connect(f.deviceID)
	if err := f.cmds.DeliverPending(t.Context(), f.tenantID, f.deviceID); err != nil {
		t.Fatal(err)
	}
	if f.bus.published() != 1 || f.bus.perID[versions[4].ID] != 1 {
		t.Fatalf("published %v, want only version 5", f.bus.sent)
	}
	for i, c := range versions[:4] {
		got, err := f.st.Command(t.Context(), f.tenantID, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Each was superseded when the next version was stored.
		want := "superseded by config version " + strconv.Itoa(i+2)
		if got.State != store.CommandSuperseded || got.Error != want {
			t.Errorf("version %d: %s %q, want superseded, %q", i+1, got.State, got.Error, want)
		}
	}
}
