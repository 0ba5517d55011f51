package alerts

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/espadmin/espadmin/server/mail"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/netguard"
	"github.com/espadmin/espadmin/store/seal"
	"github.com/espadmin/espadmin/store/sqlstore"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// receiver is a local webhook endpoint that verifies every request with the Standard
// Webhooks library and answers 500 while failing is set.
type receiver struct {
	srv      *httptest.Server
	wh       *standardwebhooks.Webhook
	failing  atomic.Bool
	mu       sync.Mutex
	attempts []attempt
}

type attempt struct {
	id       string
	verified error
	body     []byte
	status   int
}

func newReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	must(t, err)
	r := &receiver{wh: wh}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		a := attempt{id: req.Header.Get("webhook-id"), verified: r.wh.Verify(body, req.Header), body: body, status: http.StatusOK}
		if r.failing.Load() {
			a.status = http.StatusInternalServerError
		}
		r.mu.Lock()
		r.attempts = append(r.attempts, a)
		r.mu.Unlock()
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, `{"received":true,"status":`+http.StatusText(a.status)+`}`)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) seen() []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]attempt(nil), r.attempts...)
}

func testKeyring(t testing.TB) *seal.Keyring {
	t.Helper()
	k, err := seal.NewKeyring([]byte("0123456789abcdef0123456789abcdef"))
	must(t, err)
	return k
}

func openStore(t testing.TB, path string) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), "sqlite://"+path, sqlstore.Options{})
	must(t, err)
	_, err = st.Migrate(context.Background())
	must(t, err)
	return st
}

// webhookChannel stores a webhook channel to target with a sealed secret.
func webhookChannel(t testing.TB, st store.Store, k *seal.Keyring, tenantID, target, preset, secret string) store.AlertChannel {
	t.Helper()
	c := store.AlertChannel{ID: store.NewID(), TenantID: tenantID, Name: "hook", Kind: ChannelWebhook, Target: target,
		Options: `{"preset":"` + preset + `"}`, Enabled: true}
	if secret != "" {
		sealed, err := k.Seal([]byte(secret), []byte(SecretAD(tenantID, c.ID)))
		must(t, err)
		c.SecretSealed = sealed
	}
	must(t, st.CreateAlertChannel(context.Background(), &c))
	return c
}

func queue(t testing.TB, st store.Store, ch store.AlertChannel, summary string) store.AlertDelivery {
	t.Helper()
	a := store.Alert{ID: store.NewID(), TenantID: ch.TenantID, RuleID: "r", RuleName: "Offline", Kind: KindDeviceOffline,
		State: store.AlertFiring, Summary: summary, Subjects: []string{"dev-1", "dev-2"}, FiredAt: time.Now()}
	b, _ := json.Marshal(NewMessage("alert.firing", a, AlertsURL("https://fleet.example.com", "acme"), time.Now()))
	d := store.AlertDelivery{TenantID: ch.TenantID, ChannelID: ch.ID, AlertID: a.ID, MessageID: "msg_" + store.NewID(), Payload: string(b)}
	must(t, st.CreateAlertDelivery(context.Background(), &d))
	return d
}

func runDispatcher(t *testing.T, o DispatchOptions) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := NewDispatcher(o)
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// A receiver that answers 500 sees the signed delivery retried with the same webhook-id; it
// recovers while the server is down, and the outbox delivers after the restart.
func TestWebhookRetriesAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	k := testKeyring(t)
	secret := NewWebhookSecret()
	rcv := newReceiver(t, secret)
	rcv.failing.Store(true)

	st := openStore(t, path)
	tn := store.Tenant{Slug: "t", Name: "T"}
	must(t, st.CreateTenant(context.Background(), &tn))
	ch := webhookChannel(t, st, k, tn.ID, rcv.srv.URL+"/hook", PresetStandard, secret)
	d := queue(t, st, ch, "2 devices offline")

	opts := DispatchOptions{Store: st, Keyring: k, Owner: "replica-a", AllowPrivate: true,
		BaseBackoff: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, PollInterval: 10 * time.Millisecond}
	stop := runDispatcher(t, opts)
	var logged store.AlertDelivery
	poll.Until(t, 30*time.Second, "three failed attempts in the delivery log", func() bool {
		var err error
		logged, err = st.AlertDelivery(context.Background(), tn.ID, d.ID)
		return err == nil && logged.Attempts >= 3 && len(rcv.seen()) >= 3
	})
	if logged.State != store.DeliveryPending || logged.LastStatus != 500 || logged.LastError != "HTTP 500" ||
		!strings.Contains(logged.ResponseExcerpt, "Internal Server Error") {
		t.Fatalf("after failed attempts the delivery is %+v; want pending with the 500 logged", logged)
	}
	stop()
	// The attempt in flight at the stop, if any, is not counted; the delivery stays pending.
	got, err := st.AlertDelivery(context.Background(), tn.ID, d.ID)
	must(t, err)
	if got.State != store.DeliveryPending || got.Attempts < 3 || got.LeaseOwner != "" {
		t.Fatalf("after the stop the delivery is %+v; want pending, unleased", got)
	}
	st.Close()

	// The receiver recovers while the server is down; another replica's dispatcher on the
	// reopened database delivers.
	rcv.failing.Store(false)
	st2 := openStore(t, path)
	defer st2.Close()
	opts.Store, opts.Owner = st2, "replica-b"
	runDispatcher(t, opts)
	poll.Until(t, 30*time.Second, "delivery after the restart", func() bool {
		d, err := st2.AlertDelivery(context.Background(), tn.ID, d.ID)
		return err == nil && d.State == store.DeliveryDelivered
	})
	got, err = st2.AlertDelivery(context.Background(), tn.ID, d.ID)
	must(t, err)
	if got.LastStatus != 200 || got.LastError != "" || got.DeliveredAt == nil || got.LastLatencyMS < 0 {
		t.Errorf("delivered row = %+v", got)
	}
	seen := rcv.seen()
	for i, a := range seen {
		if a.verified != nil {
			t.Errorf("attempt %d: signature does not verify: %v", i, a.verified)
		}
		if a.id != d.MessageID {
			t.Errorf("attempt %d: webhook-id %q, want %q on every retry", i, a.id, d.MessageID)
		}
	}
	if last := seen[len(seen)-1]; last.status != 200 {
		t.Errorf("last attempt answered %d", last.status)
	}
	var m Message
	must(t, json.Unmarshal(seen[len(seen)-1].body, &m))
	if m.Type != "alert.firing" || m.Data.SubjectCount != 2 || m.Data.Summary != "2 devices offline" {
		t.Errorf("delivered message = %+v", m)
	}
}

// A receiver that is down for good is given up after MaxAttempts.
func TestWebhookGivesUpAfterMaxAttempts(t *testing.T) {
	k := testKeyring(t)
	rcv := newReceiver(t, NewWebhookSecret())
	rcv.failing.Store(true)
	st := openStore(t, filepath.Join(t.TempDir(), "o.db"))
	defer st.Close()
	tn := store.Tenant{Slug: "t", Name: "T"}
	must(t, st.CreateTenant(context.Background(), &tn))
	ch := webhookChannel(t, st, k, tn.ID, rcv.srv.URL, PresetStandard, "")
	d := queue(t, st, ch, "x")
	runDispatcher(t, DispatchOptions{Store: st, Keyring: k, AllowPrivate: true, MaxAttempts: 3,
		BaseBackoff: 10 * time.Millisecond, PollInterval: 10 * time.Millisecond})
	poll.Until(t, 30*time.Second, "given up", func() bool {
		d, err := st.AlertDelivery(context.Background(), tn.ID, d.ID)
		return err == nil && d.State == store.DeliveryFailed
	})
	if n := len(rcv.seen()); n != 3 {
		t.Errorf("receiver saw %d attempts, want 3", n)
	}
}

// Slack and Discord presets post the text the chat shows.
func TestWebhookPresets(t *testing.T) {
	k := testKeyring(t)
	var mu sync.Mutex
	bodies := map[string]map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]string
		_ = json.NewDecoder(r.Body).Decode(&v)
		mu.Lock()
		bodies[r.URL.Path] = v
		mu.Unlock()
	}))
	defer srv.Close()
	st := openStore(t, filepath.Join(t.TempDir(), "o.db"))
	defer st.Close()
	tn := store.Tenant{Slug: "t", Name: "T"}
	must(t, st.CreateTenant(context.Background(), &tn))
	queue(t, st, webhookChannel(t, st, k, tn.ID, srv.URL+"/slack", PresetSlack, ""), "Offline: 2 devices offline")
	queue(t, st, webhookChannel(t, st, k, tn.ID, srv.URL+"/discord", PresetDiscord, ""), "Offline: 2 devices offline")
	runDispatcher(t, DispatchOptions{Store: st, Keyring: k, AllowPrivate: true, PollInterval: 10 * time.Millisecond})
	poll.Until(t, 30*time.Second, "both presets", func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) == 2 })
	want := "Offline: 2 devices offline\n• dev-1\n• dev-2\nhttps://fleet.example.com/t/acme/alerts"
	if got := bodies["/slack"]["text"]; got != want {
		t.Errorf("slack text = %q, want %q", got, want)
	}
	if got := bodies["/discord"]["content"]; got != want {
		t.Errorf("discord content = %q, want %q", got, want)
	}
}

// Without alerts.webhook_allow_private a loopback receiver is refused at the connection, and
// the delivery fails at once instead of retrying for hours.
func TestWebhookRefusesPrivateTargetsAtDelivery(t *testing.T) {
	k := testKeyring(t)
	rcv := newReceiver(t, NewWebhookSecret())
	st := openStore(t, filepath.Join(t.TempDir(), "o.db"))
	defer st.Close()
	tn := store.Tenant{Slug: "t", Name: "T"}
	must(t, st.CreateTenant(context.Background(), &tn))
	// Stored directly, as if the name had resolved to a public address when it was saved.
	ch := webhookChannel(t, st, k, tn.ID, rcv.srv.URL, PresetStandard, "")
	d := queue(t, st, ch, "x")
	runDispatcher(t, DispatchOptions{Store: st, Keyring: k, PollInterval: 10 * time.Millisecond})
	poll.Until(t, 30*time.Second, "refused", func() bool {
		d, err := st.AlertDelivery(context.Background(), tn.ID, d.ID)
		return err == nil && d.State == store.DeliveryFailed
	})
	got, _ := st.AlertDelivery(context.Background(), tn.ID, d.ID)
	if got.Attempts != 1 || !strings.Contains(got.LastError, "private, loopback or link-local") {
		t.Errorf("refused delivery = %d attempts, error %q", got.Attempts, got.LastError)
	}
	if n := len(rcv.seen()); n != 0 {
		t.Errorf("the private receiver was reached %d times", n)
	}
}

// Redirects are followed only to hosts the guard allows.
func TestRedirectsToPrivateTargetsAreRefused(t *testing.T) {
	c := NewHTTPClient(false, 5*time.Second)
	from, _ := http.NewRequest(http.MethodPost, "https://hooks.example.com/a", nil)
	for _, target := range []string{"http://127.0.0.1/x", "http://[::1]/x", "http://[::ffff:127.0.0.1]/x",
		"http://169.254.169.254/latest/meta-data", "http://10.0.0.5/", "http://localhost:8080/", "http://[fe80::1]/"} {
		to, _ := http.NewRequest(http.MethodPost, target, nil)
		if err := c.CheckRedirect(to, []*http.Request{from}); !errors.Is(err, netguard.ErrForbidden) {
			t.Errorf("redirect to %s: %v, want refused", target, err)
		}
	}
	to, _ := http.NewRequest(http.MethodPost, "https://other.example.com/", nil)
	if err := c.CheckRedirect(to, []*http.Request{from}); err != nil {
		t.Errorf("redirect to a public name: %v", err)
	}
	// A redirect that passes the name check still meets the dialer's check: the server below
	// is on loopback and redirects to itself.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}
	}))
	defer srv.Close()
	if _, err := c.Post(srv.URL, "application/json", strings.NewReader("{}")); !errors.Is(err, netguard.ErrForbidden) {
		t.Errorf("post to a loopback server: %v, want refused", err)
	}
	allowed := NewHTTPClient(true, 5*time.Second)
	resp, err := allowed.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("with private targets allowed: %v", err)
	}
	resp.Body.Close()
}

func TestValidateChannel(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name, kind, target, options string
		allowPrivate                bool
		field                       string
	}{
		{"public webhook", ChannelWebhook, "https://8.8.8.8/hook", "", false, ""},
		{"loopback", ChannelWebhook, "http://127.0.0.1:8080/", "", false, "target"},
		{"loopback allowed", ChannelWebhook, "http://127.0.0.1:8080/", "", true, ""},
		{"IPv6 loopback", ChannelWebhook, "http://[::1]/", "", false, "target"},
		{"IPv4-mapped IPv6", ChannelWebhook, "http://[::ffff:192.168.1.1]/", "", false, "target"},
		{"link-local metadata", ChannelWebhook, "http://169.254.169.254/", "", false, "target"},
		{"IPv6 link-local", ChannelWebhook, "http://[fe80::1%25eth0]/", "", false, "target"},
		{"private", ChannelNtfy, "https://10.1.2.3/topic", "", false, "target"},
		{"name resolving to loopback", ChannelWebhook, "http://localhost/", "", false, "target"},
		{"not http", ChannelWebhook, "ftp://example.com/", "", false, "target"},
		{"user info", ChannelWebhook, "https://u:p@8.8.8.8/", "", false, "target"},
		{"bad preset", ChannelWebhook, "https://8.8.8.8/", `{"preset":"teams"}`, false, "options.preset"},
		{"preset on ntfy", ChannelNtfy, "https://8.8.8.8/t", `{"preset":"slack"}`, false, "options.preset"},
		{"emails", ChannelEmail, "ops@example.com, oncall@example.com", "", false, ""},
		{"bad email", ChannelEmail, "ops@example.com, nope", "", false, "target"},
		{"push with target", ChannelPush, "https://x", "", false, "target"},
		{"unknown kind", "sms", "", "", false, "kind"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := store.AlertChannel{Name: "n", Kind: c.kind, Target: c.target, Options: c.options}
			err := ValidateChannel(ctx, &ch, c.allowPrivate)
			if c.field == "" {
				if err != nil {
					t.Fatalf("ValidateChannel = %v", err)
				}
				return
			}
			var inv *store.InvalidError
			if !errors.As(err, &inv) || inv.Fields[c.field] == "" {
				t.Fatalf("ValidateChannel = %v, want an invalid %s", err, c.field)
			}
		})
	}
}

// smtpSink is a local SMTP server that keeps each message's recipients and data.
type smtpSink struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []sinkMessage
}

type sinkMessage struct {
	rcpt []string
	data string
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s := &smtpSink{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.session(conn)
		}
	}()
	return s
}

func (s *smtpSink) session(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	say := func(line string) { _, _ = conn.Write([]byte(line + "\r\n")) }
	say("220 sink ESMTP")
	var cur sinkMessage
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		switch verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0]); verb {
		case "EHLO", "HELO":
			say("250 sink")
		case "MAIL":
			cur = sinkMessage{}
			say("250 ok")
		case "RCPT":
			cur.rcpt = append(cur.rcpt, strings.TrimPrefix(line, "RCPT TO:"))
			say("250 ok")
		case "DATA":
			say("354 go on")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil || l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			cur.data = b.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, cur)
			s.mu.Unlock()
			say("250 queued")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func (s *smtpSink) messages() []sinkMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkMessage(nil), s.msgs...)
}

// The email channel sends through the server's SMTP settings: a local SMTP server receives
// one mail per address.
func TestEmailChannel(t *testing.T) {
	sink := startSMTPSink(t)
	mailer, err := mail.NewSMTP("smtp://"+sink.ln.Addr().String(), "ESP Admin <alerts@example.com>")
	must(t, err)
	st := openStore(t, filepath.Join(t.TempDir(), "o.db"))
	defer st.Close()
	tn := store.Tenant{Slug: "t", Name: "T"}
	must(t, st.CreateTenant(context.Background(), &tn))
	ch := store.AlertChannel{TenantID: tn.ID, Name: "ops", Kind: ChannelEmail, Target: "ops@example.com, oncall@example.com", Options: "{}", Enabled: true}
	must(t, st.CreateAlertChannel(context.Background(), &ch))
	d := queue(t, st, ch, "Offline: 2 devices offline")
	runDispatcher(t, DispatchOptions{Store: st, Keyring: testKeyring(t), Mailer: mailer, PollInterval: 10 * time.Millisecond})
	poll.Until(t, 30*time.Second, "two mails", func() bool { return len(sink.messages()) == 2 })
	var to []string
	for _, m := range sink.messages() {
		to = append(to, m.rcpt...)
		if !strings.Contains(m.data, "Subject: [ESP Admin] Offline: 2 devices offline") || !strings.Contains(m.data, "dev-2") {
			t.Errorf("mail data:\n%s", m.data)
		}
	}
	if strings.Join(to, " ") != "<ops@example.com> <oncall@example.com>" {
		t.Errorf("recipients = %v", to)
	}
	poll.Until(t, 30*time.Second, "delivered", func() bool {
		got, err := st.AlertDelivery(context.Background(), tn.ID, d.ID)
		return err == nil && got.State == store.DeliveryDelivered
	})
}

// The ntfy channel publishes the text as JSON to the topic's server with the token.
func TestNtfyChannel(t *testing.T) {
	k := testKeyring(t)
	got := make(chan map[string]any, 1)
	var auth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		_ = json.NewDecoder(r.Body).Decode(&v)
		auth.Store(r.Header.Get("Authorization") + " " + r.URL.Path)
		got <- v
	}))
	defer srv.Close()
	st := openStore(t, filepath.Join(t.TempDir(), "o.db"))
	defer st.Close()
	tn := store.Tenant{Slug: "t", Name: "T"}
	must(t, st.CreateTenant(context.Background(), &tn))
	ch := store.AlertChannel{ID: store.NewID(), TenantID: tn.ID, Name: "phone", Kind: ChannelNtfy, Target: srv.URL + "/fleet-alerts", Options: "{}", Enabled: true}
	sealed, err := k.Seal([]byte("tk_secret"), []byte(SecretAD(tn.ID, ch.ID)))
	must(t, err)
	ch.SecretSealed = sealed
	must(t, st.CreateAlertChannel(context.Background(), &ch))
	queue(t, st, ch, "Offline: 2 devices offline")
	runDispatcher(t, DispatchOptions{Store: st, Keyring: k, AllowPrivate: true, PollInterval: 10 * time.Millisecond})
	var v map[string]any
	select {
	case v = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("ntfy got nothing")
	}
	if v["topic"] != "fleet-alerts" || !strings.HasPrefix(v["message"].(string), "Offline: 2 devices offline\n• dev-1") ||
		v["click"] != "https://fleet.example.com/t/acme/alerts" {
		t.Errorf("ntfy message = %v", v)
	}
	if a := auth.Load().(string); a != "Bearer tk_secret /" {
		t.Errorf("authorization and path = %q", a)
	}
}

// The default retry schedule doubles from 30 s, stops growing at 6 h and spans hours.
func TestBackoffSchedule(t *testing.T) {
	d := NewDispatcher(DispatchOptions{})
	var total time.Duration
	for n := 1; n < DefaultMaxAttempts; n++ {
		total += d.Backoff(n)
	}
	if d.Backoff(1) != 30*time.Second || d.Backoff(2) != time.Minute || d.Backoff(11) != 6*time.Hour || d.Backoff(30) != 6*time.Hour {
		t.Errorf("backoff 1, 2, 11, 30 = %v %v %v %v", d.Backoff(1), d.Backoff(2), d.Backoff(11), d.Backoff(30))
	}
	if total < 12*time.Hour || total > 18*time.Hour {
		t.Errorf("retries span %v, want about 15 hours", total)
	}
}

// Two replicas' dispatchers on one database send each message once: leases keep them apart.
func TestTwoDispatchersSendEachMessageOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	k := testKeyring(t)
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("webhook-id")]++
		mu.Unlock()
	}))
	defer srv.Close()
	a := openStore(t, path)
	defer a.Close()
	b := openStore(t, path)
	defer b.Close()
	tn := store.Tenant{Slug: "t", Name: "T"}
	must(t, a.CreateTenant(context.Background(), &tn))
	ch := webhookChannel(t, a, k, tn.ID, srv.URL, PresetStandard, NewWebhookSecret())
	const n = 60
	for range n {
		queue(t, a, ch, "x")
	}
	runDispatcher(t, DispatchOptions{Store: a, Keyring: k, Owner: "a", AllowPrivate: true, PollInterval: 5 * time.Millisecond, Workers: 4})
	runDispatcher(t, DispatchOptions{Store: b, Keyring: k, Owner: "b", AllowPrivate: true, PollInterval: 5 * time.Millisecond, Workers: 4})
	poll.Until(t, 60*time.Second, "every message delivered", func() bool {
		p, err := a.ListAlertDeliveries(context.Background(), tn.ID, store.DeliveryFilter{State: store.DeliveryDelivered}, store.ListOptions{Limit: 100})
		return err == nil && len(p.Items) == n
	})
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Fatalf("receiver saw %d messages, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("message %s sent %d times", id, c)
		}
	}
}

// A shutdown cuts a hanging send short without counting it: the delivery is due again at once.
func TestShutdownInterruptsASendWithoutCountingIt(t *testing.T) {
	k := testKeyring(t)
	entered := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // the server notices a closed connection once the body is read
		select {
		case entered <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	defer srv.Close()
	st := openStore(t, filepath.Join(t.TempDir(), "o.db"))
	defer st.Close()
	tn := store.Tenant{Slug: "t", Name: "T"}
	must(t, st.CreateTenant(context.Background(), &tn))
	d := queue(t, st, webhookChannel(t, st, k, tn.ID, srv.URL, PresetStandard, ""), "x")
	stop := runDispatcher(t, DispatchOptions{Store: st, Keyring: k, AllowPrivate: true, PollInterval: 10 * time.Millisecond})
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the receiver was not called")
	}
	stop() // returns once the interrupted attempt is written
	got, err := st.AlertDelivery(context.Background(), tn.ID, d.ID)
	must(t, err)
	if got.State != store.DeliveryPending || got.Attempts != 0 || got.LeaseOwner != "" || got.LastError != "interrupted by a server shutdown" {
		t.Errorf("after shutdown the delivery is %+v; want pending, no attempt counted, lease released", got)
	}
}
