package server

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/ui"
)

// ErrorResponse is the one JSON shape of every error the server returns.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody describes one error. Code is stable and meant for programs; Message is for people.
type ErrorBody struct {
	Code      string            `json:"code"`
	Message   string            `json:"message"`
	Fields    map[string]string `json:"fields,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
}

// Error is an error a handler returns to choose the status, code and message the client
// sees. Err, when set, is the underlying cause: it is logged, never sent.
type Error struct {
	Status  int
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// unavailableRetryAfter is the Retry-After, in seconds, of a 503 answered while the database is
// unavailable.
const unavailableRetryAfter = 5

// codes maps HTTP statuses to the stable codes of ErrorBody.
var codes = map[int]string{
	http.StatusBadRequest:            "bad_request",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "payload_too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusUnprocessableEntity:   "validation_failed",
	http.StatusTooManyRequests:       "too_many_requests",
	http.StatusServiceUnavailable:    "unavailable",
	http.StatusInternalServerError:   "internal",
}

func codeFor(status int) string {
	if c, ok := codes[status]; ok {
		return c
	}
	if status >= 500 {
		return "internal"
	}
	return strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
}

// isPagePath reports whether a GET is a browser's, for the web UI rather than the API or a
// machine endpoint: those, and every client that does not ask for HTML, keep the JSON error
// shape.
func isPagePath(r *http.Request) bool {
	if r.Method != http.MethodGet || !strings.Contains(r.Header.Get("Accept"), "text/html") {
		return false
	}
	p := r.URL.Path
	for _, prefix := range []string{"/api/", "/healthz", "/readyz", "/metrics", "/static/"} {
		if strings.HasPrefix(p, prefix) || p == strings.TrimSuffix(prefix, "/") {
			return false
		}
	}
	return true
}

// renderErrorPage answers a page request that failed with the UI's error page.
func (s *Server) renderErrorPage(c echo.Context, status int, body ErrorBody) error {
	msg := map[int]string{
		http.StatusNotFound:  "There is no page at this address. Check the address, or start again from the start page.",
		http.StatusForbidden: "You may not see this page.",
	}[status]
	if msg == "" {
		msg = body.Message
		if body.RequestID != "" && status >= 500 {
			msg += " (request ID " + body.RequestID + ")"
		}
	}
	title := http.StatusText(status)
	if status == http.StatusNotFound {
		title = "Page not found"
	}
	setPageHeaders(c.Response().Header())
	b := anonymousBase(title)
	if k, err := s.uiCallerOf(c); err == nil && k != nil {
		b = k.base(title)
	}
	return s.render(c, status, "error", &ui.ErrorView{Base: b, Status: status, Message: msg})
}

// handleError is echo's HTTPErrorHandler: the only place an error becomes a response.
// Unknown errors become a 500 with a generic message and the request ID; their detail goes to
// the log only.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		s.log.Warn("error after response started", "request_id", requestID(c), "error", err)
		return
	}
	body := ErrorBody{RequestID: requestID(c)}
	status := http.StatusInternalServerError

	var (
		apiErr *Error
		valErr *store.InvalidError
		httpEr *echo.HTTPError
	)
	switch {
	case errors.As(err, &apiErr):
		status, body.Code, body.Message = apiErr.Status, apiErr.Code, apiErr.Message
		if body.Code == "" {
			body.Code = codeFor(status)
		}
	case errors.As(err, &valErr):
		// Bad input from any package: one response shape, 422 with the field errors.
		status, body.Code, body.Message, body.Fields = http.StatusUnprocessableEntity, cmp.Or(valErr.Code, "validation_failed"), cmp.Or(valErr.Message, "invalid input"), valErr.Fields
	case errors.As(err, &httpEr):
		status, body.Code = httpEr.Code, codeFor(httpEr.Code)
		body.Message = fmt.Sprint(httpEr.Message)
		if body.Message == http.StatusText(status) {
			body.Message = strings.ToLower(body.Message)
		}
	case errors.As(err, new(*http.MaxBytesError)):
		status, body.Code, body.Message = http.StatusRequestEntityTooLarge, "payload_too_large", "request body too large"
	case errors.Is(err, store.ErrNotFound):
		status, body.Code, body.Message = http.StatusNotFound, "not_found", "not found"
	case errors.Is(err, store.ErrConflict):
		status, body.Code, body.Message = http.StatusConflict, "conflict", "conflicts with existing data"
	case errors.Is(err, store.ErrUnavailable):
		// The database is down or not answering: a client should retry, as /readyz says.
		status, body.Code, body.Message = http.StatusServiceUnavailable, "unavailable", "the database is unavailable; retry later"
		c.Response().Header().Set("Retry-After", strconv.Itoa(unavailableRetryAfter))
	default:
		body.Code, body.Message = "internal", "internal error; quote the request ID when reporting it"
	}
	if status >= 500 {
		level := slog.LevelWarn // 503 and friends: a dependency is down, not a bug
		if status == http.StatusInternalServerError {
			level = slog.LevelError
		}
		s.log.Log(c.Request().Context(), level, "request failed", "request_id", body.RequestID,
			"method", c.Request().Method, "path", c.Request().URL.Path, "status", status, "error", err)
		if body.Code == "internal" {
			body.Message = "internal error; quote the request ID when reporting it"
		}
	}

	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(status)
	} else if isPagePath(c.Request()) && s.ui != nil {
		// A person's browser asked for a page (a mistyped address): answer with a page, not
		// the API's JSON.
		werr = s.renderErrorPage(c, status, body)
	} else {
		werr = c.JSON(status, ErrorResponse{Error: body})
	}
	if werr != nil {
		s.log.Debug("write error response", "request_id", body.RequestID, "error", werr)
	}
}
