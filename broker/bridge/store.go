package bridge

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// resumeStore is paho's message store, except that Get hands out a copy of a stored PUBLISH.
// On every connect paho v1.5.1 resends what the store holds and sets the DUP flag on the
// stored packet, the very object a Publish made just after the connect may be writing to the
// new connection at that moment: a data race (eclipse-paho/paho.mqtt.golang#703). With a
// copy, the resend marks a packet of its own; what goes on the wire is unchanged.
type resumeStore struct{ mqtt.Store }

func newResumeStore() mqtt.Store { return resumeStore{mqtt.NewMemoryStore()} }

// Get returns the stored packet, a PUBLISH as a copy.
func (s resumeStore) Get(key string) packets.ControlPacket {
	p := s.Store.Get(key)
	if pub, ok := p.(*packets.PublishPacket); ok {
		c := *pub
		return &c
	}
	return p
}
