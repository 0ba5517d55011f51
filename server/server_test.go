package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/logbuf"
)

type testServer struct {
	*Server
	url  string
	logs *logbuf.Buffer
}

// start runs a real server on 127.0.0.1:0 and shuts it down at the end of the test. extra
// registers test-only routes before serving.
func start(t *testing.T, ready func(context.Context) error, extra func(*Server)) *testServer {
	t.Helper()
	logs := &logbuf.Buffer{}
	ln, url := listenLocal(t)
	s := New(HTTPConfig{Addr: ln.Addr().String(), PublicURL: url, ShutdownTimeout: 5 * time.Second}, Deps{
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Ready:  ready,
	})
	if extra != nil {
		extra(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{Server: s, url: url, logs: logs}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (ts *testServer) do(t *testing.T, method, path string, body io.Reader) result {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, ts.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

func decodeError(t *testing.T, r result) ErrorBody {
	t.Helper()
	var e ErrorResponse
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("body %q is not the error shape: %v", r.body, err)
	}
	return e.Error
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	down := errors.New("dial tcp 10.0.0.5:5432: connection refused")
	tests := []struct {
		name       string
		ready      func(context.Context) error
		path       string
		wantStatus int
		wantBody   any
	}{
		{"healthz", nil, "/healthz", 200, map[string]any{"status": "ok"}},
		{"healthz while store down", func(context.Context) error { return down }, "/healthz", 200, map[string]any{"status": "ok"}},
		{"readyz ok", func(context.Context) error { return nil }, "/readyz", 200, map[string]any{"status": "ok"}},
		{"readyz failing", func(context.Context) error { return down }, "/readyz", 503, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := start(t, tt.ready, nil)
			r := ts.do(t, http.MethodGet, tt.path, nil)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantBody != nil {
				var got map[string]any
				if err := json.Unmarshal(r.body, &got); err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.wantBody) {
					t.Errorf("body %v, want %v", got, tt.wantBody)
				}
				return
			}
			e := decodeError(t, r)
			if e.Code != "not_ready" || e.RequestID == "" {
				t.Errorf("error body %+v", e)
			}
			if strings.Contains(string(r.body), "10.0.0.5") {
				t.Error("readiness detail leaked to the client")
			}
			if !strings.Contains(ts.logs.String(), "connection refused") {
				t.Error("readiness detail not logged")
			}
		})
	}
}

func TestErrorShapes(t *testing.T) {
	t.Parallel()
	ts := start(t, nil, func(s *Server) {
		s.echo.GET("/test/boom", func(echo.Context) error { return errors.New("secret internal detail") })
		s.echo.GET("/test/panic", func(echo.Context) error { panic("kaboom") })
		s.echo.GET("/test/invalid", func(echo.Context) error {
			return store.Invalid("name", "must not be empty")
		})
		s.echo.GET("/test/missing", func(echo.Context) error {
			return fmt.Errorf("get device %q: %w", "d1", store.ErrNotFound)
		})
		s.echo.GET("/test/conflict", func(echo.Context) error { return store.ErrConflict })
		s.echo.POST("/test/echo", func(c echo.Context) error {
			if _, err := io.Copy(io.Discard, c.Request().Body); err != nil {
				return err
			}
			return c.NoContent(http.StatusNoContent)
		})
	})
	big := strings.Repeat("x", DefaultBodyLimit+1)
	tests := []struct {
		name       string
		method     string
		path       string
		body       io.Reader
		wantStatus int
		wantCode   string
		wantFields map[string]string
	}{
		{"unknown route", "GET", "/no/such/thing", nil, 404, "not_found", nil},
		{"wrong method", "DELETE", "/healthz", nil, 405, "method_not_allowed", nil},
		{"unknown error", "GET", "/test/boom", nil, 500, "internal", nil},
		{"panic", "GET", "/test/panic", nil, 500, "internal", nil},
		{"validation", "GET", "/test/invalid", nil, 422, "validation_failed", map[string]string{"name": "must not be empty"}},
		{"store not found", "GET", "/test/missing", nil, 404, "not_found", nil},
		{"store conflict", "GET", "/test/conflict", nil, 409, "conflict", nil},
		{"body too large (declared)", "POST", "/test/echo", strings.NewReader(big), 413, "payload_too_large", nil},
		{"body too large (streamed)", "POST", "/test/echo", io.MultiReader(strings.NewReader(big)), 413, "payload_too_large", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := ts.do(t, tt.method, tt.path, tt.body)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			e := decodeError(t, r)
			if e.Code != tt.wantCode {
				t.Errorf("code %q, want %q", e.Code, tt.wantCode)
			}
			if e.Message == "" {
				t.Error("empty message")
			}
			if e.RequestID == "" || e.RequestID != r.header.Get("X-Request-ID") {
				t.Errorf("request ID %q, header %q", e.RequestID, r.header.Get("X-Request-ID"))
			}
			if fmt.Sprint(e.Fields) != fmt.Sprint(tt.wantFields) {
				t.Errorf("fields %v, want %v", e.Fields, tt.wantFields)
			}
			if strings.Contains(string(r.body), "secret internal detail") || strings.Contains(string(r.body), "kaboom") {
				t.Errorf("internal detail leaked: %s", r.body)
			}
			if tt.wantStatus == 500 && !strings.Contains(ts.logs.String(), e.RequestID) {
				t.Error("500 not logged with its request ID")
			}
		})
	}
}

func TestPanicIsLoggedWithStack(t *testing.T) {
	t.Parallel()
	ts := start(t, nil, func(s *Server) {
		s.echo.GET("/test/panic", func(echo.Context) error { panic("kaboom") })
	})
	r := ts.do(t, "GET", "/test/panic", nil)
	if r.status != 500 {
		t.Fatalf("status %d", r.status)
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, "kaboom") || !strings.Contains(logs, "goroutine") {
		t.Errorf("panic or stack not logged:\n%s", logs)
	}
	// The server keeps serving.
	if r := ts.do(t, "GET", "/healthz", nil); r.status != 200 {
		t.Errorf("after panic: status %d", r.status)
	}
}

func TestRequestIDFromProxy(t *testing.T) {
	t.Parallel()
	ts := start(t, nil, nil)
	for _, tt := range []struct {
		in   string
		keep bool
	}{
		{"abc-123.proxy_1", true},
		{"bad id\nwith newline", false},
		{strings.Repeat("a", 65), false},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", ts.url+"/healthz", nil)
		req.Header.Set("X-Request-ID", tt.in)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// A header with a newline cannot even be sent; nothing to check.
			continue
		}
		resp.Body.Close()
		got := resp.Header.Get("X-Request-ID")
		if (got == tt.in) != tt.keep || got == "" {
			t.Errorf("incoming %q → %q (keep=%v)", tt.in, got, tt.keep)
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	ts := start(t, nil, func(s *Server) {
		s.echo.GET("/test/devices/:id", func(c echo.Context) error { return c.NoContent(204) })
	})
	ts.do(t, "GET", "/healthz", nil)
	ts.do(t, "GET", "/test/devices/d1", nil)
	ts.do(t, "GET", "/test/devices/d2", nil)
	ts.do(t, "GET", "/nope", nil)

	r := ts.do(t, "GET", "/metrics", nil)
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	body := string(r.body)
	for _, want := range []string{
		"go_goroutines ",
		"process_resident_memory_bytes ",
		`espadmin_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`espadmin_http_requests_total{method="GET",route="/test/devices/:id",status="204"} 2`,
		`espadmin_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`espadmin_http_request_duration_seconds_count{method="GET",route="/test/devices/:id"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, "/test/devices/d1") || strings.Contains(body, `route="/nope"`) {
		t.Error("metrics labelled by raw path")
	}
}

func TestMount(t *testing.T) {
	t.Parallel()
	ts := start(t, nil, func(s *Server) {
		s.mount("/blobs/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Path", r.URL.Path)
			http.Error(w, "mounted", http.StatusTeapot)
		}))
	})
	for _, p := range []string{"/blobs/a", "/blobs/firmware/v-1.0.0.bin"} {
		r := ts.do(t, "GET", p, nil)
		if r.status != http.StatusTeapot || r.header.Get("X-Path") != p {
			t.Errorf("%s: status %d, path %q", p, r.status, r.header.Get("X-Path"))
		}
	}
	if r := ts.do(t, "GET", "/blobsx", nil); r.status != 404 {
		t.Errorf("/blobsx: status %d", r.status)
	}
}

func TestTimeoutsSet(t *testing.T) {
	t.Parallel()
	s := New(HTTPConfig{Addr: "127.0.0.1:0"}, Deps{})
	h := s.http
	if h.ReadHeaderTimeout == 0 || h.ReadTimeout == 0 || h.WriteTimeout == 0 || h.IdleTimeout == 0 {
		t.Errorf("timeouts not all set: %+v", h)
	}
}

// TestShutdownDeadline shows Shutdown returns the deadline error, and Serve still returns
// cleanly, when an in-flight request outlives the deadline.
func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{})
	ts := New(HTTPConfig{Addr: "127.0.0.1:0"}, Deps{})
	ts.echo.GET("/slow", func(c echo.Context) error {
		close(entered)
		<-release
		return c.NoContent(204)
	})
	ln, _ := listenLocal(t)
	served := make(chan error, 1)
	go func() { served <- ts.Serve(ln) }()
	reqDone := make(chan struct{})
	go func() {
		defer close(reqDone)
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("shutdown with stuck request: %v", err)
	}
	close(release)
	<-reqDone
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
}
