package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/server/alerts"
	"github.com/espadmin/espadmin/server/mail"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
	"github.com/espadmin/espadmin/store/sqlstore"
	"github.com/espadmin/espadmin/tests/testkit/logbuf"
	"github.com/espadmin/espadmin/tests/testkit/testclock"
)

// testPassword is the password createUser gives users.
const testPassword = "correct horse battery"

// cheapHash keeps argon2id fast in tests; production uses account.DefaultHashParams.
var cheapHash = account.HashParams{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// harnessOptions change what newHarness builds.
type harnessOptions struct {
	accounts AccountsConfig
	oauth    OAuthConfig
	noMailer bool
	broker   bool   // run the embedded MQTT broker and ingestion (devices_harness_test.go)
	dbURL    string // the database; empty means a fresh SQLite file
	// s3Firmware keeps firmware in gofakes3 instead of a local folder (release_harness_test.go).
	s3Firmware bool
	// publicBrokersOnly keeps the product's default of refusing tenants' brokers on private
	// addresses; the harness allows them by default, since test brokers listen on loopback.
	publicBrokersOnly bool
}

// harnessOption is an option of newHarness.
type harnessOption func(*harnessOptions)

// withSignupOpen opens sign-up (closed by default, like the product).
func withSignupOpen() harnessOption {
	return func(o *harnessOptions) { o.accounts.Signup = SignupOpen }
}

// withOAuth enables OAuth providers.
func withOAuth(cfg OAuthConfig) harnessOption {
	return func(o *harnessOptions) { o.oauth = cfg }
}

// withPublicBrokersOnly refuses tenants' brokers on private, loopback and link-local
// addresses, as a server does unless mqtt.bridge_allow_private is set.
func withPublicBrokersOnly() harnessOption {
	return func(o *harnessOptions) { o.publicBrokersOnly = true }
}

// withoutMailer runs the server as if SMTP were not configured.
func withoutMailer() harnessOption {
	return func(o *harnessOptions) { o.noMailer = true }
}

// withDatabase runs the server on the database at url instead of a fresh SQLite file.
func withDatabase(url string) harnessOption {
	return func(o *harnessOptions) { o.dbURL = url }
}

// harness is a real server on 127.0.0.1:0 with a fresh migrated SQLite database, a capturing
// mailer, a keyring and a clock the test controls.
type harness struct {
	t        *testing.T
	dbURL    string
	st       store.Store
	mail     *mail.Capture
	clock    *testclock.Clock
	keyring  *seal.Keyring
	stateKey []byte
	opts     harnessOptions
	srv      *Server
	url      string
	logs     *logbuf.Buffer
	// fleet holds the device services of the server started last (devices_harness_test.go).
	fleet *testFleet
}

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	o := harnessOptions{accounts: AccountsConfig{
		Signup: SignupClosed, SessionIdleTimeout: 24 * time.Hour,
		SessionMaxAge: 30 * 24 * time.Hour, ResetLinkTTL: time.Hour,
	}}
	for _, opt := range opts {
		opt(&o)
	}
	master := bytes.Repeat([]byte{7}, seal.KeySize)
	kr, err := seal.NewKeyring(master)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t:        t,
		dbURL:    "sqlite://" + filepath.ToSlash(filepath.Join(t.TempDir(), "espadmin.db")),
		mail:     &mail.Capture{},
		clock:    testclock.New(),
		keyring:  kr,
		stateKey: seal.DeriveKey(master, "oauth-state"),
		opts:     o,
	}
	if o.dbURL != "" {
		h.dbURL = o.dbURL
	}
	h.st = h.openStore()
	if _, err := h.st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.srv, h.url, h.logs = h.startServer(h.st)
	return h
}

func (h *harness) openStore() store.Store {
	h.t.Helper()
	st, err := sqlstore.Open(context.Background(), h.dbURL, sqlstore.Options{})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { st.Close() })
	return st
}

// shutdownDeadline bounds the harness server's shutdown at the end of a test.
const shutdownDeadline = 60 * time.Second

// startServer serves a new Server on st and stops it when the test ends.
func (h *harness) startServer(st store.Store) (*Server, string, *logbuf.Buffer) {
	h.t.Helper()
	logs := &logbuf.Buffer{}
	var mailer mail.Sender = h.mail
	if h.opts.noMailer {
		mailer = nil
	}
	ln, url := listenLocal(h.t)
	fl := h.startFleet(st, url)
	h.fleet = fl
	s := New(HTTPConfig{Addr: ln.Addr().String(), PublicURL: url, ShutdownTimeout: 5 * time.Second}, Deps{
		Logger:       slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Store:        st,
		Keyring:      h.keyring,
		Mailer:       mailer,
		Now:          h.clock.Now,
		Accounts:     h.opts.accounts,
		OAuth:        h.opts.oauth,
		StateKey:     h.stateKey,
		PasswordHash: cheapHash,
		Devices:      fl.devices,
		Commands:     fl.commands,
		Events:       fl.hub,
		Config:       fl.config,
		OTA:          fl.ota.svc,
		CoreDumps:    fl.coreDumps,
		Regroup:      fl.regroup,
		Mounts:       fl.ota.mounts(),
		Alerts:       alerts.NewService(alerts.ServiceOptions{Store: st, Keyring: h.keyring, AllowPrivate: !h.opts.publicBrokersOnly, PublicURL: url}),

		BrokerAllowPrivate: !h.opts.publicBrokersOnly,
	})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	h.t.Cleanup(func() {
		// Shutdown waits for requests in flight (a device's firmware download) to finish;
		// on a loaded 2-core machine that takes longer than on an idle one. A server that
		// really hangs still fails the test, after this generous deadline.
		ctx, cancel := context.WithTimeout(context.Background(), shutdownDeadline)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			h.t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			h.t.Errorf("serve: %v", err)
		}
	})
	return s, url, logs
}

// listenLocal listens on a free loopback port, as the process listens before it builds the
// server, and returns the listener and the server's URL on it. The listener is closed when
// the test ends, if the server did not close it.
func listenLocal(t testing.TB) (net.Listener, string) {
	t.Helper()
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, "http://" + ln.Addr().String()
}

// secondServer starts another replica on the same database (its own connections), to show
// that nothing the API needs lives in one process.
func (h *harness) secondServer() *harness {
	h.t.Helper()
	h2 := *h
	h2.st = h.openStore()
	h2.srv, h2.url, h2.logs = h.startServer(h2.st)
	return &h2
}

// accounts is the account service of the first server.
func (h *harness) accounts() *account.Service { return h.srv.accounts }

// createUser makes a user with testPassword straight through the account service, and a
// membership with role in tenantSlug (created when new) unless tenantSlug is empty.
func (h *harness) createUser(t *testing.T, email, tenantSlug string, role store.Role) store.User {
	t.Helper()
	if tenantSlug == "" {
		u, err := h.accounts().CreateUser(t.Context(), account.SignupInput{Email: email, Password: testPassword})
		if err != nil {
			t.Fatalf("create user %s: %v", email, err)
		}
		return u
	}
	u, _, _, err := h.accounts().AddToTenant(t.Context(), account.SignupInput{Email: email, Password: testPassword}, tenantSlug, "", role)
	if err != nil {
		t.Fatalf("create user %s in %s: %v", email, tenantSlug, err)
	}
	return u
}

// signupUser returns a logged-in client for a new user with password (created through the
// store when sign-up is closed, through the API when open).
func (h *harness) signupUser(t *testing.T, email, password string) *apiClient {
	t.Helper()
	c := h.newClient()
	if h.opts.accounts.SignupOpen() {
		if st, resp := c.do("POST", "/api/v1/auth/signup", map[string]any{"email": email, "password": password}); st != http.StatusCreated {
			t.Fatalf("signup %s: %d %v", email, st, resp)
		}
		return c
	}
	if _, err := h.accounts().CreateUser(t.Context(), account.SignupInput{Email: email, Password: password}); err != nil {
		t.Fatalf("create user %s: %v", email, err)
	}
	if st, resp := c.do("POST", "/api/v1/auth/login", map[string]any{"email": email, "password": password}); st != http.StatusOK {
		t.Fatalf("login %s: %d %v", email, st, resp)
	}
	return c
}

// login returns a client logged in as email with testPassword.
func (h *harness) login(t *testing.T, email string) *apiClient {
	t.Helper()
	c := h.newClient()
	if st, resp := c.do("POST", "/api/v1/auth/login", map[string]any{"email": email, "password": testPassword}); st != http.StatusOK {
		t.Fatalf("login %s: %d %v", email, st, resp)
	}
	return c
}

// apiToken creates an API token in tenantSlug: personal for userEmail, or a tenant token
// when userEmail is empty.
func (h *harness) apiToken(t *testing.T, userEmail, tenantSlug string, scopes ...string) string {
	t.Helper()
	ctx := t.Context()
	tn, err := h.st.TenantBySlug(ctx, tenantSlug)
	if err != nil {
		t.Fatalf("tenant %s: %v", tenantSlug, err)
	}
	in := account.NewAPIToken{TenantID: tn.ID, Name: "test token", Scopes: scopes}
	if userEmail != "" {
		u, err := h.st.UserByEmail(ctx, strings.ToLower(userEmail))
		if err != nil {
			t.Fatalf("user %s: %v", userEmail, err)
		}
		in.UserID, in.CreatedBy = u.ID, u.ID
	}
	tok, err := h.accounts().CreateAPIToken(ctx, in)
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return tok.Token
}

// apiClient is one browser or script: its own cookie jar, and the CSRF token or bearer
// token it sends.
type apiClient struct {
	t      *testing.T
	base   string
	http   *http.Client
	csrf   string
	bearer string
	// last holds the headers of the latest response.
	last http.Header
}

func (h *harness) newClient() *apiClient {
	jar, _ := cookiejar.New(nil)
	return &apiClient{t: h.t, base: h.url, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// tokenClient is a client that authenticates with a bearer token only.
func (h *harness) tokenClient(token string) *apiClient {
	c := h.newClient()
	c.bearer = token
	return c
}

// on returns a client sharing c's cookies and tokens but talking to another server.
func (c *apiClient) on(h *harness) *apiClient {
	cp := *c
	cp.base = h.url
	return &cp
}

// do sends body as JSON (a string or []byte is sent as is; nil sends no body) and decodes
// the JSON answer. It sends X-CSRF-Token when it has one and remembers the csrf_token of
// responses.
func (c *apiClient) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	case io.Reader:
		r = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.csrf != "" {
		req.Header.Set(csrfHeader, c.csrf)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	c.last = resp.Header
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			c.t.Fatalf("%s %s: status %d, body is not a JSON object: %q", method, path, resp.StatusCode, raw)
		}
	}
	if tok, ok := out["csrf_token"].(string); ok && tok != "" {
		c.csrf = tok
	}
	return resp.StatusCode, out
}

// errCode returns the error code of an error-shaped response, failing when it has none.
func errCode(t *testing.T, resp map[string]any) string {
	t.Helper()
	e, ok := resp["error"].(map[string]any)
	if !ok {
		t.Fatalf("response is not the error shape: %v", resp)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("error without message: %v", resp)
	}
	if rid, _ := e["request_id"].(string); rid == "" {
		t.Errorf("error without request ID: %v", resp)
	}
	code, _ := e["code"].(string)
	return code
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
