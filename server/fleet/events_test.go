package fleet

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/espadmin/espadmin/tests/testkit/testclock"
)

// eventIDs lists the IDs of events.
func eventIDs(events []Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.ID
	}
	return out
}

// SubscribeAfter replays a tenant's events since a Last-Event-ID while the hub holds them, in
// order, without a gap or repeat before the live ones; it says when it cannot: after the
// ReplayEvents newest, after the ReplayWindow, or for an ID the hub did not give out.
func TestSubscribeAfterReplays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := NewHub(nil)
		defer h.Close()
		publish := func(tenant string, n int) []Event {
			sub := h.Subscribe(tenant, ReplayEvents+10)
			defer sub.Close()
			out := make([]Event, n)
			for i := range out {
				h.Publish(Event{Type: EventDevice, TenantID: tenant, DeviceID: fmt.Sprintf("d%d", i)})
				out[i] = <-sub.Events()
			}
			return out
		}
		a := publish("a", 4)
		publish("b", 2) // interleaved sequence numbers of another tenant

		sub, missed, complete := h.SubscribeAfter("a", 0, a[1].ID)
		if !complete || fmt.Sprint(eventIDs(missed)) != fmt.Sprint(eventIDs(a[2:])) {
			t.Errorf("after a's second event: %v complete=%v, want %v", eventIDs(missed), complete, eventIDs(a[2:]))
		}
		h.Publish(Event{Type: EventDevice, TenantID: "a", DeviceID: "live"})
		if ev := <-sub.Events(); ev.DeviceID != "live" {
			t.Errorf("the live event after the replay is %+v", ev)
		}
		sub.Close()
		if _, missed, complete := h.SubscribeAfter("a", 0, ""); !complete || len(missed) != 0 {
			t.Errorf("a fresh stream: %d replayed, complete=%v; want none, complete", len(missed), complete)
		}
		for _, id := range []string{"x", "0123456789ab.1", a[0].ID + "0"} {
			if _, missed, complete := h.SubscribeAfter("a", 0, id); complete || len(missed) != 0 {
				t.Errorf("after %q (not this hub's): %d replayed, complete=%v; want none, incomplete", id, len(missed), complete)
			}
		}

		// More than ReplayEvents since: the oldest are gone, and the client must reload.
		first := publish("c", 2)
		many := publish("c", ReplayEvents)
		if _, _, complete := h.SubscribeAfter("c", 0, first[1].ID); !complete {
			t.Errorf("after the newest event no longer held, with all since held: incomplete, want complete")
		}
		if _, _, complete := h.SubscribeAfter("c", 0, first[0].ID); complete {
			t.Errorf("after %d newer events: complete, want incomplete", ReplayEvents+1)
		}
		if _, missed, complete := h.SubscribeAfter("c", 0, many[0].ID); !complete || len(missed) != ReplayEvents-1 {
			t.Errorf("after the oldest held event: %d replayed, complete=%v; want %d", len(missed), complete, ReplayEvents-1)
		}

		// Past the window: nothing is held any more.
		last := publish("d", 2)
		testclock.Advance(ReplayWindow + time.Second)
		if _, missed, complete := h.SubscribeAfter("d", 0, last[0].ID); complete || len(missed) != 0 {
			t.Errorf("after the window: %d replayed, complete=%v; want none, incomplete", len(missed), complete)
		}
		if _, missed, complete := h.SubscribeAfter("d", 0, last[1].ID); !complete || len(missed) != 0 {
			t.Errorf("after the newest event, past the window: %d replayed, complete=%v; want none, complete", len(missed), complete)
		}
	})
}
