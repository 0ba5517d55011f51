package broker

import (
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/espadmin/espadmin/broker/protocol"
)

// presenceHook tracks which devices have a live connection and tells the server.
//
// Presence reaches the server as messages, the same way with an external broker: the device
// publishes a retained online status after CONNACK and registers a retained offline status as
// its last will, which the broker publishes when the link dies. A device that leaves with a
// clean DISCONNECT discards its will (MQTT 3.1.2-10), and one may have set none; in both cases
// this hook publishes the retained offline status on the device's behalf, so the server always
// sees the device go offline. A session taken over by a new connection of the same device
// publishes nothing here (the device is still online).
//
// Online answers from the live connection table, which is authoritative with the embedded
// broker.
type presenceHook struct {
	mqtt.HookBase
	b *Broker

	mu     sync.Mutex
	online map[string]*presenceEntry
	seq    uint64 // last connection ID given out, under mu
}

type presenceEntry struct {
	cl      *mqtt.Client
	hadWill bool
	connID  uint64
	// subscribed is set once the connection holds a subscription that receives its
	// commands: a command published before that would reach nobody.
	subscribed bool
}

var offlineStatus = []byte(protocol.WillPayload)

func newPresenceHook(b *Broker) *presenceHook {
	return &presenceHook{b: b, online: map[string]*presenceEntry{}}
}

func (h *presenceHook) ID() string { return "espadmin-presence" }

func (h *presenceHook) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnSubscribed || b == mqtt.OnDisconnect
}

func (h *presenceHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	// mochi runs this after CONNACK, so a quick second connection of the same device may have
	// taken the session over already; only the connection holding the session counts.
	// Checked under h.mu: a newer connection is added to mochi's table before its own
	// OnSessionEstablished takes h.mu, so it always wins.
	h.mu.Lock()
	if cur, ok := h.b.srv.Clients.Get(cl.ID); !ok || cur != cl || cl.Closed() {
		h.mu.Unlock()
		return
	}
	h.seq++
	e := &presenceEntry{cl: cl, hadWill: atomic.LoadUint32(&cl.Properties.Will.Flag) == 1, connID: h.seq}
	// A resumed persistent session brings its subscriptions along, without a SUBSCRIBE.
	for _, sub := range cl.State.Subscriptions.GetAll() {
		if h.receivesCommands(cl.ID, sub.Filter) {
			e.subscribed = true
		}
	}
	h.online[cl.ID] = e
	h.mu.Unlock()
}

// OnSubscribed marks the connection ready for commands once a granted filter covers its
// command topic.
func (h *presenceHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if cl.Net.Inline {
		return
	}
	ready := false
	for i, sub := range pk.Filters {
		if i < len(codes) && codes[i] < 0x80 && h.receivesCommands(cl.ID, sub.Filter) {
			ready = true
		}
	}
	if !ready {
		return
	}
	h.mu.Lock()
	if e, ok := h.online[cl.ID]; ok && e.cl == cl {
		e.subscribed = true
	}
	h.mu.Unlock()
}

// receivesCommands reports whether filter matches deviceID's command topic.
func (h *presenceHook) receivesCommands(deviceID, filter string) bool {
	return matchLevels(strings.Split(filter, "/"), strings.Split(protocol.DownlinkCommand(h.b.root, deviceID), "/"))
}

func (h *presenceHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	if cl.Net.Inline {
		return
	}
	h.mu.Lock()
	e, ok := h.online[cl.ID]
	current := ok && e.cl == cl
	if current {
		delete(h.online, cl.ID)
	}
	h.mu.Unlock()
	if !current || cl.IsTakenOver() {
		return // a newer connection of the same device holds the session
	}
	// err == nil is a clean DISCONNECT: mochi has discarded the will. Otherwise the will, if
	// the device set one, has been published (or scheduled, with a will delay) already.
	if err == nil || !e.hadWill {
		_ = h.b.srv.Publish(protocol.Uplink(h.b.root, cl.ID, protocol.KindStatus), offlineStatus, true, 1)
	}
}

// Online reports whether deviceID has a live connection.
func (h *presenceHook) Online(deviceID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.online[deviceID]
	return ok
}

// connectionID returns the ID of deviceID's live connection once it has subscribed to its
// commands.
func (h *presenceHook) connectionID(deviceID string) (uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.online[deviceID]
	if !ok || !e.subscribed {
		return 0, false
	}
	return e.connID, true
}

func (h *presenceHook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.online)
}
