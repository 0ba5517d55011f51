package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes registers the middleware and every route of the server. Keep all routes in this
// file so the API reads top to bottom.
func (s *Server) routes() {
	e := s.echo
	// Order matters: the request ID exists before anything logs; observe sees the final
	// status, including errors and recovered panics; the body limit applies to everything.
	e.Use(
		requestIDMiddleware,
		s.observeMiddleware,
		s.recoverMiddleware,
		BodyLimit(DefaultBodyLimit),
	)

	// Operations.
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.deps.Gatherer, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{s},
	})))
}

// Mount serves h for every method and every path under prefix (which must end in "/"), with
// the request path unchanged. It is how other packages' handlers join the server, for
// example the local blob store's signed downloads at /blobs/. Call it before serving.
func (s *Server) Mount(prefix string, h http.Handler) {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	s.echo.Any(prefix+"*", echo.WrapHandler(h))
}

type healthResponse struct {
	Status string `json:"status"`
}

// healthz answers while the process is alive; it checks nothing else, so an orchestrator
// restarts the process only when it is truly stuck.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, healthResponse{Status: "ok"})
}

// readyz answers 200 when the server can do useful work (the store answers) and 503 in the
// usual error shape otherwise, so load balancers stop sending traffic to it.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
	defer cancel()
	if err := s.deps.Ready(ctx); err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "not_ready", Message: "not ready", Err: err}
	}
	return c.JSON(http.StatusOK, healthResponse{Status: "ok"})
}

// slogPrinter adapts the server logger to promhttp's error log.
type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) {
	p.s.log.Error("metrics handler", "error", strings.TrimSpace(fmt.Sprintln(v...)))
}
