package alerts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/espadmin/espadmin/server/mail"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
)

// Defaults of DispatchOptions.
const (
	DefaultWorkers      = 16
	DefaultLease        = 2 * time.Minute
	DefaultPollInterval = time.Second
	DefaultMaxAttempts  = 12
	DefaultBaseBackoff  = 30 * time.Second
	DefaultMaxBackoff   = 6 * time.Hour
	DefaultSendTimeout  = 15 * time.Second
	// ResponseExcerptLength bounds the receiver's answer kept in the delivery log.
	ResponseExcerptLength = 512
)

// DispatchStore is what the dispatcher needs from the store.
type DispatchStore interface {
	AlertChannel(ctx context.Context, tenantID, id string) (store.AlertChannel, error)
	ClaimAlertDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.AlertDelivery, error)
	FinishAlertDeliveryAttempt(ctx context.Context, d *store.AlertDelivery) error
}

// DispatchOptions configure a Dispatcher. Zero values take the defaults.
type DispatchOptions struct {
	Store   DispatchStore
	Keyring *seal.Keyring
	// Owner names this replica's leases (a random suffix is added).
	Owner string
	// Workers bounds the deliveries in flight: each runs on its own, so a slow receiver
	// holds one worker, not the others.
	Workers int
	// Lease is how long a claimed delivery is this replica's; a replica that died leaves it
	// to the others after it.
	Lease        time.Duration
	PollInterval time.Duration
	// MaxAttempts is how often a delivery is tried before it is marked failed; the pause after
	// attempt n is BaseBackoff·2^(n-1), at most MaxBackoff (with the defaults, about 15 hours
	// in all).
	MaxAttempts int
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// SendTimeout bounds one attempt.
	SendTimeout time.Duration
	// AllowPrivate lets webhooks and ntfy reach private, loopback and link-local addresses
	// (alerts.webhook_allow_private).
	AllowPrivate bool
	// Mailer sends the email channel; nil fails email deliveries.
	Mailer mail.Sender
	// Push sends the Web Push channel; nil fails push deliveries.
	Push   Sender
	Logger *slog.Logger
}

// Result is the outcome of one attempt.
type Result struct {
	Status   int    // HTTP status; 0 when there was none
	Excerpt  string // the start of the answer
	Err      error  // nil: delivered
	Retrying bool   // false: retrying cannot help (the channel is gone or misconfigured)
	Latency  time.Duration
}

// Sender sends one delivery to one channel.
type Sender interface {
	Send(ctx context.Context, ch store.AlertChannel, secret []byte, d store.AlertDelivery) Result
}

// Dispatcher sends the outbox: it claims due deliveries for a lease, sends each on a worker
// of its own and writes the outcome, scheduling a retry with exponential backoff.
type Dispatcher struct {
	o       DispatchOptions
	senders map[string]Sender
	wake    chan struct{}
}

// NewDispatcher builds a dispatcher; Run starts it.
func NewDispatcher(o DispatchOptions) *Dispatcher {
	// A random part keeps two processes (or two lives of one) from sharing a lease.
	var b [6]byte
	_, _ = rand.Read(b[:])
	if o.Owner == "" {
		o.Owner = hex.EncodeToString(b[:])
	} else {
		o.Owner += "-" + hex.EncodeToString(b[:])
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = DefaultBaseBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	hc := NewHTTPClient(o.AllowPrivate, o.SendTimeout)
	d := &Dispatcher{o: o, wake: make(chan struct{}, 1), senders: map[string]Sender{
		ChannelWebhook: &WebhookSender{Client: hc},
		ChannelNtfy:    &NtfySender{Client: hc},
		ChannelEmail:   &EmailSender{Mailer: o.Mailer},
	}}
	if o.Push != nil {
		d.senders[ChannelPush] = o.Push
	}
	return d
}

// Wake makes Run look for due deliveries now instead of at its next poll.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Backoff is the pause after the attempts-th failed attempt.
func (d *Dispatcher) Backoff(attempts int) time.Duration {
	f := float64(d.o.BaseBackoff) * math.Pow(2, float64(attempts-1))
	if f > float64(d.o.MaxBackoff) {
		return d.o.MaxBackoff
	}
	return time.Duration(f)
}

// Run sends due deliveries until ctx ends, then waits for the attempts in flight.
func (d *Dispatcher) Run(ctx context.Context) error {
	sem := make(chan struct{}, d.o.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(d.o.PollInterval)
	defer tick.Stop()
	for {
		free := d.o.Workers - len(sem)
		if free > 0 {
			// A claim is not cut short by the shutdown: a lease written but not read back
			// would hold its delivery until the lease ran out. What it claims is attempted;
			// an attempt after the shutdown counts for nothing and frees its lease.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			claimed, err := d.o.Store.ClaimAlertDeliveries(cctx, d.o.Owner, time.Now(), d.o.Lease, free)
			cancel()
			if err != nil && ctx.Err() == nil {
				d.o.Logger.Warn("alert outbox not read", "error", err)
			}
			for _, del := range claimed {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer func() { <-sem; wg.Done(); d.Wake() }()
					d.attempt(ctx, del)
				}()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-d.wake:
		}
	}
}

// attempt sends one delivery and writes its outcome. A send cut short by shutdown does not
// count as an attempt: the delivery is due again at once, for another replica or the next
// start.
func (d *Dispatcher) attempt(ctx context.Context, del store.AlertDelivery) {
	res := d.send(ctx, del)
	interrupted := ctx.Err() != nil && res.Err != nil
	ctx = context.WithoutCancel(ctx)
	if !interrupted {
		del.Attempts++
	}
	del.LastStatus, del.ResponseExcerpt, del.LastLatencyMS = res.Status, excerpt(res.Excerpt), res.Latency.Milliseconds()
	now := time.Now()
	switch {
	case interrupted:
		del.LastError, del.NextAttemptAt = "interrupted by a server shutdown", now
	case res.Err == nil:
		del.State, del.LastError, del.DeliveredAt = store.DeliveryDelivered, "", &now
	case !res.Retrying || del.Attempts >= d.o.MaxAttempts:
		del.State, del.LastError = store.DeliveryFailed, excerpt(res.Err.Error())
	default:
		del.LastError = excerpt(res.Err.Error())
		del.NextAttemptAt = now.Add(d.Backoff(del.Attempts))
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.o.Store.FinishAlertDeliveryAttempt(fctx, &del); err != nil {
		d.o.Logger.Warn("alert delivery outcome not stored", "delivery_id", del.ID, "error", err)
	}
}

func (d *Dispatcher) send(ctx context.Context, del store.AlertDelivery) Result {
	ch, err := d.o.Store.AlertChannel(ctx, del.TenantID, del.ChannelID)
	if err != nil {
		return Result{Err: fmt.Errorf("channel: %w", err), Retrying: !errors.Is(err, store.ErrNotFound)}
	}
	s := d.senders[ch.Kind]
	if s == nil {
		return Result{Err: fmt.Errorf("no sender for %s channels", ch.Kind)}
	}
	var secret []byte
	if len(ch.SecretSealed) > 0 {
		if secret, err = d.o.Keyring.Open(ch.SecretSealed, []byte(SecretAD(ch.TenantID, ch.ID))); err != nil {
			return Result{Err: errors.New("the channel's secret does not open with the server's key")}
		}
	}
	sctx, cancel := context.WithTimeout(ctx, d.o.SendTimeout)
	defer cancel()
	start := time.Now()
	res := s.Send(sctx, ch, secret, del)
	res.Latency = time.Since(start)
	return res
}

// SecretAD is the associated data a channel's secret is sealed with: it binds the sealed
// value to its tenant and channel, so it cannot be copied to another.
func SecretAD(tenantID, channelID string) string {
	return "alert-channel:" + tenantID + ":" + channelID
}

func excerpt(s string) string {
	if len(s) <= ResponseExcerptLength {
		return s
	}
	cut := ResponseExcerptLength
	for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return s[:cut]
}
