package bridge

import (
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// The stored PUBLISH is never an object paho writes to: not the one Put was given (its writer
// goroutine sets the length while writing it), not the one Get handed out (resume sets DUP).
func TestResumeStoreKeepsItsOwnPublish(t *testing.T) {
	s := newResumeStore()
	s.Open()
	defer s.Close()
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.Qos, pub.MessageID, pub.TopicName, pub.Payload = 1, 7, "espadmin/t/d/up", []byte("x")
	s.Put("o.7", pub)
	pub.RemainingLength, pub.Dup = 99, true // what the writer and a resend do to the packet given

	got := s.Get("o.7").(*packets.PublishPacket)
	if got == pub || got.RemainingLength == 99 || got.Dup {
		t.Fatalf("Get after the given packet changed: %+v (same object: %v)", got.FixedHeader, got == pub)
	}
	got.Dup = true
	if again := s.Get("o.7").(*packets.PublishPacket); again == got || again.Dup {
		t.Fatalf("Get after the handed-out packet changed: Dup %v (same object: %v)", again.Dup, again == got)
	}
	if again := s.Get("o.7").(*packets.PublishPacket); again.MessageID != 7 || again.TopicName != pub.TopicName || string(again.Payload) != "x" {
		t.Fatalf("stored packet lost its content: %v", again)
	}
}
