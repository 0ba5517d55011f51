package mongostore

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/espadmin/espadmin/store"
)

type alertChannelDoc struct {
	ID           string    `bson:"_id"`
	TenantID     string    `bson:"tenant_id"`
	Name         string    `bson:"name"`
	Kind         string    `bson:"kind"`
	Target       string    `bson:"target"`
	Options      string    `bson:"options"`
	SecretSealed []byte    `bson:"secret_sealed"`
	Enabled      bool      `bson:"enabled"`
	CreatedAt    time.Time `bson:"created_at"`
	UpdatedAt    time.Time `bson:"updated_at"`
}

func (d alertChannelDoc) domain() store.AlertChannel {
	c := store.AlertChannel(d)
	c.CreatedAt, c.UpdatedAt = utc(c.CreatedAt), utc(c.UpdatedAt)
	return c
}

func tenantID(tenantID, id string) bson.D {
	return bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "_id", Value: id}}
}

// CreateAlertChannel inserts c.
func (s *Store) CreateAlertChannel(ctx context.Context, c *store.AlertChannel) error {
	v := *c
	store.PrepareCreate(&v.ID, &v.CreatedAt, &v.UpdatedAt)
	if _, err := s.col(colAlertChannels).InsertOne(ctx, alertChannelDoc(v)); err != nil {
		return wrap(err, "create alert channel in tenant %q", v.TenantID)
	}
	*c = v
	return nil
}

// AlertChannel returns one channel of the tenant.
func (s *Store) AlertChannel(ctx context.Context, tenant, id string) (store.AlertChannel, error) {
	c, err := findOne(ctx, s.col(colAlertChannels), tenantID(tenant, id), alertChannelDoc.domain)
	return c, wrap(err, "get alert channel %q", id)
}

// ListAlertChannels pages through the tenant's channels.
func (s *Store) ListAlertChannels(ctx context.Context, tenant string, opts store.ListOptions) (store.Page[store.AlertChannel], error) {
	p, err := listPage(ctx, s.col(colAlertChannels), pageQuery{filter: bson.D{{Key: "tenant_id", Value: tenant}}, field: "_id", listOpts: opts},
		alertChannelDoc.domain, func(c store.AlertChannel) string { return c.ID })
	return p, wrap(err, "list alert channels of tenant %q", tenant)
}

// UpdateAlertChannel writes the channel's settings.
func (s *Store) UpdateAlertChannel(ctx context.Context, c *store.AlertChannel) error {
	now := store.Now()
	res, err := s.col(colAlertChannels).UpdateOne(ctx, tenantID(c.TenantID, c.ID), bson.D{{Key: "$set", Value: bson.D{
		{Key: "name", Value: c.Name}, {Key: "target", Value: c.Target}, {Key: "options", Value: c.Options},
		{Key: "secret_sealed", Value: c.SecretSealed}, {Key: "enabled", Value: c.Enabled}, {Key: "updated_at", Value: now},
	}}})
	if err != nil {
		return wrap(err, "update alert channel %q", c.ID)
	}
	if res.MatchedCount == 0 {
		return notFound("update alert channel %q", c.ID)
	}
	c.UpdatedAt = now
	return nil
}

// DeleteAlertChannel removes the channel, then its deliveries.
func (s *Store) DeleteAlertChannel(ctx context.Context, tenant, id string) error {
	if err := deleteOne(ctx, s.col(colAlertChannels), tenantID(tenant, id), "alert channel", id); err != nil {
		return err
	}
	_, err := s.col(colAlertDeliveries).DeleteMany(ctx, bson.D{{Key: "tenant_id", Value: tenant}, {Key: "channel_id", Value: id}})
	return wrap(err, "delete deliveries of alert channel %q", id)
}

type alertRuleDoc struct {
	ID              string    `bson:"_id"`
	TenantID        string    `bson:"tenant_id"`
	Name            string    `bson:"name"`
	Kind            string    `bson:"kind"`
	ProjectID       string    `bson:"project_id"`
	Tag             string    `bson:"tag"`
	DeviceID        string    `bson:"device_id"`
	Params          string    `bson:"params"`
	ChannelIDs      []string  `bson:"channel_ids"`
	CooldownSeconds int       `bson:"cooldown_seconds"`
	Enabled         bool      `bson:"enabled"`
	CreatedBy       string    `bson:"created_by"`
	CreatedAt       time.Time `bson:"created_at"`
	UpdatedAt       time.Time `bson:"updated_at"`
}

func (d alertRuleDoc) domain() store.AlertRule {
	r := store.AlertRule(d)
	r.CreatedAt, r.UpdatedAt = utc(r.CreatedAt), utc(r.UpdatedAt)
	return r
}

// CreateAlertRule inserts r.
func (s *Store) CreateAlertRule(ctx context.Context, r *store.AlertRule) error {
	v := *r
	store.PrepareCreate(&v.ID, &v.CreatedAt, &v.UpdatedAt)
	if _, err := s.col(colAlertRules).InsertOne(ctx, alertRuleDoc(v)); err != nil {
		return wrap(err, "create alert rule in tenant %q", v.TenantID)
	}
	*r = v
	return nil
}

// AlertRule returns one rule of the tenant.
func (s *Store) AlertRule(ctx context.Context, tenant, id string) (store.AlertRule, error) {
	r, err := findOne(ctx, s.col(colAlertRules), tenantID(tenant, id), alertRuleDoc.domain)
	return r, wrap(err, "get alert rule %q", id)
}

// ListAlertRules pages through the tenant's rules.
func (s *Store) ListAlertRules(ctx context.Context, tenant string, opts store.ListOptions) (store.Page[store.AlertRule], error) {
	p, err := listPage(ctx, s.col(colAlertRules), pageQuery{filter: bson.D{{Key: "tenant_id", Value: tenant}}, field: "_id", listOpts: opts},
		alertRuleDoc.domain, func(r store.AlertRule) string { return r.ID })
	return p, wrap(err, "list alert rules of tenant %q", tenant)
}

// UpdateAlertRule writes the rule.
func (s *Store) UpdateAlertRule(ctx context.Context, r *store.AlertRule) error {
	now := store.Now()
	res, err := s.col(colAlertRules).UpdateOne(ctx, tenantID(r.TenantID, r.ID), bson.D{{Key: "$set", Value: bson.D{
		{Key: "name", Value: r.Name}, {Key: "kind", Value: r.Kind}, {Key: "project_id", Value: r.ProjectID},
		{Key: "tag", Value: r.Tag}, {Key: "device_id", Value: r.DeviceID}, {Key: "params", Value: r.Params},
		{Key: "channel_ids", Value: r.ChannelIDs}, {Key: "cooldown_seconds", Value: r.CooldownSeconds},
		{Key: "enabled", Value: r.Enabled}, {Key: "updated_at", Value: now},
	}}})
	if err != nil {
		return wrap(err, "update alert rule %q", r.ID)
	}
	if res.MatchedCount == 0 {
		return notFound("update alert rule %q", r.ID)
	}
	r.UpdatedAt = now
	return nil
}

// DeleteAlertRule removes the rule; its alerts stay in the history.
func (s *Store) DeleteAlertRule(ctx context.Context, tenant, id string) error {
	return deleteOne(ctx, s.col(colAlertRules), tenantID(tenant, id), "alert rule", id)
}

type alertDoc struct {
	ID             string     `bson:"_id"`
	TenantID       string     `bson:"tenant_id"`
	RuleID         string     `bson:"rule_id"`
	RuleName       string     `bson:"rule_name"`
	Kind           string     `bson:"kind"`
	State          string     `bson:"state"`
	Summary        string     `bson:"summary"`
	Subjects       []string   `bson:"subjects"`
	FiredAt        time.Time  `bson:"fired_at"`
	ResolvedAt     *time.Time `bson:"resolved_at"`
	AcknowledgedAt *time.Time `bson:"acknowledged_at"`
	AcknowledgedBy string     `bson:"acknowledged_by"`
	UpdatedAt      time.Time  `bson:"updated_at"`
}

func (d alertDoc) domain() store.Alert {
	return store.Alert{ID: d.ID, TenantID: d.TenantID, RuleID: d.RuleID, RuleName: d.RuleName, Kind: d.Kind,
		State: store.AlertState(d.State), Summary: d.Summary, Subjects: d.Subjects, FiredAt: utc(d.FiredAt),
		ResolvedAt: utcPtr(d.ResolvedAt), AcknowledgedAt: utcPtr(d.AcknowledgedAt), AcknowledgedBy: d.AcknowledgedBy,
		UpdatedAt: utc(d.UpdatedAt)}
}

// CreateAlert inserts a.
func (s *Store) CreateAlert(ctx context.Context, a *store.Alert) error {
	v := *a
	store.PrepareCreate(&v.ID, &v.FiredAt, &v.UpdatedAt)
	v.ResolvedAt, v.AcknowledgedAt = store.TimestampPtr(v.ResolvedAt), store.TimestampPtr(v.AcknowledgedAt)
	doc := alertDoc{ID: v.ID, TenantID: v.TenantID, RuleID: v.RuleID, RuleName: v.RuleName, Kind: v.Kind,
		State: string(v.State), Summary: v.Summary, Subjects: v.Subjects, FiredAt: v.FiredAt, ResolvedAt: v.ResolvedAt,
		AcknowledgedAt: v.AcknowledgedAt, AcknowledgedBy: v.AcknowledgedBy, UpdatedAt: v.UpdatedAt}
	if _, err := s.col(colAlerts).InsertOne(ctx, doc); err != nil {
		return wrap(err, "create alert in tenant %q", v.TenantID)
	}
	*a = v
	return nil
}

// Alert returns one alert of the tenant.
func (s *Store) Alert(ctx context.Context, tenant, id string) (store.Alert, error) {
	a, err := findOne(ctx, s.col(colAlerts), tenantID(tenant, id), alertDoc.domain)
	return a, wrap(err, "get alert %q", id)
}

// ListAlerts pages through the tenant's alerts matching f.
func (s *Store) ListAlerts(ctx context.Context, tenant string, f store.AlertFilter, opts store.ListOptions) (store.Page[store.Alert], error) {
	filter := bson.D{{Key: "tenant_id", Value: tenant}}
	if f.State != "" {
		filter = append(filter, bson.E{Key: "state", Value: string(f.State)})
	}
	if f.RuleID != "" {
		filter = append(filter, bson.E{Key: "rule_id", Value: f.RuleID})
	}
	p, err := listPage(ctx, s.col(colAlerts), pageQuery{filter: filter, field: "_id", listOpts: opts},
		alertDoc.domain, func(a store.Alert) string { return a.ID })
	return p, wrap(err, "list alerts of tenant %q", tenant)
}

// AcknowledgeAlert records the acknowledgement once: a firing alert becomes acknowledged, a
// resolved one keeps its state.
func (s *Store) AcknowledgeAlert(ctx context.Context, tenant, id, userID string, at time.Time) error {
	at = store.Timestamp(at)
	update := func(from store.AlertState, set bson.D) (int64, error) {
		filter := append(tenantID(tenant, id), bson.E{Key: "acknowledged_at", Value: nil}, bson.E{Key: "state", Value: string(from)})
		set = append(set, bson.E{Key: "acknowledged_at", Value: at}, bson.E{Key: "acknowledged_by", Value: userID},
			bson.E{Key: "updated_at", Value: at})
		res, err := s.col(colAlerts).UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: set}})
		if err != nil {
			return 0, err
		}
		return res.MatchedCount, nil
	}
	n, err := update(store.AlertFiring, bson.D{{Key: "state", Value: string(store.AlertAcknowledged)}})
	if err == nil && n == 0 {
		n, err = update(store.AlertResolved, bson.D{})
	}
	if err != nil {
		return wrap(err, "acknowledge alert %q", id)
	}
	if n == 0 {
		return s.missingOrConflict(ctx, colAlerts, tenant, id, "acknowledge alert")
	}
	return nil
}

// missingOrConflict tells a missing document from one whose condition failed.
func (s *Store) missingOrConflict(ctx context.Context, col, tenant, id, what string) error {
	ok, err := exists(ctx, s.col(col), tenantID(tenant, id))
	switch {
	case err != nil:
		return wrap(err, "%s %q", what, id)
	case !ok:
		return notFound("%s %q", what, id)
	}
	return conflict("%s %q", what, id)
}

// ResolveAlert marks the alert resolved once.
func (s *Store) ResolveAlert(ctx context.Context, tenant, id string, at time.Time) error {
	at = store.Timestamp(at)
	filter := append(tenantID(tenant, id), bson.E{Key: "state", Value: bson.D{{Key: "$ne", Value: string(store.AlertResolved)}}})
	res, err := s.col(colAlerts).UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
		{Key: "state", Value: string(store.AlertResolved)}, {Key: "resolved_at", Value: at}, {Key: "updated_at", Value: at},
	}}})
	if err != nil {
		return wrap(err, "resolve alert %q", id)
	}
	if res.MatchedCount == 0 {
		return s.missingOrConflict(ctx, colAlerts, tenant, id, "resolve alert")
	}
	return nil
}

type alertDeliveryDoc struct {
	ID              string     `bson:"_id"`
	TenantID        string     `bson:"tenant_id"`
	ChannelID       string     `bson:"channel_id"`
	AlertID         string     `bson:"alert_id"`
	MessageID       string     `bson:"message_id"`
	Payload         string     `bson:"payload"`
	State           string     `bson:"state"`
	Attempts        int        `bson:"attempts"`
	NextAttemptAt   time.Time  `bson:"next_attempt_at"`
	LeaseOwner      string     `bson:"lease_owner"`
	LeaseUntil      *time.Time `bson:"lease_until"`
	LastStatus      int        `bson:"last_status"`
	LastLatencyMS   int64      `bson:"last_latency_ms"`
	LastError       string     `bson:"last_error"`
	ResponseExcerpt string     `bson:"response_excerpt"`
	CreatedAt       time.Time  `bson:"created_at"`
	UpdatedAt       time.Time  `bson:"updated_at"`
	DeliveredAt     *time.Time `bson:"delivered_at"`
}

func (d alertDeliveryDoc) domain() store.AlertDelivery {
	v := store.AlertDelivery{ID: d.ID, TenantID: d.TenantID, ChannelID: d.ChannelID, AlertID: d.AlertID,
		MessageID: d.MessageID, Payload: d.Payload, State: store.DeliveryState(d.State), Attempts: d.Attempts,
		NextAttemptAt: utc(d.NextAttemptAt), LeaseOwner: d.LeaseOwner, LeaseUntil: utcPtr(d.LeaseUntil),
		LastStatus: d.LastStatus, LastLatencyMS: d.LastLatencyMS, LastError: d.LastError,
		ResponseExcerpt: d.ResponseExcerpt, CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt),
		DeliveredAt: utcPtr(d.DeliveredAt)}
	return v
}

// CreateAlertDelivery inserts d; a zero NextAttemptAt means due at once.
func (s *Store) CreateAlertDelivery(ctx context.Context, d *store.AlertDelivery) error {
	v := *d
	store.PrepareCreate(&v.ID, &v.CreatedAt, &v.UpdatedAt)
	if v.NextAttemptAt.IsZero() {
		v.NextAttemptAt = v.CreatedAt
	}
	v.NextAttemptAt = store.Timestamp(v.NextAttemptAt)
	v.LeaseUntil, v.DeliveredAt = store.TimestampPtr(v.LeaseUntil), store.TimestampPtr(v.DeliveredAt)
	if v.State == "" {
		v.State = store.DeliveryPending
	}
	doc := alertDeliveryDoc{ID: v.ID, TenantID: v.TenantID, ChannelID: v.ChannelID, AlertID: v.AlertID,
		MessageID: v.MessageID, Payload: v.Payload, State: string(v.State), Attempts: v.Attempts,
		NextAttemptAt: v.NextAttemptAt, LeaseOwner: v.LeaseOwner, LeaseUntil: v.LeaseUntil,
		LastStatus: v.LastStatus, LastLatencyMS: v.LastLatencyMS, LastError: v.LastError,
		ResponseExcerpt: v.ResponseExcerpt, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt, DeliveredAt: v.DeliveredAt}
	if _, err := s.col(colAlertDeliveries).InsertOne(ctx, doc); err != nil {
		return wrap(err, "create alert delivery in tenant %q", v.TenantID)
	}
	*d = v
	return nil
}

// AlertDelivery returns one delivery of the tenant.
func (s *Store) AlertDelivery(ctx context.Context, tenant, id string) (store.AlertDelivery, error) {
	d, err := findOne(ctx, s.col(colAlertDeliveries), tenantID(tenant, id), alertDeliveryDoc.domain)
	return d, wrap(err, "get alert delivery %q", id)
}

// ListAlertDeliveries pages through the tenant's deliveries matching f.
func (s *Store) ListAlertDeliveries(ctx context.Context, tenant string, f store.DeliveryFilter, opts store.ListOptions) (store.Page[store.AlertDelivery], error) {
	filter := bson.D{{Key: "tenant_id", Value: tenant}}
	for _, c := range []struct{ field, value string }{
		{"channel_id", f.ChannelID}, {"alert_id", f.AlertID}, {"state", string(f.State)},
	} {
		if c.value != "" {
			filter = append(filter, bson.E{Key: c.field, Value: c.value})
		}
	}
	p, err := listPage(ctx, s.col(colAlertDeliveries), pageQuery{filter: filter, field: "_id", listOpts: opts},
		alertDeliveryDoc.domain, func(d store.AlertDelivery) string { return d.ID })
	return p, wrap(err, "list alert deliveries of tenant %q", tenant)
}

// dueFilter matches pending deliveries due at now whose lease is free or ran out.
func dueFilter(now time.Time) bson.D {
	return bson.D{
		{Key: "state", Value: string(store.DeliveryPending)},
		{Key: "next_attempt_at", Value: bson.D{{Key: "$lte", Value: now}}},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "lease_until", Value: nil}},
			bson.D{{Key: "lease_until", Value: bson.D{{Key: "$lt", Value: now}}}},
		}},
	}
}

// ClaimAlertDeliveries takes due documents one conditional update at a time, so two workers
// never hold one document.
func (s *Store) ClaimAlertDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.AlertDelivery, error) {
	now = store.Timestamp(now)
	until := store.Timestamp(now.Add(lease))
	if limit <= 0 {
		limit = store.DefaultPageSize
	}
	ids, err := findAll(ctx, s.col(colAlertDeliveries), dueFilter(now), func(d struct {
		ID string `bson:"_id"`
	}) string {
		return d.ID
	}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).
		SetSort(bson.D{{Key: "next_attempt_at", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, wrap(err, "claim alert deliveries")
	}
	var out []store.AlertDelivery
	for _, id := range ids {
		filter := append(bson.D{{Key: "_id", Value: id}}, dueFilter(now)...)
		var doc alertDeliveryDoc
		err := s.col(colAlertDeliveries).FindOneAndUpdate(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
			{Key: "lease_owner", Value: owner}, {Key: "lease_until", Value: until},
		}}}, options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&doc)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			continue
		case err != nil:
			return out, wrap(err, "claim alert delivery %q", id)
		}
		out = append(out, doc.domain())
	}
	return out, nil
}

// FinishAlertDeliveryAttempt writes an attempt's outcome while d.LeaseOwner holds the lease.
func (s *Store) FinishAlertDeliveryAttempt(ctx context.Context, d *store.AlertDelivery) error {
	now := store.Now()
	d.NextAttemptAt = store.Timestamp(d.NextAttemptAt)
	d.DeliveredAt = store.TimestampPtr(d.DeliveredAt)
	filter := append(tenantID(d.TenantID, d.ID), bson.E{Key: "lease_owner", Value: d.LeaseOwner},
		bson.E{Key: "lease_until", Value: bson.D{{Key: "$ne", Value: nil}}})
	res, err := s.col(colAlertDeliveries).UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
		{Key: "state", Value: string(d.State)}, {Key: "attempts", Value: d.Attempts},
		{Key: "next_attempt_at", Value: d.NextAttemptAt}, {Key: "last_status", Value: d.LastStatus},
		{Key: "last_latency_ms", Value: d.LastLatencyMS}, {Key: "last_error", Value: d.LastError},
		{Key: "response_excerpt", Value: d.ResponseExcerpt}, {Key: "delivered_at", Value: d.DeliveredAt},
		{Key: "lease_owner", Value: ""}, {Key: "lease_until", Value: nil}, {Key: "updated_at", Value: now},
	}}})
	if err != nil {
		return wrap(err, "finish alert delivery %q", d.ID)
	}
	if res.MatchedCount == 0 {
		return s.missingOrConflict(ctx, colAlertDeliveries, d.TenantID, d.ID, "finish alert delivery")
	}
	d.LeaseOwner, d.LeaseUntil, d.UpdatedAt = "", nil, now
	return nil
}

// PruneAlertHistory deletes old resolved and acknowledged alerts and old finished deliveries.
func (s *Store) PruneAlertHistory(ctx context.Context, before time.Time) (int64, error) {
	before = store.Timestamp(before)
	var n int64
	for _, p := range []struct {
		col    string
		states []string
	}{
		{colAlerts, []string{string(store.AlertResolved), string(store.AlertAcknowledged)}},
		{colAlertDeliveries, []string{string(store.DeliveryDelivered), string(store.DeliveryFailed)}},
	} {
		res, err := s.col(p.col).DeleteMany(ctx, bson.D{
			{Key: "state", Value: bson.D{{Key: "$in", Value: p.states}}},
			{Key: "updated_at", Value: bson.D{{Key: "$lt", Value: before}}},
		})
		if err != nil {
			return n, wrap(err, "prune %s", p.col)
		}
		n += res.DeletedCount
	}
	return n, nil
}

type pushSubscriptionDoc struct {
	ID        string    `bson:"_id"`
	TenantID  string    `bson:"tenant_id"`
	UserID    string    `bson:"user_id"`
	Endpoint  string    `bson:"endpoint"`
	P256dh    string    `bson:"p256dh"`
	Auth      string    `bson:"auth"`
	CreatedAt time.Time `bson:"created_at"`
}

func (d pushSubscriptionDoc) domain() store.PushSubscription {
	p := store.PushSubscription(d)
	p.CreatedAt = utc(p.CreatedAt)
	return p
}

// CreatePushSubscription inserts p; the (tenant, endpoint) pair is unique.
func (s *Store) CreatePushSubscription(ctx context.Context, p *store.PushSubscription) error {
	v := *p
	store.PrepareCreate(&v.ID, &v.CreatedAt, nil)
	if _, err := s.col(colPushSubscriptions).InsertOne(ctx, pushSubscriptionDoc(v)); err != nil {
		return wrap(err, "create push subscription in tenant %q", v.TenantID)
	}
	*p = v
	return nil
}

// ListPushSubscriptions pages through the tenant's subscriptions.
func (s *Store) ListPushSubscriptions(ctx context.Context, tenant string, opts store.ListOptions) (store.Page[store.PushSubscription], error) {
	p, err := listPage(ctx, s.col(colPushSubscriptions), pageQuery{filter: bson.D{{Key: "tenant_id", Value: tenant}}, field: "_id", listOpts: opts},
		pushSubscriptionDoc.domain, func(p store.PushSubscription) string { return p.ID })
	return p, wrap(err, "list push subscriptions of tenant %q", tenant)
}

// DeletePushSubscription removes one subscription.
func (s *Store) DeletePushSubscription(ctx context.Context, tenant, id string) error {
	return deleteOne(ctx, s.col(colPushSubscriptions), tenantID(tenant, id), "push subscription", id)
}

type serverSecretDoc struct {
	Name      string    `bson:"_id"`
	Sealed    []byte    `bson:"sealed"`
	CreatedAt time.Time `bson:"created_at"`
}

// ServerSecret returns the secret called name, or store.ErrNotFound.
func (s *Store) ServerSecret(ctx context.Context, name string) (store.ServerSecret, error) {
	v, err := findOne(ctx, s.col(colServerSecrets), bson.D{{Key: "_id", Value: name}}, func(d serverSecretDoc) store.ServerSecret {
		return store.ServerSecret{Name: d.Name, Sealed: d.Sealed, CreatedAt: utc(d.CreatedAt)}
	})
	return v, wrap(err, "get server secret %q", name)
}

// CreateServerSecret writes v; store.ErrConflict when one of that name exists.
func (s *Store) CreateServerSecret(ctx context.Context, v *store.ServerSecret) error {
	v.CreatedAt = orNow(v.CreatedAt)
	_, err := s.col(colServerSecrets).InsertOne(ctx, serverSecretDoc{Name: v.Name, Sealed: v.Sealed, CreatedAt: v.CreatedAt})
	return wrap(err, "create server secret %q", v.Name)
}
