package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/store"
)

// decodeJSON reads the request body into v strictly: the body must be one JSON value with
// Content-Type application/json; unknown fields and malformed JSON are 400; a value of the
// wrong type is 422 naming the field; an oversized body is 413 (BodyLimit). Text the store
// cannot keep as sent is refused too (input.go): invalid UTF-8 is 400 invalid_utf8, a NUL
// character in any string is 422 naming the field.
func decodeJSON(c echo.Context, v any) error {
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != echo.MIMEApplicationJSON {
			return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "send the body as application/json"}
		}
	}
	raw, err := readJSONBody(req.Body)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "body must hold exactly one JSON object"}
	}
	if field, ok := nulField(raw); ok {
		return store.Invalid(field, msgNUL)
	}
	return nil
}

func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "request body is empty; send a JSON object"}
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Status: http.StatusBadRequest, Code: "malformed_json", Message: "request body is not valid JSON"}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "request body must be a JSON object"}
		}
		return store.Invalid(field, "must be "+jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if u, uerr := strconv.Unquote(name); uerr == nil {
			name = u
		}
		return &Error{Status: http.StatusBadRequest, Code: "unknown_field", Message: fmt.Sprintf("unknown field %q", name)}
	}
	return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "cannot read request body"}
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "a number"
}

// accountError turns the account package's errors into API errors.
func accountError(err error) error {
	var rerr *account.RateLimitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rerr):
		return &rateLimited{retryAfter: rerr.RetryAfter}
	case errors.Is(err, account.ErrInvalidCredentials):
		return &Error{Status: http.StatusUnauthorized, Code: "invalid_credentials", Message: "invalid email or password"}
	case errors.Is(err, account.ErrSignupClosed):
		return &Error{Status: http.StatusForbidden, Code: "signup_closed", Message: err.Error()}
	case errors.Is(err, account.ErrEmailTaken):
		return &Error{Status: http.StatusConflict, Code: "email_taken", Message: err.Error()}
	case errors.Is(err, account.ErrInvalidToken):
		return &Error{Status: http.StatusForbidden, Code: "invalid_token", Message: err.Error()}
	case errors.Is(err, account.ErrSetupDone):
		return &Error{Status: http.StatusForbidden, Code: "setup_done", Message: err.Error()}
	case errors.Is(err, account.ErrUnauthenticated):
		return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: err.Error()}
	case errors.Is(err, account.ErrUnverifiedEmail):
		return &Error{Status: http.StatusConflict, Code: "email_unverified", Message: err.Error()}
	case errors.Is(err, account.ErrNoEmail):
		return &Error{Status: http.StatusBadRequest, Code: "no_email", Message: err.Error()}
	case errors.Is(err, account.ErrWrongPassword):
		return &Error{Status: http.StatusForbidden, Code: "wrong_password", Message: err.Error()}
	}
	return err
}

// rateLimited is a 429 with a Retry-After header.
type rateLimited struct{ retryAfter time.Duration }

func (e *rateLimited) Error() string { return "rate limited" }

// asHTTP writes the Retry-After header and returns the API error.
func (e *rateLimited) apply(c echo.Context) error {
	secs := int((e.retryAfter + time.Second - 1) / time.Second)
	c.Response().Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	return &Error{Status: http.StatusTooManyRequests, Code: "too_many_requests",
		Message: fmt.Sprintf("too many failed attempts; retry in %d seconds", max(secs, 1))}
}

// fail maps an account error and applies any response headers it needs.
func fail(c echo.Context, err error) error {
	err = accountError(err)
	var rl *rateLimited
	if errors.As(err, &rl) {
		return rl.apply(c)
	}
	return err
}

// Wire types of the accounts API.
type (
	userResponse struct {
		ID            string     `json:"id"`
		Email         string     `json:"email"`
		Name          string     `json:"name"`
		EmailVerified bool       `json:"email_verified"`
		HasPassword   bool       `json:"has_password"`
		LastLoginAt   *time.Time `json:"last_login_at,omitempty"`
		CreatedAt     time.Time  `json:"created_at"`
	}
	membershipResponse struct {
		TenantID   string `json:"tenant_id"`
		TenantSlug string `json:"tenant_slug"`
		TenantName string `json:"tenant_name"`
		Role       string `json:"role"`
	}
	meResponse struct {
		User        userResponse         `json:"user"`
		Memberships []membershipResponse `json:"memberships"`
		// CSRFToken is sent back in X-CSRF-Token on state-changing requests; only sessions
		// have one.
		CSRFToken string `json:"csrf_token,omitempty"`
		// Via is "session" or "token".
		Via string `json:"via"`
	}
	signupRequest struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		Name     string `json:"name"`
	}
	loginRequest struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	setupRequest struct {
		Token      string `json:"token"`
		Email      string `json:"email"`
		Password   string `json:"password"`
		Name       string `json:"name"`
		TenantName string `json:"tenant_name"`
		TenantSlug string `json:"tenant_slug"`
	}
	setupStatusResponse struct {
		Needed bool `json:"needed"`
	}
	forgotRequest struct {
		Email string `json:"email"`
	}
	resetRequest struct {
		Token    string `json:"token"`
		Password string `json:"password"`
	}
	verifyRequest struct {
		Token string `json:"token"`
	}
	changePasswordRequest struct {
		CurrentPassword string `json:"current_password"`
		NewPassword     string `json:"new_password"`
	}
	acceptedResponse struct {
		Status string `json:"status"`
	}
	providerResponse struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		LoginURL string `json:"login_url"`
	}
	providersResponse struct {
		Providers []providerResponse `json:"providers"`
		Signup    bool               `json:"signup_open"`
	}
)

func toUserResponse(u store.User) userResponse {
	return userResponse{
		ID: u.ID, Email: u.Email, Name: u.Name, EmailVerified: u.EmailVerified,
		HasPassword: u.PasswordHash != "", LastLoginAt: u.LastLoginAt, CreatedAt: u.CreatedAt,
	}
}
