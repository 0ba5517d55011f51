// Package bugsnagtest is a test double of Bugsnag's notify endpoint: a local HTTP server that
// records what bugsnag-go sends it, and can be made to fail or to hang, so that tests check
// the real payload of package devicerrors without reaching Bugsnag.
package bugsnagtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Payload is the part of Bugsnag's notify payload (version 4, as bugsnag-go sends it) that
// the tests look at.
type Payload struct {
	APIKey string  `json:"apiKey"`
	Events []Event `json:"events"`
}

// Event is one error of a Payload: the device is its user and hostname, the firmware its
// app version.
type Event struct {
	App struct {
		ReleaseStage string `json:"releaseStage"`
		Version      string `json:"version"`
		Type         string `json:"type"`
	} `json:"app"`
	Context string `json:"context"`
	Device  struct {
		Hostname string `json:"hostname"`
	} `json:"device"`
	Exceptions []Exception `json:"exceptions"`
	// Metadata is the event's tabs, by tab and then key.
	Metadata map[string]map[string]any `json:"metaData"`
	Severity string                    `json:"severity"`
	User     struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"user"`
}

// Exception is an Event's error class and message with its backtrace.
type Exception struct {
	ErrorClass string       `json:"errorClass"`
	Message    string       `json:"message"`
	Stacktrace []StackFrame `json:"stacktrace"`
}

// StackFrame is one frame of an Exception's backtrace.
type StackFrame struct {
	Method     string `json:"method"`
	File       string `json:"file"`
	LineNumber int    `json:"lineNumber"`
}

// Server is the notify endpoint; its URL is the notify URL to configure. It answers
// 200 OK until SetStatus says otherwise.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	payloads []Payload
	headers  []http.Header
	requests int
	status   int
	hang     chan struct{} // non-nil: requests wait until it closes
}

// New starts a notify endpoint that is released and closed when tb ends. A request body that
// is not JSON fails tb.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests++
		hang, status := s.hang, s.status
		s.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-r.Context().Done():
				return
			}
		}
		if status/100 == 2 {
			var p Payload
			if err := json.Unmarshal(body, &p); err != nil {
				tb.Errorf("notify payload is not JSON: %v: %q", err, body)
			}
			s.mu.Lock()
			s.payloads = append(s.payloads, p)
			s.headers = append(s.headers, r.Header.Clone())
			s.mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	tb.Cleanup(func() {
		s.Release()
		s.Close()
	})
	return s
}

// SetStatus makes the endpoint answer the requests that follow with code. Only requests
// answered with a 2xx status are recorded (Received, Header), as only those reach Bugsnag.
func (s *Server) SetStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

// Hang makes the requests that follow wait, without an answer, until Release or until their
// client gives up.
func (s *Server) Hang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = make(chan struct{})
}

// Release lets the requests held by Hang go on, and answers the ones that follow at once.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang != nil {
		close(s.hang)
		s.hang = nil
	}
}

// Received returns the recorded payloads, in the order they were recorded.
func (s *Server) Received() []Payload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Payload(nil), s.payloads...)
}

// Header returns the HTTP header of the i-th recorded payload (Bugsnag-Api-Key and the
// others bugsnag-go sets).
func (s *Server) Header(i int) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headers[i].Clone()
}

// Requests is how many requests have arrived, recorded or not, including those that hang.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}
