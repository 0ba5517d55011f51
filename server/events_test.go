package server

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// A client that reconnects to the event stream with Last-Event-ID (as EventSource does) gets
// the events it missed, in order and once, and then the live ones; one that resumes after an
// event the replica does not hold (another replica's, an earlier process's, or nonsense) is
// told to reload with a "dropped" event.
func TestEventStreamResumes(t *testing.T) {
	t.Parallel()
	w := newDeviceWorld(t)
	ids := map[string]string{} // device name → ID
	created := func(s *eventStream, name string) (int, string) {
		events, evIDs := s.all()
		for i, ev := range events {
			if ev["type"] == fleet.EventDevice && ev["device_id"] == ids[name] && ids[name] != "" {
				return i, evIDs[i]
			}
		}
		return -1, ""
	}
	create := func(name string) {
		t.Helper()
		resp, _ := w.create(t, map[string]any{"name": name})
		ids[name] = fmt.Sprint(resp["id"])
	}
	nameOf := func(id string) string {
		for name, v := range ids {
			if v == id {
				return name
			}
		}
		return ""
	}

	first := w.openEvents(t, w.owner, "alpha")
	create("before")
	poll.Wait(t, "the first device's event", func() bool { i, _ := created(first, "before"); return i >= 0 })
	_, lastID := created(first, "before")
	if lastID == "" {
		t.Fatal("the event has no id")
	}
	first.close()
	poll.Wait(t, "the first stream closed", func() bool { return w.h.fleet.hub.Subscribers() == 0 })

	// Missed while disconnected.
	create("missed-1")
	create("missed-2")
	resumed := w.openEventsAfter(t, w.owner, "alpha", lastID)
	create("live")
	poll.Wait(t, "the live event after the missed ones", func() bool { i, _ := created(resumed, "live"); return i >= 0 })
	events, evIDs := resumed.all()
	var order []string
	for _, ev := range events {
		if ev["type"] == fleet.EventDropped {
			t.Errorf("a resumed stream whose events are held got %v", ev)
		}
		if ev["type"] == fleet.EventDevice {
			order = append(order, nameOf(fmt.Sprint(ev["device_id"])))
		}
	}
	if fmt.Sprint(order) != "[missed-1 missed-2 live]" {
		t.Errorf("the resumed stream's device events are %v, want the two missed ones, then the live one", order)
	}
	seen := map[string]bool{lastID: true}
	for _, id := range evIDs {
		if id == "" || seen[id] {
			t.Errorf("event ids %v: want each event with a new id", evIDs)
			break
		}
		seen[id] = true
	}

	// Resuming after an event this replica does not hold.
	for _, lastID := range []string{"0123456789ab.1", "nonsense", evIDs[len(evIDs)-1] + "999"} {
		base := w.h.fleet.hub.Subscribers()
		s := w.openEventsAfter(t, w.owner, "alpha", lastID)
		poll.Wait(t, "the dropped event of "+lastID, func() bool { events, _ := s.all(); return len(events) > 0 })
		events, _ := s.all()
		if d, _ := events[0]["data"].(map[string]any); events[0]["type"] != fleet.EventDropped || d["reason"] != "resume" {
			t.Errorf("resuming after %q: first event %v, want dropped with reason resume", lastID, events[0])
		}
		s.close()
		poll.Wait(t, "the stream closed", func() bool { return w.h.fleet.hub.Subscribers() == base })
	}

	// Another tenant's client resuming after alpha's event gets none of alpha's events.
	beta := w.h.login(t, memberEmail("beta", store.RoleOwner))
	s := w.openEventsAfter(t, beta, "beta", lastID)
	status, resp := beta.do("POST", "/api/v1/tenants/beta/devices", map[string]any{"name": "beta-live"})
	if status != http.StatusCreated {
		t.Fatalf("create beta's device: %d %v", status, resp)
	}
	ids["beta-live"] = fmt.Sprint(resp["id"])
	poll.Wait(t, "beta's live event", func() bool { i, _ := created(s, "beta-live"); return i >= 0 })
	for _, name := range []string{"before", "missed-1", "missed-2", "live"} {
		if i, _ := created(s, name); i >= 0 {
			t.Errorf("beta's resumed stream replayed alpha's device %q", name)
		}
	}
}
