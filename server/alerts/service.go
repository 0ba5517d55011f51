package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
)

// Service is what the API does with alerts: rules and channels (admins), the history and its
// acknowledgement (every member), the delivery log and resending.
type Service struct {
	o ServiceOptions
}

// ServiceOptions configure a Service.
type ServiceOptions struct {
	Store   store.AlertStore
	Keyring *seal.Keyring
	// Engine and Dispatcher, when set, learn about changes at once (rules re-read, the
	// outbox polled) instead of at their next interval.
	Engine       *Engine
	Dispatcher   *Dispatcher
	AllowPrivate bool
	PublicURL    string
}

// NewService builds the service.
func NewService(o ServiceOptions) *Service { return &Service{o: o} }

// AllowPrivate reports whether channels may target private addresses.
func (s *Service) AllowPrivate() bool { return s.o.AllowPrivate }

// ChannelInput is a channel as an administrator submits it. Secret is the ntfy access token
// (write-only); webhooks get a generated signing secret instead.
type ChannelInput struct {
	Name    string
	Kind    string
	Target  string
	Preset  string
	Enabled bool
	// Secret, when not nil, replaces the ntfy token ("" removes it).
	Secret *string
}

// CreateChannel validates and stores a channel. For a webhook it returns the signing secret,
// which is shown this once and kept sealed.
func (s *Service) CreateChannel(ctx context.Context, tenantID string, in ChannelInput) (store.AlertChannel, string, error) {
	c := store.AlertChannel{ID: store.NewID(), TenantID: tenantID, Name: in.Name, Kind: in.Kind, Target: in.Target, Enabled: in.Enabled}
	if err := s.prepare(ctx, &c, in); err != nil {
		return c, "", err
	}
	var shown string
	if c.Kind == ChannelWebhook {
		shown = NewWebhookSecret()
		if err := s.seal(&c, shown); err != nil {
			return c, "", err
		}
	}
	if err := s.o.Store.CreateAlertChannel(ctx, &c); err != nil {
		return c, "", err
	}
	return c, shown, nil
}

func (s *Service) prepare(ctx context.Context, c *store.AlertChannel, in ChannelInput) error {
	o := ChannelOptions{Preset: in.Preset}
	b, _ := json.Marshal(o)
	c.Options = string(b)
	if err := ValidateChannel(ctx, c, s.o.AllowPrivate); err != nil {
		return err
	}
	if in.Secret != nil {
		if c.Kind != ChannelNtfy {
			return store.Invalid("secret", "only ntfy channels take a token; webhook secrets are generated")
		}
		if len(*in.Secret) > MaxSecretLength {
			return store.Invalid("secret", fmt.Sprintf("at most %d characters", MaxSecretLength))
		}
		c.SecretSealed = nil
		if *in.Secret != "" {
			return s.seal(c, *in.Secret)
		}
	}
	return nil
}

func (s *Service) seal(c *store.AlertChannel, secret string) error {
	sealed, err := s.o.Keyring.Seal([]byte(secret), []byte(SecretAD(c.TenantID, c.ID)))
	if err != nil {
		return err
	}
	c.SecretSealed = sealed
	return nil
}

// UpdateChannel changes a channel; its kind stays.
func (s *Service) UpdateChannel(ctx context.Context, c store.AlertChannel, in ChannelInput) (store.AlertChannel, error) {
	if in.Kind != "" && in.Kind != c.Kind {
		return c, store.Invalid("kind", "cannot change; make a new channel")
	}
	c.Name, c.Target, c.Enabled = in.Name, in.Target, in.Enabled
	if err := s.prepare(ctx, &c, in); err != nil {
		return c, err
	}
	return c, s.o.Store.UpdateAlertChannel(ctx, &c)
}

// RotateSecret gives a webhook channel a new signing secret, returned this once.
func (s *Service) RotateSecret(ctx context.Context, c store.AlertChannel) (string, error) {
	if c.Kind != ChannelWebhook {
		return "", store.Invalid("kind", "only webhook channels have a signing secret")
	}
	secret := NewWebhookSecret()
	if err := s.seal(&c, secret); err != nil {
		return "", err
	}
	return secret, s.o.Store.UpdateAlertChannel(ctx, &c)
}

// TestChannel queues a test message to the channel and returns its delivery.
func (s *Service) TestChannel(ctx context.Context, c store.AlertChannel, tenantSlug string, now time.Time) (store.AlertDelivery, error) {
	a := store.Alert{TenantID: c.TenantID, RuleName: "Test", Kind: "test", State: store.AlertFiring,
		Summary: "Test notification from ESP Admin", Subjects: []string{}, FiredAt: now}
	return s.queue(ctx, c, "", NewMessage("alert.test", a, AlertsURL(s.o.PublicURL, tenantSlug), now))
}

func (s *Service) queue(ctx context.Context, c store.AlertChannel, alertID string, m Message) (store.AlertDelivery, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return store.AlertDelivery{}, err
	}
	d := store.AlertDelivery{TenantID: c.TenantID, ChannelID: c.ID, AlertID: alertID, MessageID: "msg_" + store.NewID(), Payload: string(b)}
	if err := s.o.Store.CreateAlertDelivery(ctx, &d); err != nil {
		return d, err
	}
	if s.o.Dispatcher != nil {
		s.o.Dispatcher.Wake()
	}
	return d, nil
}

// Resend queues a delivery's message again, with the same webhook-id (receivers that
// already processed it can tell), as a new line of the delivery log.
func (s *Service) Resend(ctx context.Context, d store.AlertDelivery) (store.AlertDelivery, error) {
	if _, err := s.o.Store.AlertChannel(ctx, d.TenantID, d.ChannelID); err != nil {
		return store.AlertDelivery{}, err
	}
	n := store.AlertDelivery{TenantID: d.TenantID, ChannelID: d.ChannelID, AlertID: d.AlertID, MessageID: d.MessageID, Payload: d.Payload}
	if err := s.o.Store.CreateAlertDelivery(ctx, &n); err != nil {
		return n, err
	}
	if s.o.Dispatcher != nil {
		s.o.Dispatcher.Wake()
	}
	return n, nil
}

// RuleInput is a rule as an administrator submits it.
type RuleInput struct {
	Name            string
	Kind            string
	ProjectID       string
	Tag             string
	DeviceID        string
	Params          Params
	ChannelIDs      []string
	CooldownSeconds int
	Enabled         bool
}

func (s *Service) ruleOf(ctx context.Context, r *store.AlertRule, in RuleInput) error {
	b, _ := json.Marshal(in.Params)
	r.Name, r.Kind, r.ProjectID, r.Tag, r.DeviceID = in.Name, in.Kind, in.ProjectID, in.Tag, in.DeviceID
	r.Params, r.ChannelIDs, r.CooldownSeconds, r.Enabled = string(b), in.ChannelIDs, in.CooldownSeconds, in.Enabled
	if err := ValidateRule(r); err != nil {
		return err
	}
	for i, id := range r.ChannelIDs {
		if _, err := s.o.Store.AlertChannel(ctx, r.TenantID, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return store.Invalid(fmt.Sprintf("channel_ids[%d]", i), "no such channel")
			}
			return err
		}
	}
	return nil
}

// CreateRule validates and stores a rule.
func (s *Service) CreateRule(ctx context.Context, tenantID, userID string, in RuleInput) (store.AlertRule, error) {
	r := store.AlertRule{TenantID: tenantID, CreatedBy: userID}
	if err := s.ruleOf(ctx, &r, in); err != nil {
		return r, err
	}
	if err := s.o.Store.CreateAlertRule(ctx, &r); err != nil {
		return r, err
	}
	s.invalidate(tenantID)
	return r, nil
}

// UpdateRule replaces a rule's settings.
func (s *Service) UpdateRule(ctx context.Context, r store.AlertRule, in RuleInput) (store.AlertRule, error) {
	if err := s.ruleOf(ctx, &r, in); err != nil {
		return r, err
	}
	if err := s.o.Store.UpdateAlertRule(ctx, &r); err != nil {
		return r, err
	}
	s.invalidate(r.TenantID)
	return r, nil
}

// DeleteRule removes a rule; its alerts stay in the history.
func (s *Service) DeleteRule(ctx context.Context, tenantID, id string) error {
	if err := s.o.Store.DeleteAlertRule(ctx, tenantID, id); err != nil {
		return err
	}
	s.invalidate(tenantID)
	return nil
}

func (s *Service) invalidate(tenantID string) {
	if s.o.Engine != nil {
		s.o.Engine.Invalidate(tenantID)
	}
}

// VAPIDPublicKey is the key browsers subscribe with (applicationServerKey).
func (s *Service) VAPIDPublicKey(ctx context.Context) (string, error) {
	st, ok := s.o.Store.(VAPIDStore)
	if !ok {
		return "", errors.New("alerts: the store keeps no server secrets")
	}
	v, err := LoadVAPID(ctx, st, s.o.Keyring)
	return v.Public, err
}

// Subscribe stores a signed-in member's browser subscription; subscribing the same browser
// again is no error.
func (s *Service) Subscribe(ctx context.Context, p store.PushSubscription) (store.PushSubscription, error) {
	if err := ValidateSubscription(&p, s.o.AllowPrivate); err != nil {
		return p, err
	}
	err := s.o.Store.CreatePushSubscription(ctx, &p)
	if errors.Is(err, store.ErrConflict) {
		if old, ok, ferr := s.subscription(ctx, p.TenantID, p.Endpoint); ferr == nil && ok {
			return old, nil
		}
	}
	return p, err
}

// Unsubscribe removes the browser subscription with endpoint; false when there was none.
func (s *Service) Unsubscribe(ctx context.Context, tenantID, endpoint string) (bool, error) {
	p, ok, err := s.subscription(ctx, tenantID, endpoint)
	if err != nil || !ok {
		return false, err
	}
	return true, s.o.Store.DeletePushSubscription(ctx, tenantID, p.ID)
}

func (s *Service) subscription(ctx context.Context, tenantID, endpoint string) (store.PushSubscription, bool, error) {
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := s.o.Store.ListPushSubscriptions(ctx, tenantID, opts)
		if err != nil {
			return store.PushSubscription{}, false, err
		}
		for _, p := range page.Items {
			if p.Endpoint == endpoint {
				return p, true, nil
			}
		}
		if page.NextCursor == "" {
			return store.PushSubscription{}, false, nil
		}
		opts.Cursor = page.NextCursor
	}
}
