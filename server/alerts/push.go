package alerts

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"sync"

	webpush "github.com/SherClockHolmes/webpush-go"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
)

// vapidSecretName is the server secret holding the VAPID key pair.
const vapidSecretName = "vapid"

// vapidAD binds the sealed VAPID key pair to its purpose.
var vapidAD = []byte("server-secret:vapid")

// VAPID is the server's application server key pair (RFC 8292), base64url without padding:
// the public key is what browsers subscribe with, the private one signs each push request.
type VAPID struct {
	Public  string `json:"public"`
	Private string `json:"private"`
}

// VAPIDStore is where the key pair is kept.
type VAPIDStore interface {
	ServerSecret(ctx context.Context, name string) (store.ServerSecret, error)
	CreateServerSecret(ctx context.Context, s *store.ServerSecret) error
}

// LoadVAPID returns the server's VAPID key pair, generating and storing it (sealed with the
// master key) on the first call of the installation. Replicas starting together agree: the
// one whose write lost reads the winner's.
func LoadVAPID(ctx context.Context, st VAPIDStore, k *seal.Keyring) (VAPID, error) {
	open := func(s store.ServerSecret) (VAPID, error) {
		plain, err := k.Open(s.Sealed, vapidAD)
		if err != nil {
			return VAPID{}, fmt.Errorf("alerts: open the VAPID key: %w", err)
		}
		var v VAPID
		if err := json.Unmarshal(plain, &v); err != nil || v.Public == "" || v.Private == "" {
			return VAPID{}, errors.New("alerts: the stored VAPID key is malformed")
		}
		return v, nil
	}
	s, err := st.ServerSecret(ctx, vapidSecretName)
	if err == nil {
		return open(s)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return VAPID{}, err
	}
	var v VAPID
	if v.Private, v.Public, err = webpush.GenerateVAPIDKeys(); err != nil {
		return VAPID{}, fmt.Errorf("alerts: generate the VAPID key: %w", err)
	}
	plain, _ := json.Marshal(v)
	sealed, err := k.Seal(plain, vapidAD)
	if err != nil {
		return VAPID{}, err
	}
	err = st.CreateServerSecret(ctx, &store.ServerSecret{Name: vapidSecretName, Sealed: sealed})
	if errors.Is(err, store.ErrConflict) {
		if s, err = st.ServerSecret(ctx, vapidSecretName); err != nil {
			return VAPID{}, err
		}
		return open(s)
	}
	return v, err
}

// Limits of a push subscription.
const (
	MaxEndpointLength = 600
	p256dhLength      = 65 // an uncompressed P-256 point
	authLength        = 16
)

// ValidateSubscription checks a browser's PushSubscription: an https endpoint (http too when
// private targets are allowed, for local push services), a P-256 public key and a 16-byte
// authentication secret, both base64url.
func ValidateSubscription(p *store.PushSubscription, allowPrivate bool) error {
	u, err := url.Parse(p.Endpoint)
	if err != nil || u.Host == "" || len(p.Endpoint) > MaxEndpointLength || !(u.Scheme == "https" || allowPrivate && u.Scheme == "http") {
		return store.Invalid("endpoint", fmt.Sprintf("must be an https URL of at most %d characters", MaxEndpointLength))
	}
	if b, err := decodeKey(p.P256dh); err != nil || len(b) != p256dhLength || b[0] != 4 {
		return store.Invalid("keys.p256dh", "must be the subscription's P-256 public key, base64url")
	}
	if b, err := decodeKey(p.Auth); err != nil || len(b) != authLength {
		return store.Invalid("keys.auth", "must be the subscription's 16-byte secret, base64url")
	}
	return nil
}

func decodeKey(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// PushNotification is the JSON the service worker (ui/static/sw.js) shows.
type PushNotification struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	URL   string `json:"url,omitempty"`
	Tag   string `json:"tag,omitempty"`
}

// PushStore is what the push sender needs from the store.
type PushStore interface {
	VAPIDStore
	ListPushSubscriptions(ctx context.Context, tenantID string, opts store.ListOptions) (store.Page[store.PushSubscription], error)
	DeletePushSubscription(ctx context.Context, tenantID, id string) error
}

// PushSender sends a push channel's message to every browser subscribed in the tenant,
// encrypted for each (RFC 8291) and signed with the server's VAPID key (RFC 8292).
// Subscriptions the push service reports gone (404, 410) are deleted.
type PushSender struct {
	Store   PushStore
	Keyring *seal.Keyring
	Client  *http.Client
	// Subscriber is the contact in the VAPID token: the public URL or a mailto: address.
	Subscriber string

	once  sync.Once
	vapid VAPID
	err   error
}

// Send pushes one delivery.
func (p *PushSender) Send(ctx context.Context, ch store.AlertChannel, _ []byte, d store.AlertDelivery) Result {
	p.once.Do(func() { p.vapid, p.err = LoadVAPID(ctx, p.Store, p.Keyring) })
	if p.err != nil {
		return Result{Err: p.err, Retrying: true}
	}
	var m Message
	if err := json.Unmarshal([]byte(d.Payload), &m); err != nil {
		return Result{Err: fmt.Errorf("payload: %w", err)}
	}
	title := "ESP Admin: " + m.Data.RuleName
	if m.Type == "alert.resolved" {
		title = "Resolved: " + m.Data.RuleName
	}
	body, _ := json.Marshal(PushNotification{Title: title, Body: m.Text(), URL: m.Data.URL, Tag: m.Data.AlertID})
	var (
		sent, failed int
		lastErr      error
		excerpt      string
		status       int
	)
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := p.Store.ListPushSubscriptions(ctx, ch.TenantID, opts)
		if err != nil {
			return Result{Err: err, Retrying: true}
		}
		for _, s := range page.Items {
			resp, err := webpush.SendNotificationWithContext(ctx, body, &webpush.Subscription{
				Endpoint: s.Endpoint, Keys: webpush.Keys{P256dh: s.P256dh, Auth: s.Auth},
			}, &webpush.Options{
				HTTPClient: p.Client, Subscriber: p.Subscriber, VAPIDPublicKey: p.vapid.Public,
				VAPIDPrivateKey: p.vapid.Private, TTL: 24 * 3600, Urgency: webpush.UrgencyHigh,
			})
			if err != nil {
				failed, lastErr = failed+1, err
				continue
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
			resp.Body.Close()
			status, excerpt = resp.StatusCode, string(b)
			switch {
			case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
				_ = p.Store.DeletePushSubscription(ctx, s.TenantID, s.ID) // the browser unsubscribed
			case resp.StatusCode >= 200 && resp.StatusCode <= 299:
				sent++
			default:
				failed, lastErr = failed+1, fmt.Errorf("push service answered %d", resp.StatusCode)
			}
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	res := Result{Status: status, Excerpt: fmt.Sprintf("%d browsers notified; %s", sent, excerpt)}
	switch {
	case failed > 0 && sent == 0:
		res.Err, res.Retrying = lastErr, true
	case sent == 0:
		res.Err = errors.New("no browser is subscribed to this tenant's notifications")
	}
	return res
}

// VAPIDSubscriber is the contact push services see in the VAPID token (RFC 8292 §2.1): the
// public URL when it is https, else the mail sender's address, else a placeholder address.
func VAPIDSubscriber(publicURL, mailFrom string) string {
	if strings.HasPrefix(publicURL, "https://") {
		return publicURL
	}
	if a, err := mail.ParseAddress(mailFrom); err == nil {
		return a.Address
	}
	return "alerts@espadmin.invalid"
}
