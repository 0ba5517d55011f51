package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/fleet"
)

// EventHeartbeat is how often an idle event stream sends a comment line, so proxies and
// browsers keep the connection open and a dead client is noticed.
const EventHeartbeat = 15 * time.Second

// eventStreamDoc documents the event stream's body for the OpenAPI document.
type eventStreamDoc struct {
	Type     string         `json:"type" enum:"presence,metadata,command,commands_expired,device,config,rollout,device_update,error,auth_failed,dropped"`
	DeviceID string         `json:"device_id,omitempty"`
	At       time.Time      `json:"at"`
	Data     map[string]any `json:"data,omitempty"`
}

// streamEvents serves GET /api/v1/tenants/:tenant/events as Server-Sent Events: each change
// of the tenant (presence, metadata, command state, device changes) is one "event: TYPE" with
// the JSON event as data and an "id:". A client that reconnects with Last-Event-ID (as
// EventSource does) first gets what it missed, while this replica still holds it
// (fleet.ReplayEvents, fleet.ReplayWindow). A client that reads too slowly loses events and
// receives a "dropped" event with how many, and one that resumes after events no longer held
// receives a "dropped" event with reason "resume"; either should then reload what it shows.
// The stream ends when the server shuts down.
func (s *Server) streamEvents(c echo.Context) error {
	if err := s.fleetReady(); err != nil {
		return err
	}
	tc := tenantFrom(c)
	if !acceptsEventStream(c.Request().Header.Values(echo.HeaderAccept)) {
		return &Error{Status: http.StatusNotAcceptable, Code: "not_acceptable",
			Message: "this route streams Server-Sent Events; send Accept: text/event-stream"}
	}
	sub, missed, complete := s.deps.Events.SubscribeAfter(tc.Tenant.ID, 0, c.Request().Header.Get("Last-Event-ID"))
	defer sub.Close()

	w := c.Response()
	// The stream outlives the server's write timeout on purpose.
	if err := http.NewResponseController(w.Writer).SetWriteDeadline(time.Time{}); err != nil {
		s.log.Debug("event stream without deadline control", "error", err)
	}
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 3000\n: connected\n\n"); err != nil {
		return nil
	}
	w.Flush()

	send := func(ev fleet.Event) error {
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if ev.ID != "" {
			if _, err := fmt.Fprintf(w, "id: %s\n", ev.ID); err != nil {
				return err
			}
		}
		_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, data)
		return err
	}
	if !complete {
		if send(fleet.Event{Type: fleet.EventDropped, At: s.now(), Data: map[string]any{"reason": "resume"}}) != nil {
			return nil
		}
	}
	for _, ev := range missed {
		if send(ev) != nil {
			return nil
		}
	}
	w.Flush()
	reportDropped := func() error {
		if n := sub.TakeDropped(); n > 0 {
			return send(fleet.Event{Type: fleet.EventDropped, At: s.now(), Data: map[string]any{"count": n}})
		}
		return nil
	}
	heartbeat := time.NewTicker(EventHeartbeat)
	defer heartbeat.Stop()
	ctx := c.Request().Context()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			return nil
		case ev := <-sub.Events():
			if err = reportDropped(); err == nil {
				err = send(ev)
			}
		case <-heartbeat.C:
			if err = reportDropped(); err == nil {
				_, err = fmt.Fprint(w, ": heartbeat\n\n")
			}
		}
		if err != nil {
			return nil // the client went away; nothing to answer
		}
		w.Flush()
	}
}

// closeEventStreams ends every event stream (server shutdown).
func (s *Server) closeEventStreams() {
	if s.deps.Events != nil {
		s.deps.Events.Close()
	}
}

// acceptsEventStream reports whether the Accept header names text/event-stream, as
// EventSource always sends. Requiring it keeps a plain JSON client from hanging on a stream it
// cannot read.
func acceptsEventStream(values []string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
				return true
			}
		}
	}
	return false
}
