package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
)

// The device authentication endpoints let an external broker check device credentials and
// topics against the store, so that a tenant's Mosquitto (with mosquitto-go-auth's HTTP
// backend) or EMQX (HTTP authentication) confines devices exactly like the embedded broker:
// the username is the device ID, the password its secret, the client ID must be the device
// ID, and topics follow protocol.DeviceMay… under the tenant's topic root.
//
// They are answered only when mqtt.auth_secret is set, and only to a caller presenting it
// (header X-ESPAdmin-Auth-Secret, the password of HTTP basic auth, or the query parameter
// secret for brokers that cannot send headers).
const (
	// AuthSecretHeader carries the shared secret of the device authentication endpoints.
	AuthSecretHeader = "X-ESPAdmin-Auth-Secret"

	// deviceAuthRate and deviceAuthBurst bound the requests per second the endpoints answer
	// (a broker in a reconnect storm, or someone guessing the secret); beyond them 429.
	deviceAuthRate  = 500
	deviceAuthBurst = 1000
	// deviceAuthFailures is how many wrong passwords one device ID may see per
	// deviceAuthWindow before every attempt is denied unchecked until the window ends.
	deviceAuthFailures = 10
	deviceAuthWindow   = time.Minute
	// deviceAuthMaxTracked bounds the failure table; it is cleared when full.
	deviceAuthMaxTracked = 100000
	deviceAuthTimeout    = 5 * time.Second
)

// deviceAuthSentinel is compared against when a device does not exist, so an unknown device
// costs the same as a wrong secret.
var deviceAuthSentinel = sha256.Sum256([]byte("espadmin: no such device"))

// deviceAuthRequest is what brokers send: EMQX a JSON body, mosquitto-go-auth JSON or a form.
type deviceAuthRequest struct {
	Username string `json:"username" form:"username"`
	Password string `json:"password,omitempty" form:"password"`
	ClientID string `json:"clientid,omitempty" form:"clientid"`
	Topic    string `json:"topic,omitempty" form:"topic"`
	Acc      int    `json:"acc,omitempty" form:"acc" doc:"mosquitto-go-auth access: 1 read, 2 write, 3 read and write, 4 subscribe"`
}

// emqxAuthResponse is EMQX's HTTP authentication answer.
type emqxAuthResponse struct {
	Result string `json:"result" doc:"allow or deny"`
}

// deviceAuthLimiter is a token bucket for the whole endpoint plus a failure count per
// device ID.
type deviceAuthLimiter struct {
	rate     *rate.Limiter
	mu       sync.Mutex
	failures map[string]authFailures
}

type authFailures struct {
	count int
	since time.Time
}

func newDeviceAuthLimiter() *deviceAuthLimiter {
	return &deviceAuthLimiter{rate: rate.NewLimiter(deviceAuthRate, deviceAuthBurst), failures: map[string]authFailures{}}
}

// allow takes a token at now (the server's clock, so tests can move it); false means over
// the rate.
func (l *deviceAuthLimiter) allow(now time.Time) bool { return l.rate.AllowN(now, 1) }

// blocked reports whether id has used up its failures in the current window.
func (l *deviceAuthLimiter) blocked(id string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.failures[id]
	if ok && now.Sub(f.since) >= deviceAuthWindow {
		delete(l.failures, id)
		return false
	}
	return ok && f.count >= deviceAuthFailures
}

// fail counts a wrong password for id.
func (l *deviceAuthLimiter) fail(id string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) >= deviceAuthMaxTracked {
		l.failures = map[string]authFailures{}
	}
	f := l.failures[id]
	if f.count == 0 || now.Sub(f.since) >= deviceAuthWindow {
		f = authFailures{since: now}
	}
	f.count++
	l.failures[id] = f
}

// deviceAuthGuard checks the shared secret and the rate before a device auth handler.
func (s *Server) deviceAuthGuard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.deps.MQTTAuthSecret == "" {
			return &Error{Status: http.StatusNotFound, Code: "not_found", Message: "device authentication for external brokers is not enabled (mqtt.auth_secret)"}
		}
		if !s.deviceAuth.allow(s.now()) {
			return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: "too many requests"}
		}
		req := c.Request()
		presented := req.Header.Get(AuthSecretHeader)
		if presented == "" {
			if _, p, ok := req.BasicAuth(); ok {
				presented = p
			}
		}
		if presented == "" {
			presented = req.URL.Query().Get("secret")
		}
		got, want := sha256.Sum256([]byte(presented)), sha256.Sum256([]byte(s.deps.MQTTAuthSecret))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "the shared secret is missing or wrong"}
		}
		return next(c)
	}
}

// bindDeviceAuth reads a JSON or form body.
func bindDeviceAuth(c echo.Context) (deviceAuthRequest, error) {
	var r deviceAuthRequest
	req := c.Request()
	mt, _, _ := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if mt == echo.MIMEApplicationJSON {
		// Lenient: brokers may send fields we do not use (ip, protocol, …).
		if err := (&echo.DefaultBinder{}).BindBody(c, &r); err != nil {
			return r, &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "malformed JSON body"}
		}
		return r, nil
	}
	if err := req.ParseForm(); err != nil {
		return r, &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "malformed form body"}
	}
	r.Username, r.Password, r.ClientID, r.Topic = req.PostForm.Get("username"), req.PostForm.Get("password"), req.PostForm.Get("clientid"), req.PostForm.Get("topic")
	if acc := req.PostForm.Get("acc"); acc != "" {
		n, err := strconv.Atoi(acc)
		if err != nil {
			return r, store.Invalid("acc", "must be 1, 2, 3 or 4")
		}
		r.Acc = n
	}
	return r, nil
}

// checkDevicePassword reports whether username/password/clientID are a device's valid,
// enabled credentials: the secret's SHA-256 compared in constant time, an unknown device
// compared against a sentinel so it costs the same.
func (s *Server) checkDevicePassword(ctx context.Context, r deviceAuthRequest) (bool, error) {
	if !protocol.ValidDeviceID(r.Username) || (r.ClientID != "" && r.ClientID != r.Username) {
		return false, nil
	}
	now := s.now()
	if s.deviceAuth.blocked(r.Username, now) {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, deviceAuthTimeout)
	defer cancel()
	a, err := s.deps.Store.DeviceAuth(ctx, r.Username)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	want := deviceAuthSentinel[:]
	if found && len(a.SecretHash) == sha256.Size {
		want = a.SecretHash
	}
	sum := sha256.Sum256([]byte(r.Password))
	ok := subtle.ConstantTimeCompare(sum[:], want) == 1 && found
	if !ok {
		s.deviceAuth.fail(r.Username, now)
		return false, nil
	}
	return !a.Disabled, nil
}

// emqxAuth serves POST /api/v1/mqtt/auth, EMQX's HTTP authentication: always 200 with
// {"result":"allow"} or {"result":"deny"} (a non-200 would make EMQX fall through to its
// next authenticator).
func (s *Server) emqxAuth(c echo.Context) error {
	r, err := bindDeviceAuth(c)
	if err != nil {
		return err
	}
	ok, err := s.checkDevicePassword(c.Request().Context(), r)
	if err != nil {
		return err
	}
	result := "deny"
	if ok {
		result = "allow"
	}
	return c.JSON(http.StatusOK, emqxAuthResponse{Result: result})
}

// goAuthUser serves POST /api/v1/mqtt/user, mosquitto-go-auth's HTTP user check (response
// mode status): 200 allows, 403 denies.
func (s *Server) goAuthUser(c echo.Context) error {
	r, err := bindDeviceAuth(c)
	if err != nil {
		return err
	}
	ok, err := s.checkDevicePassword(c.Request().Context(), r)
	if err != nil {
		return err
	}
	return allowOrForbid(c, ok)
}

// goAuthSuperuser serves POST /api/v1/mqtt/superuser: no device is a superuser, so always
// 403, and mosquitto-go-auth goes on to the ACL check.
func (s *Server) goAuthSuperuser(c echo.Context) error {
	return c.NoContent(http.StatusForbidden)
}

// goAuthACL serves POST /api/v1/mqtt/acl, mosquitto-go-auth's HTTP ACL check: the device
// must exist and be enabled, and the topic must pass protocol.DeviceMay… under its
// tenant's topic root for the access asked (acc 1 read, 2 write, 3 both, 4 subscribe).
func (s *Server) goAuthACL(c echo.Context) error {
	r, err := bindDeviceAuth(c)
	if err != nil {
		return err
	}
	if !protocol.ValidDeviceID(r.Username) || (r.ClientID != "" && r.ClientID != r.Username) {
		return allowOrForbid(c, false)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), deviceAuthTimeout)
	defer cancel()
	a, err := s.deps.Store.DeviceAuth(ctx, r.Username)
	if errors.Is(err, store.ErrNotFound) {
		return allowOrForbid(c, false)
	}
	if err != nil {
		return err
	}
	if a.Disabled {
		return allowOrForbid(c, false)
	}
	root := protocol.DefaultRoot
	st, err := s.deps.Store.TenantSettings(ctx, a.TenantID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err == nil && st.Broker.Mode == store.BrokerExternal && st.Broker.TopicRoot != "" {
		root = st.Broker.TopicRoot
	}
	var ok bool
	switch r.Acc {
	case 1:
		ok = protocol.DeviceMayReceive(root, r.Username, r.Topic)
	case 2:
		// The retain flag is not part of the request: allow the kinds a device may publish;
		// the retain rule (status only) is the broker configuration's to enforce.
		ok = protocol.DeviceMayPublish(root, r.Username, r.Topic, false)
	case 3:
		ok = protocol.DeviceMayReceive(root, r.Username, r.Topic) && protocol.DeviceMayPublish(root, r.Username, r.Topic, false)
	case 4:
		ok = protocol.DeviceMaySubscribe(root, r.Username, r.Topic)
	}
	return allowOrForbid(c, ok)
}

// allowOrForbid is mosquitto-go-auth's status response mode.
func allowOrForbid(c echo.Context, ok bool) error {
	if ok {
		return c.NoContent(http.StatusOK)
	}
	return c.NoContent(http.StatusForbidden)
}
