package bridge

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// resumeStore is paho's message store, except that a stored PUBLISH is a copy both ways: Put
// keeps a copy and Get hands out a copy. Paho v1.5.1 stores the very packet its writer goroutine
// then writes to the connection (Write sets its length field), and on every connect it resends
// what the store holds and sets the DUP flag on the stored packet: both are data races with a
// write in flight (eclipse-paho/paho.mqtt.golang#703). With copies, the stored packet is never
// one the writer touches, and a resend marks a packet of its own; what goes on the wire is
// unchanged. The payload is shared: nobody writes to it.
type resumeStore struct{ mqtt.Store }

func newResumeStore() mqtt.Store { return resumeStore{mqtt.NewMemoryStore()} }

// Put stores p, a PUBLISH as a copy. Paho calls it before it hands p to the writer.
func (s resumeStore) Put(key string, p packets.ControlPacket) {
	if pub, ok := p.(*packets.PublishPacket); ok {
		c := *pub
		p = &c
	}
	s.Store.Put(key, p)
}

// Get returns the stored packet, a PUBLISH as a copy.
func (s resumeStore) Get(key string) packets.ControlPacket {
	p := s.Store.Get(key)
	if pub, ok := p.(*packets.PublishPacket); ok {
		c := *pub
		return &c
	}
	return p
}
