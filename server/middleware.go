package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// unmatchedRoute labels requests that matched no route, so scanners probing random paths
// cannot blow up the metrics' label cardinality.
const unmatchedRoute = "unmatched"

// validRequestID accepts a request ID set by a trusted proxy; anything else is replaced, so a
// client cannot inject text into logs through the header.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

const requestIDKey = "request_id"

// requestIDMiddleware gives every request an ID, echoed in the X-Request-ID response header,
// in every log line about the request and in error responses.
func requestIDMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID.MatchString(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(requestIDKey, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

// routeOf returns the route pattern (/devices/:id) rather than the raw path.
func routeOf(c echo.Context) string {
	if p := c.Path(); p != "" {
		return p
	}
	return unmatchedRoute
}

// recoverMiddleware turns a panic in a handler into an error, so the client gets the usual
// 500 shape and the stack goes to the log. http.ErrAbortHandler keeps its meaning (abort the
// response silently).
func (s *Server) recoverMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			if r == http.ErrAbortHandler {
				panic(r)
			}
			stack := make([]byte, 8<<10)
			stack = stack[:runtime.Stack(stack, false)]
			s.log.Error("handler panicked", "request_id", requestID(c), "panic", fmt.Sprint(r), "stack", string(stack))
			err = fmt.Errorf("panic: %v", r)
		}()
		return next(c)
	}
}

// httpMetrics are the request metrics, labelled by route pattern.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espadmin_http_requests_total",
			Help: "HTTP requests handled, by method, route pattern and status code.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "espadmin_http_request_duration_seconds",
			Help:    "Time to handle HTTP requests, by method and route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	m.requests = register(reg, m.requests)
	m.duration = register(reg, m.duration)
	return m
}

// register registers c, or returns the identical collector already registered (a second
// server on the same registry shares the metrics instead of failing).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic("server: register metrics: " + err.Error())
	}
	return c
}

// observeMiddleware logs and measures each request. It hands a handler's error to the central
// error handler itself, so that the status it records is the one the client received.
func (s *Server) observeMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		elapsed := time.Since(start)
		status := c.Response().Status
		route := routeOf(c)
		method := c.Request().Method

		s.metrics.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
		s.metrics.duration.WithLabelValues(method, route).Observe(elapsed.Seconds())

		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case isProbe(route):
			level = slog.LevelDebug // probes every few seconds would drown the log
		}
		s.log.LogAttrs(c.Request().Context(), level, "http request",
			slog.String("request_id", requestID(c)),
			slog.String("method", method),
			slog.String("path", c.Request().URL.Path),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Int64("bytes", c.Response().Size),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.String("remote_ip", c.RealIP()),
		)
		return nil
	}
}

func isProbe(route string) bool {
	return route == "/healthz" || route == "/readyz" || route == "/metrics"
}

// BodyLimit returns middleware that refuses request bodies larger than limit bytes with 413.
// A declared Content-Length over the limit is refused before the handler runs; a body that
// grows past it while streaming fails the handler's read with *http.MaxBytesError, which the
// error handler also maps to 413. A route-level BodyLimit replaces the server-wide default,
// because the innermost MaxBytesReader is the one the handler reads.
func BodyLimit(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.ContentLength > limit {
				return echo.NewHTTPError(http.StatusRequestEntityTooLarge,
					fmt.Sprintf("request body larger than %d bytes", limit))
			}
			if req.Body != nil && req.Body != http.NoBody {
				req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
			}
			return next(c)
		}
	}
}

// routeBodyLimit is the server-wide body limit: DefaultBodyLimit, or the limit a route set
// with withBodyLimit (an upload route). It runs after routing, so it knows the route; a
// route-level BodyLimit alone could not raise the limit, because the server-wide reader
// would still stop the body at DefaultBodyLimit.
func (s *Server) routeBodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	def := BodyLimit(DefaultBodyLimit)(next)
	return func(c echo.Context) error {
		if limit, ok := s.bodyLimits[c.Request().Method+" "+c.Path()]; ok {
			return BodyLimit(limit())(next)(c)
		}
		return def(c)
	}
}

// withBodyLimit gives route r its own body limit, read at each request.
func (s *Server) withBodyLimit(r *echo.Route, limit func() int64) *echo.Route {
	s.bodyLimits[r.Method+" "+r.Path] = limit
	return r
}
