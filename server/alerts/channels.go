package alerts

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	espmail "github.com/espadmin/espadmin/server/mail"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/netguard"
)

// Channel kinds.
const (
	ChannelWebhook = "webhook"
	ChannelEmail   = "email"
	ChannelNtfy    = "ntfy"
	ChannelPush    = "push"
)

// ChannelKinds lists the channel kinds in the order the UI offers them.
var ChannelKinds = []string{ChannelWebhook, ChannelEmail, ChannelNtfy, ChannelPush}

// Webhook presets: the body a receiver expects.
const (
	PresetStandard = "standard" // the Message as JSON, signed per Standard Webhooks
	PresetSlack    = "slack"    // {"text": …}, for Slack-compatible incoming webhooks (Mattermost, Rocket.Chat)
	PresetDiscord  = "discord"  // {"content": …}, for Discord incoming webhooks
)

// Presets lists the webhook presets.
var Presets = []string{PresetStandard, PresetSlack, PresetDiscord}

// ChannelOptions are a channel's settings besides its target.
type ChannelOptions struct {
	Preset string `json:"preset,omitempty"` // webhooks
}

// Limits of channel settings.
const (
	MaxTargetLength  = 2048
	MaxEmailTargets  = 20
	MaxSecretLength  = 512
	webhookSecretLen = 24
)

// ErrForbiddenTarget is a target in a private, loopback or link-local range while the
// operator does not allow such targets.
var ErrForbiddenTarget = netguard.ErrForbidden

// privateMessage is the field message of a refused target.
const privateMessage = "%s is a private, loopback or link-local address; the server's operator allows such targets with alerts.webhook_allow_private (ESPADMIN_ALERTS_WEBHOOK_ALLOW_PRIVATE)"

// ValidateChannel checks a channel as an administrator wrote it and normalises its Options.
// URL targets must be http(s) and, unless allowPrivate, resolve to public addresses only.
func ValidateChannel(ctx context.Context, c *store.AlertChannel, allowPrivate bool) error {
	if strings.TrimSpace(c.Name) == "" || len(c.Name) > MaxNameLength {
		return store.Invalid("name", fmt.Sprintf("must be 1 to %d characters", MaxNameLength))
	}
	if !slices.Contains(ChannelKinds, c.Kind) {
		return store.Invalid("kind", "must be one of "+strings.Join(ChannelKinds, ", "))
	}
	var o ChannelOptions
	if c.Options != "" {
		if err := json.Unmarshal([]byte(c.Options), &o); err != nil {
			return store.Invalid("options", "must be a JSON object")
		}
	}
	if len(c.Target) > MaxTargetLength {
		return store.Invalid("target", fmt.Sprintf("at most %d characters", MaxTargetLength))
	}
	switch c.Kind {
	case ChannelWebhook, ChannelNtfy:
		if err := validateURL(ctx, c.Target, allowPrivate); err != nil {
			return err
		}
		if c.Kind == ChannelWebhook {
			if o.Preset == "" {
				o.Preset = PresetStandard
			}
			if !slices.Contains(Presets, o.Preset) {
				return store.Invalid("options.preset", "must be one of "+strings.Join(Presets, ", "))
			}
		} else if o.Preset != "" {
			return store.Invalid("options.preset", "applies to webhooks only")
		}
	case ChannelEmail:
		addrs := splitAddresses(c.Target)
		if len(addrs) == 0 || len(addrs) > MaxEmailTargets {
			return store.Invalid("target", fmt.Sprintf("must be 1 to %d email addresses, separated by commas", MaxEmailTargets))
		}
		for _, a := range addrs {
			if p, err := mail.ParseAddress(a); err != nil || p.Address != a {
				return store.Invalid("target", fmt.Sprintf("%q is not an email address", a))
			}
		}
		c.Target = strings.Join(addrs, ", ")
	case ChannelPush:
		if c.Target != "" {
			return store.Invalid("target", "push channels reach the members' subscribed browsers; leave the target empty")
		}
	}
	b, _ := json.Marshal(o)
	c.Options = string(b)
	return nil
}

func splitAddresses(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// validateURL checks an http(s) target and the addresses its host resolves to.
func validateURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return store.Invalid("target", "must be an http:// or https:// URL without user information")
	}
	if allowPrivate {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if a, ok, _ := netguard.Check(rctx, u.Hostname()); !ok {
		what := u.Hostname()
		if a.IsValid() && a.String() != strings.Trim(what, "[]") {
			what += " (" + a.String() + ")"
		}
		return store.Invalid("target", fmt.Sprintf(privateMessage, what))
	}
	return nil
}

// NewWebhookSecret returns a new signing secret in the Standard Webhooks form (whsec_ and
// base64 of 24 random bytes).
func NewWebhookSecret() string {
	b := make([]byte, webhookSecretLen)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// NewHTTPClient returns the client of webhooks and ntfy: no proxy from the environment (the
// address check must see the real target), the SSRF guard on every connection unless
// allowPrivate, at most five redirects, none to a refused host.
func NewHTTPClient(allowPrivate bool, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = netguard.Control
	}
	tr := &http.Transport{
		Proxy: nil, DialContext: dialer.DialContext, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: timeout, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second,
		ForceAttemptHTTP2: true,
	}
	return &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("stopped after 5 redirects")
		}
		if !allowPrivate && netguard.Literal(req.URL.Hostname()) {
			return fmt.Errorf("redirect to %s: %w", req.URL.Hostname(), netguard.ErrForbidden)
		}
		return nil
	}}
}

// post sends body and reads the start of the answer; a 2xx is delivered, other answers are
// retried (a 4xx other than 408 and 429 too: a receiver being deployed answers 404 for a
// while).
func post(ctx context.Context, c *http.Client, target string, body []byte, header http.Header) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return Result{Err: err}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "espadmin-alerts/1")
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, netguard.ErrForbidden) {
			return Result{Err: err} // a refused target stays refused
		}
		return Result{Err: err, Retrying: true}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, ResponseExcerptLength))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	res := Result{Status: resp.StatusCode, Excerpt: string(b)}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		res.Err, res.Retrying = fmt.Errorf("HTTP %d", resp.StatusCode), true
	}
	return res
}

// WebhookSender posts the message, signed per Standard Webhooks (webhook-id,
// webhook-timestamp, webhook-signature), in the channel's preset.
type WebhookSender struct {
	Client *http.Client
	Now    func() time.Time
}

// Send posts one delivery.
func (w *WebhookSender) Send(ctx context.Context, ch store.AlertChannel, secret []byte, d store.AlertDelivery) Result {
	var o ChannelOptions
	_ = json.Unmarshal([]byte(ch.Options), &o)
	body := []byte(d.Payload)
	if o.Preset == PresetSlack || o.Preset == PresetDiscord {
		var m Message
		if err := json.Unmarshal(body, &m); err != nil {
			return Result{Err: fmt.Errorf("payload: %w", err)}
		}
		field := "text"
		if o.Preset == PresetDiscord {
			field = "content"
		}
		body, _ = json.Marshal(map[string]string{field: m.Text()})
	}
	now := time.Now()
	if w.Now != nil {
		now = w.Now()
	}
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, d.MessageID)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	if len(secret) > 0 {
		wh, err := standardwebhooks.NewWebhook(string(secret))
		if err != nil {
			return Result{Err: fmt.Errorf("signing secret: %w", err)}
		}
		sig, err := wh.Sign(d.MessageID, now, body)
		if err != nil {
			return Result{Err: fmt.Errorf("sign: %w", err)}
		}
		h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	}
	return post(ctx, w.Client, ch.Target, body, h)
}

// NtfySender publishes the message's text to an ntfy topic URL (https://ntfy.sh/TOPIC or a
// self-hosted server), with the channel's secret as a bearer token when set.
type NtfySender struct {
	Client *http.Client
}

// Send publishes one delivery.
func (n *NtfySender) Send(ctx context.Context, ch store.AlertChannel, secret []byte, d store.AlertDelivery) Result {
	var m Message
	if err := json.Unmarshal([]byte(d.Payload), &m); err != nil {
		return Result{Err: fmt.Errorf("payload: %w", err)}
	}
	u, err := url.Parse(ch.Target)
	if err != nil {
		return Result{Err: err}
	}
	topic := strings.Trim(u.Path, "/")
	root := *u
	root.Path, root.RawQuery = "/", ""
	// ntfy's JSON publishing: POST to the server root with the topic in the body.
	msg := map[string]any{"topic": topic, "title": "ESP Admin: " + m.Data.RuleName, "message": m.Text(),
		"tags": []string{"warning"}, "priority": 4}
	if m.Type == "alert.resolved" {
		msg["tags"], msg["priority"] = []string{"white_check_mark"}, 3
	}
	if m.Data.URL != "" {
		msg["click"] = m.Data.URL
	}
	body, _ := json.Marshal(msg)
	h := http.Header{}
	if len(secret) > 0 {
		h.Set("Authorization", "Bearer "+string(secret))
	}
	return post(ctx, n.Client, root.String(), body, h)
}

// EmailSender mails the message's text through the server's SMTP settings.
type EmailSender struct {
	Mailer espmail.Sender
}

// Send mails one delivery to every address of the channel.
func (e *EmailSender) Send(ctx context.Context, ch store.AlertChannel, _ []byte, d store.AlertDelivery) Result {
	if e.Mailer == nil {
		return Result{Err: errors.New("the server has no SMTP settings (smtp.url)")}
	}
	var m Message
	if err := json.Unmarshal([]byte(d.Payload), &m); err != nil {
		return Result{Err: fmt.Errorf("payload: %w", err)}
	}
	subject := "[ESP Admin] " + m.Data.Summary
	if m.Type == "alert.resolved" {
		subject = "[ESP Admin] Resolved: " + m.Data.Summary
	}
	if len(subject) > 200 {
		subject = subject[:200]
	}
	for _, to := range splitAddresses(ch.Target) {
		if err := e.Mailer.Send(ctx, espmail.Message{To: to, Subject: subject, Body: m.Text() + "\n"}); err != nil {
			return Result{Err: err, Retrying: true}
		}
	}
	return Result{Excerpt: "sent"}
}
