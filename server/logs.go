package server

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/logrelay"
	"github.com/espadmin/espadmin/store"
)

// Live log stream limits.
const (
	// logPongWait is how long a log stream waits for any message or pong from the browser;
	// pings go out at 9/10 of it, so a vanished browser is noticed within it.
	logPongWait   = 60 * time.Second
	logPingPeriod = logPongWait * 9 / 10
	// logWriteWait bounds every write; a browser that does not read for that long is
	// disconnected.
	logWriteWait = 10 * time.Second
	// logReadLimit bounds messages from the browser, which has nothing to say but close.
	logReadLimit = 512
	// logSocketBuffer is the kernel send buffer of a log stream. Kept small on purpose: a
	// browser that falls behind then shows up as dropped lines within a second instead of
	// megabytes of stale lines queued in the kernel (and the memory they hold).
	logSocketBuffer = 32 << 10
)

// logStreamQuery documents the stream's query.
type logStreamQuery struct {
	Level string `query:"level" doc:"lowest level to stream: error, warn, info (default), debug or verbose"`
}

// logFrameDoc documents the frames of a log stream for the OpenAPI document.
type logFrameDoc struct {
	Type    string          `json:"type" enum:"lines,dropped,gap,debug"`
	Lines   []logrelay.Line `json:"lines,omitempty" doc:"lines frames: seq, level, tag, msg and ts (device uptime in ms)"`
	Count   int64           `json:"count,omitempty" doc:"dropped and gap frames: lines lost"`
	Reason  string          `json:"reason,omitempty" enum:"transit,device" doc:"gap frames: lost between device and server (a sequence jump), or by the device itself"`
	FromSeq int64           `json:"from_seq,omitempty" doc:"transit gaps: the first missing sequence number"`
	Enabled *bool           `json:"enabled,omitempty" doc:"debug frames: debug switched on or off for the device, by anyone"`
	Level   string          `json:"level,omitempty" doc:"debug frames: the level streamed"`
}

// streamLogs serves GET /api/v1/tenants/:tenant/devices/:device/logs/stream: a WebSocket of
// the device's live log lines (docs/logs-and-errors.md). Authorisation is the tenant scope's
// (session cookie or bearer token, devices:read); a device of another tenant is 404 before
// any upgrade. A browser's Origin must be the public URL's or an allowed one, because a
// WebSocket handshake carries the session cookie whatever site opened it.
func (s *Server) streamLogs(c echo.Context) error {
	d, err := s.device(c)
	if err != nil {
		return err
	}
	req := c.Request()
	if !websocket.IsWebSocketUpgrade(req) {
		return &Error{Status: http.StatusUpgradeRequired, Code: "upgrade_required",
			Message: "this route is a WebSocket; open it with a WebSocket client"}
	}
	level := c.QueryParam("level")
	if level != "" && !logrelay.ValidLevel(level) {
		return store.Invalid("level", "must be one of error, warn, info, debug, verbose")
	}
	if !s.originAllowed(req) {
		return &Error{Status: http.StatusForbidden, Code: "origin_refused",
			Message: "this page's origin may not open log streams; add it to http.allowed_origins"}
	}
	if s.deps.Logs == nil {
		return &Error{Status: http.StatusServiceUnavailable, Message: "the live log relay is not available"}
	}
	up := websocket.Upgrader{
		HandshakeTimeout: logWriteWait,
		ReadBufferSize:   logReadLimit,
		WriteBufferSize:  16 << 10,
		CheckOrigin:      s.originAllowed, // checked above; repeated so the upgrader never allows more
	}
	tc := tenantFrom(c)
	viewer, err := s.deps.Logs.Watch(req.Context(), tc.Tenant.ID, d.ID, level)
	if err != nil {
		if errors.Is(err, logrelay.ErrClosed) {
			return &Error{Status: http.StatusServiceUnavailable, Message: "the server is shutting down"}
		}
		return err
	}
	defer viewer.Close()
	conn, err := up.Upgrade(c.Response(), req, nil)
	if err != nil {
		return nil // the upgrader has answered the client
	}
	defer conn.Close()
	if tcp, ok := conn.NetConn().(*net.TCPConn); ok {
		_ = tcp.SetWriteBuffer(logSocketBuffer)
	}
	s.log.Debug("log stream opened", "tenant_id", tc.Tenant.ID, "device_id", d.ID, "level", level)
	s.pumpLogs(conn, viewer)
	return nil
}

// pumpLogs writes the viewer's frames until the browser leaves, stops answering pings, or
// the relay closes (shutdown: a close frame "going away" is sent).
func (s *Server) pumpLogs(conn *websocket.Conn, v *logrelay.Viewer) {
	readDone := make(chan struct{})
	conn.SetReadLimit(logReadLimit)
	_ = conn.SetReadDeadline(time.Now().Add(logPongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(logPongWait)) })
	go func() {
		defer close(readDone)
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
			_ = conn.SetReadDeadline(time.Now().Add(logPongWait))
		}
	}()
	write := func(fr logrelay.Frame) error {
		data, err := json.Marshal(fr)
		if err != nil {
			return err
		}
		_ = conn.SetWriteDeadline(time.Now().Add(logWriteWait))
		return conn.WriteMessage(websocket.TextMessage, data)
	}
	reportDropped := func() error {
		if n := v.TakeDropped(); n > 0 {
			return write(logrelay.Frame{Type: logrelay.FrameDropped, Count: n})
		}
		return nil
	}
	ping := time.NewTicker(logPingPeriod)
	defer ping.Stop()
	for {
		var err error
		select {
		case <-readDone:
			return
		case <-v.Done():
			msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
			_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			return
		case fr := <-v.Frames():
			if err = reportDropped(); err == nil {
				err = write(fr)
			}
		case <-ping.C:
			if err = reportDropped(); err == nil {
				err = conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(logWriteWait))
			}
		}
		if err != nil {
			return
		}
	}
}

// originAllowed accepts requests without an Origin (scripts and tools, which hold a bearer
// token or the cookie themselves), the public URL's origin, and the configured allow-list.
// Browsers always send Origin on a WebSocket handshake, so a page of another site is refused.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	o, err := url.Parse(origin)
	if err != nil || o.Host == "" {
		return false
	}
	if pu, err := url.Parse(s.publicURL); err == nil && strings.EqualFold(pu.Scheme, o.Scheme) && strings.EqualFold(pu.Host, o.Host) {
		return true
	}
	for _, a := range s.deps.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(a, "/"), origin) {
			return true
		}
	}
	return false
}

// closeLogStreams ends every log stream (server shutdown): hijacked WebSocket connections
// are not tracked by http.Server.Shutdown.
func (s *Server) closeLogStreams() {
	if s.deps.Logs != nil {
		s.deps.Logs.Close()
	}
}
