package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// alertChannelRow is a row of alert_channels.
type alertChannelRow struct {
	bun.BaseModel `bun:"table:alert_channels"`

	ID           string    `bun:"id"`
	TenantID     string    `bun:"tenant_id"`
	Name         string    `bun:"name"`
	Kind         string    `bun:"kind"`
	Target       string    `bun:"target"`
	Options      string    `bun:"options"`
	SecretSealed []byte    `bun:"secret_sealed"`
	Enabled      bool      `bun:"enabled"`
	CreatedAt    time.Time `bun:"created_at"`
	UpdatedAt    time.Time `bun:"updated_at"`
}

func (r alertChannelRow) domain() store.AlertChannel {
	return store.AlertChannel{ID: r.ID, TenantID: r.TenantID, Name: r.Name, Kind: r.Kind, Target: r.Target,
		Options: r.Options, SecretSealed: r.SecretSealed, Enabled: r.Enabled,
		CreatedAt: utc(r.CreatedAt), UpdatedAt: utc(r.UpdatedAt)}
}

// CreateAlertChannel inserts c.
func (s *Store) CreateAlertChannel(ctx context.Context, c *store.AlertChannel) error {
	v := *c
	store.PrepareCreate(&v.ID, &v.CreatedAt, &v.UpdatedAt)
	row := alertChannelRow{ID: v.ID, TenantID: v.TenantID, Name: v.Name, Kind: v.Kind, Target: v.Target,
		Options: v.Options, SecretSealed: v.SecretSealed, Enabled: v.Enabled, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create alert channel in tenant %q", v.TenantID)
	}
	*c = v
	return nil
}

// AlertChannel returns one channel of the tenant.
func (s *Store) AlertChannel(ctx context.Context, tenantID, id string) (store.AlertChannel, error) {
	var row alertChannelRow
	err := s.r.NewSelect().Model(&row).Where("tenant_id = ?", tenantID).Where("id = ?", id).Scan(ctx)
	if err != nil {
		return store.AlertChannel{}, wrap(err, "get alert channel %q", id)
	}
	return row.domain(), nil
}

// ListAlertChannels pages through the tenant's channels.
func (s *Store) ListAlertChannels(ctx context.Context, tenantID string, opts store.ListOptions) (store.Page[store.AlertChannel], error) {
	var rows []alertChannelRow
	if err := pageByID(s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID), opts).Scan(ctx); err != nil {
		return store.Page[store.AlertChannel]{}, wrap(err, "list alert channels of tenant %q", tenantID)
	}
	items := make([]store.AlertChannel, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(c store.AlertChannel) string { return c.ID }), nil
}

// UpdateAlertChannel writes the channel's settings.
func (s *Store) UpdateAlertChannel(ctx context.Context, c *store.AlertChannel) error {
	now := store.Now()
	res, err := s.w.NewUpdate().Table("alert_channels").
		Set("name = ?", c.Name).
		Set("target = ?", c.Target).
		Set("options = ?", c.Options).
		Set("secret_sealed = ?", c.SecretSealed).
		Set("enabled = ?", c.Enabled).
		Set("updated_at = ?", now).
		Where("tenant_id = ?", c.TenantID).
		Where("id = ?", c.ID).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "update alert channel %q", c.ID)
	}
	c.UpdatedAt = now
	return nil
}

// DeleteAlertChannel removes the channel; its deliveries go with it (foreign key).
func (s *Store) DeleteAlertChannel(ctx context.Context, tenantID, id string) error {
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewDelete().Table("alert_deliveries").Where("tenant_id = ?", tenantID).Where("channel_id = ?", id).Exec(ctx); err != nil {
			return err
		}
		res, err := tx.NewDelete().Table("alert_channels").Where("tenant_id = ?", tenantID).Where("id = ?", id).Exec(ctx)
		return affected(res, err)
	})
	return wrap(err, "delete alert channel %q", id)
}

// alertRuleRow is a row of alert_rules.
type alertRuleRow struct {
	bun.BaseModel `bun:"table:alert_rules"`

	ID              string    `bun:"id"`
	TenantID        string    `bun:"tenant_id"`
	Name            string    `bun:"name"`
	Kind            string    `bun:"kind"`
	ProjectID       string    `bun:"project_id"`
	Tag             string    `bun:"tag"`
	DeviceID        string    `bun:"device_id"`
	Params          string    `bun:"params"`
	ChannelIDs      string    `bun:"channel_ids"`
	CooldownSeconds int       `bun:"cooldown_seconds"`
	Enabled         bool      `bun:"enabled"`
	CreatedBy       string    `bun:"created_by"`
	CreatedAt       time.Time `bun:"created_at"`
	UpdatedAt       time.Time `bun:"updated_at"`
}

func (r alertRuleRow) domain() (store.AlertRule, error) {
	ids, err := fromJSON[string](r.ChannelIDs)
	if err != nil {
		return store.AlertRule{}, err
	}
	return store.AlertRule{ID: r.ID, TenantID: r.TenantID, Name: r.Name, Kind: r.Kind, ProjectID: r.ProjectID,
		Tag: r.Tag, DeviceID: r.DeviceID, Params: r.Params, ChannelIDs: ids, CooldownSeconds: r.CooldownSeconds,
		Enabled: r.Enabled, CreatedBy: r.CreatedBy, CreatedAt: utc(r.CreatedAt), UpdatedAt: utc(r.UpdatedAt)}, nil
}

// CreateAlertRule inserts r.
func (s *Store) CreateAlertRule(ctx context.Context, r *store.AlertRule) error {
	v := *r
	store.PrepareCreate(&v.ID, &v.CreatedAt, &v.UpdatedAt)
	row := alertRuleRow{ID: v.ID, TenantID: v.TenantID, Name: v.Name, Kind: v.Kind, ProjectID: v.ProjectID,
		Tag: v.Tag, DeviceID: v.DeviceID, Params: v.Params, ChannelIDs: toJSON(v.ChannelIDs),
		CooldownSeconds: v.CooldownSeconds, Enabled: v.Enabled, CreatedBy: v.CreatedBy,
		CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create alert rule in tenant %q", v.TenantID)
	}
	*r = v
	return nil
}

// AlertRule returns one rule of the tenant.
func (s *Store) AlertRule(ctx context.Context, tenantID, id string) (store.AlertRule, error) {
	var row alertRuleRow
	if err := s.r.NewSelect().Model(&row).Where("tenant_id = ?", tenantID).Where("id = ?", id).Scan(ctx); err != nil {
		return store.AlertRule{}, wrap(err, "get alert rule %q", id)
	}
	r, err := row.domain()
	return r, wrap(err, "get alert rule %q", id)
}

// ListAlertRules pages through the tenant's rules.
func (s *Store) ListAlertRules(ctx context.Context, tenantID string, opts store.ListOptions) (store.Page[store.AlertRule], error) {
	var rows []alertRuleRow
	if err := pageByID(s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID), opts).Scan(ctx); err != nil {
		return store.Page[store.AlertRule]{}, wrap(err, "list alert rules of tenant %q", tenantID)
	}
	items := make([]store.AlertRule, len(rows))
	for i, row := range rows {
		r, err := row.domain()
		if err != nil {
			return store.Page[store.AlertRule]{}, wrap(err, "list alert rules of tenant %q", tenantID)
		}
		items[i] = r
	}
	return store.MakePage(items, opts.PageSize(), func(r store.AlertRule) string { return r.ID }), nil
}

// UpdateAlertRule writes the rule.
func (s *Store) UpdateAlertRule(ctx context.Context, r *store.AlertRule) error {
	now := store.Now()
	res, err := s.w.NewUpdate().Table("alert_rules").
		Set("name = ?", r.Name).
		Set("kind = ?", r.Kind).
		Set("project_id = ?", r.ProjectID).
		Set("tag = ?", r.Tag).
		Set("device_id = ?", r.DeviceID).
		Set("params = ?", r.Params).
		Set("channel_ids = ?", toJSON(r.ChannelIDs)).
		Set("cooldown_seconds = ?", r.CooldownSeconds).
		Set("enabled = ?", r.Enabled).
		Set("updated_at = ?", now).
		Where("tenant_id = ?", r.TenantID).
		Where("id = ?", r.ID).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "update alert rule %q", r.ID)
	}
	r.UpdatedAt = now
	return nil
}

// DeleteAlertRule removes the rule; its alerts stay in the history.
func (s *Store) DeleteAlertRule(ctx context.Context, tenantID, id string) error {
	res, err := s.w.NewDelete().Table("alert_rules").Where("tenant_id = ?", tenantID).Where("id = ?", id).Exec(ctx)
	return wrap(affected(res, err), "delete alert rule %q", id)
}

// alertRow is a row of alerts.
type alertRow struct {
	bun.BaseModel `bun:"table:alerts"`

	ID             string     `bun:"id"`
	TenantID       string     `bun:"tenant_id"`
	RuleID         string     `bun:"rule_id"`
	RuleName       string     `bun:"rule_name"`
	Kind           string     `bun:"kind"`
	State          string     `bun:"state"`
	Summary        string     `bun:"summary"`
	Subjects       string     `bun:"subjects"`
	FiredAt        time.Time  `bun:"fired_at"`
	ResolvedAt     *time.Time `bun:"resolved_at"`
	AcknowledgedAt *time.Time `bun:"acknowledged_at"`
	AcknowledgedBy string     `bun:"acknowledged_by"`
	UpdatedAt      time.Time  `bun:"updated_at"`
}

func (r alertRow) domain() (store.Alert, error) {
	subjects, err := fromJSON[string](r.Subjects)
	if err != nil {
		return store.Alert{}, err
	}
	return store.Alert{ID: r.ID, TenantID: r.TenantID, RuleID: r.RuleID, RuleName: r.RuleName, Kind: r.Kind,
		State: store.AlertState(r.State), Summary: r.Summary, Subjects: subjects, FiredAt: utc(r.FiredAt),
		ResolvedAt: utcPtr(r.ResolvedAt), AcknowledgedAt: utcPtr(r.AcknowledgedAt), AcknowledgedBy: r.AcknowledgedBy,
		UpdatedAt: utc(r.UpdatedAt)}, nil
}

// CreateAlert inserts a.
func (s *Store) CreateAlert(ctx context.Context, a *store.Alert) error {
	v := *a
	store.PrepareCreate(&v.ID, &v.FiredAt, &v.UpdatedAt)
	v.ResolvedAt, v.AcknowledgedAt = tsPtr(v.ResolvedAt), tsPtr(v.AcknowledgedAt)
	row := alertRow{ID: v.ID, TenantID: v.TenantID, RuleID: v.RuleID, RuleName: v.RuleName, Kind: v.Kind,
		State: string(v.State), Summary: v.Summary, Subjects: toJSON(v.Subjects), FiredAt: v.FiredAt,
		ResolvedAt: v.ResolvedAt, AcknowledgedAt: v.AcknowledgedAt, AcknowledgedBy: v.AcknowledgedBy, UpdatedAt: v.UpdatedAt}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create alert in tenant %q", v.TenantID)
	}
	*a = v
	return nil
}

// Alert returns one alert of the tenant.
func (s *Store) Alert(ctx context.Context, tenantID, id string) (store.Alert, error) {
	var row alertRow
	if err := s.r.NewSelect().Model(&row).Where("tenant_id = ?", tenantID).Where("id = ?", id).Scan(ctx); err != nil {
		return store.Alert{}, wrap(err, "get alert %q", id)
	}
	a, err := row.domain()
	return a, wrap(err, "get alert %q", id)
}

// ListAlerts pages through the tenant's alerts matching f.
func (s *Store) ListAlerts(ctx context.Context, tenantID string, f store.AlertFilter, opts store.ListOptions) (store.Page[store.Alert], error) {
	var rows []alertRow
	q := s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID)
	if f.State != "" {
		q = q.Where("state = ?", string(f.State))
	}
	if f.RuleID != "" {
		q = q.Where("rule_id = ?", f.RuleID)
	}
	if err := pageByID(q, opts).Scan(ctx); err != nil {
		return store.Page[store.Alert]{}, wrap(err, "list alerts of tenant %q", tenantID)
	}
	items := make([]store.Alert, len(rows))
	for i, row := range rows {
		a, err := row.domain()
		if err != nil {
			return store.Page[store.Alert]{}, wrap(err, "list alerts of tenant %q", tenantID)
		}
		items[i] = a
	}
	return store.MakePage(items, opts.PageSize(), func(a store.Alert) string { return a.ID }), nil
}

// AcknowledgeAlert records the acknowledgement once: a firing alert becomes acknowledged, a
// resolved one keeps its state.
func (s *Store) AcknowledgeAlert(ctx context.Context, tenantID, id, userID string, at time.Time) error {
	at = ts(at)
	update := func(fromState string, setState bool) (int64, error) {
		q := s.w.NewUpdate().Table("alerts").
			Set("acknowledged_at = ?", at).
			Set("acknowledged_by = ?", userID).
			Set("updated_at = ?", at).
			Where("tenant_id = ?", tenantID).Where("id = ?", id).
			Where("acknowledged_at IS NULL").Where("state = ?", fromState)
		if setState {
			q = q.Set("state = ?", string(store.AlertAcknowledged))
		}
		res, err := q.Exec(ctx)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	n, err := update(string(store.AlertFiring), true)
	if err == nil && n == 0 {
		n, err = update(string(store.AlertResolved), false)
	}
	if err == nil && n == 0 {
		err = notFoundOr(ctx, s.r, "alerts", tenantID, id, store.ErrConflict)
	}
	return wrap(err, "acknowledge alert %q", id)
}

// ResolveAlert marks the alert resolved once.
func (s *Store) ResolveAlert(ctx context.Context, tenantID, id string, at time.Time) error {
	at = ts(at)
	res, err := s.w.NewUpdate().Table("alerts").
		Set("state = ?", string(store.AlertResolved)).
		Set("resolved_at = ?", at).
		Set("updated_at = ?", at).
		Where("tenant_id = ?", tenantID).Where("id = ?", id).
		Where("state <> ?", string(store.AlertResolved)).
		Exec(ctx)
	err = affected(res, err)
	if errors.Is(err, store.ErrNotFound) {
		err = notFoundOr(ctx, s.r, "alerts", tenantID, id, store.ErrConflict)
	}
	return wrap(err, "resolve alert %q", id)
}

// alertDeliveryRow is a row of alert_deliveries.
type alertDeliveryRow struct {
	bun.BaseModel `bun:"table:alert_deliveries"`

	ID              string     `bun:"id"`
	TenantID        string     `bun:"tenant_id"`
	ChannelID       string     `bun:"channel_id"`
	AlertID         string     `bun:"alert_id"`
	MessageID       string     `bun:"message_id"`
	Payload         string     `bun:"payload"`
	State           string     `bun:"state"`
	Attempts        int        `bun:"attempts"`
	NextAttemptAt   time.Time  `bun:"next_attempt_at"`
	LeaseOwner      string     `bun:"lease_owner"`
	LeaseUntil      *time.Time `bun:"lease_until"`
	LastStatus      int        `bun:"last_status"`
	LastLatencyMS   int64      `bun:"last_latency_ms"`
	LastError       string     `bun:"last_error"`
	ResponseExcerpt string     `bun:"response_excerpt"`
	CreatedAt       time.Time  `bun:"created_at"`
	UpdatedAt       time.Time  `bun:"updated_at"`
	DeliveredAt     *time.Time `bun:"delivered_at"`
}

func (r alertDeliveryRow) domain() store.AlertDelivery {
	return store.AlertDelivery{ID: r.ID, TenantID: r.TenantID, ChannelID: r.ChannelID, AlertID: r.AlertID,
		MessageID: r.MessageID, Payload: r.Payload, State: store.DeliveryState(r.State), Attempts: r.Attempts,
		NextAttemptAt: utc(r.NextAttemptAt), LeaseOwner: r.LeaseOwner, LeaseUntil: utcPtr(r.LeaseUntil),
		LastStatus: r.LastStatus, LastLatencyMS: r.LastLatencyMS, LastError: r.LastError,
		ResponseExcerpt: r.ResponseExcerpt, CreatedAt: utc(r.CreatedAt), UpdatedAt: utc(r.UpdatedAt),
		DeliveredAt: utcPtr(r.DeliveredAt)}
}

// CreateAlertDelivery inserts d; a zero NextAttemptAt means due at once.
func (s *Store) CreateAlertDelivery(ctx context.Context, d *store.AlertDelivery) error {
	v := *d
	store.PrepareCreate(&v.ID, &v.CreatedAt, &v.UpdatedAt)
	if v.NextAttemptAt.IsZero() {
		v.NextAttemptAt = v.CreatedAt
	}
	v.NextAttemptAt = ts(v.NextAttemptAt)
	v.LeaseUntil, v.DeliveredAt = tsPtr(v.LeaseUntil), tsPtr(v.DeliveredAt)
	if v.State == "" {
		v.State = store.DeliveryPending
	}
	row := alertDeliveryRow{ID: v.ID, TenantID: v.TenantID, ChannelID: v.ChannelID, AlertID: v.AlertID,
		MessageID: v.MessageID, Payload: v.Payload, State: string(v.State), Attempts: v.Attempts,
		NextAttemptAt: v.NextAttemptAt, LeaseOwner: v.LeaseOwner, LeaseUntil: v.LeaseUntil,
		LastStatus: v.LastStatus, LastLatencyMS: v.LastLatencyMS, LastError: v.LastError,
		ResponseExcerpt: v.ResponseExcerpt, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt, DeliveredAt: v.DeliveredAt}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create alert delivery in tenant %q", v.TenantID)
	}
	*d = v
	return nil
}

// AlertDelivery returns one delivery of the tenant.
func (s *Store) AlertDelivery(ctx context.Context, tenantID, id string) (store.AlertDelivery, error) {
	var row alertDeliveryRow
	if err := s.r.NewSelect().Model(&row).Where("tenant_id = ?", tenantID).Where("id = ?", id).Scan(ctx); err != nil {
		return store.AlertDelivery{}, wrap(err, "get alert delivery %q", id)
	}
	return row.domain(), nil
}

// ListAlertDeliveries pages through the tenant's deliveries matching f.
func (s *Store) ListAlertDeliveries(ctx context.Context, tenantID string, f store.DeliveryFilter, opts store.ListOptions) (store.Page[store.AlertDelivery], error) {
	var rows []alertDeliveryRow
	q := s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID)
	if f.ChannelID != "" {
		q = q.Where("channel_id = ?", f.ChannelID)
	}
	if f.AlertID != "" {
		q = q.Where("alert_id = ?", f.AlertID)
	}
	if f.State != "" {
		q = q.Where("state = ?", string(f.State))
	}
	if err := pageByID(q, opts).Scan(ctx); err != nil {
		return store.Page[store.AlertDelivery]{}, wrap(err, "list alert deliveries of tenant %q", tenantID)
	}
	items := make([]store.AlertDelivery, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(d store.AlertDelivery) string { return d.ID }), nil
}

// ClaimAlertDeliveries picks due rows, then takes each with a conditional update: a row
// another worker took in between no longer matches and is skipped, so every dialect claims
// without row locks.
func (s *Store) ClaimAlertDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.AlertDelivery, error) {
	now = ts(now)
	until := ts(now.Add(lease))
	if limit <= 0 {
		limit = store.DefaultPageSize
	}
	due := func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("state = ?", string(store.DeliveryPending)).
			Where("next_attempt_at <= ?", now).
			WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
				return q.Where("lease_until IS NULL").WhereOr("lease_until < ?", now)
			})
	}
	var ids []string
	err := due(s.r.NewSelect().Table("alert_deliveries").Column("id")).
		OrderExpr("next_attempt_at ASC").Limit(int64(limit)).Scan(ctx, &ids)
	if err != nil {
		return nil, wrap(err, "claim alert deliveries")
	}
	var out []store.AlertDelivery
	for _, id := range ids {
		res, err := s.w.NewUpdate().Table("alert_deliveries").
			Set("lease_owner = ?", owner).
			Set("lease_until = ?", until).
			Where("id = ?", id).
			Where("state = ?", string(store.DeliveryPending)).
			Where("next_attempt_at <= ?", now).
			WhereGroup(" AND ", func(q *bun.UpdateQuery) *bun.UpdateQuery {
				return q.Where("lease_until IS NULL").WhereOr("lease_until < ?", now)
			}).
			Exec(ctx)
		if err != nil {
			return out, wrap(err, "claim alert delivery %q", id)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		var row alertDeliveryRow
		if err := s.w.NewSelect().Model(&row).Where("id = ?", id).Scan(ctx); err != nil {
			return out, wrap(err, "read claimed alert delivery %q", id)
		}
		out = append(out, row.domain())
	}
	return out, nil
}

// FinishAlertDeliveryAttempt writes an attempt's outcome while d.LeaseOwner holds the lease.
func (s *Store) FinishAlertDeliveryAttempt(ctx context.Context, d *store.AlertDelivery) error {
	now := store.Now()
	d.NextAttemptAt = ts(d.NextAttemptAt)
	d.DeliveredAt = tsPtr(d.DeliveredAt)
	res, err := s.w.NewUpdate().Table("alert_deliveries").
		Set("state = ?", string(d.State)).
		Set("attempts = ?", d.Attempts).
		Set("next_attempt_at = ?", d.NextAttemptAt).
		Set("last_status = ?", d.LastStatus).
		Set("last_latency_ms = ?", d.LastLatencyMS).
		Set("last_error = ?", d.LastError).
		Set("response_excerpt = ?", d.ResponseExcerpt).
		Set("delivered_at = ?", d.DeliveredAt).
		Set("lease_owner = ''").
		Set("lease_until = NULL").
		Set("updated_at = ?", now).
		Where("tenant_id = ?", d.TenantID).
		Where("id = ?", d.ID).
		Where("lease_owner = ?", d.LeaseOwner).
		Where("lease_until IS NOT NULL").
		Exec(ctx)
	err = affected(res, err)
	if errors.Is(err, store.ErrNotFound) {
		err = notFoundOr(ctx, s.r, "alert_deliveries", d.TenantID, d.ID, store.ErrConflict)
	}
	if err != nil {
		return wrap(err, "finish alert delivery %q", d.ID)
	}
	d.LeaseOwner, d.LeaseUntil, d.UpdatedAt = "", nil, now
	return nil
}

// PruneAlertHistory deletes old resolved and acknowledged alerts and old finished deliveries.
func (s *Store) PruneAlertHistory(ctx context.Context, before time.Time) (int64, error) {
	before = ts(before)
	var n int64
	for _, p := range []struct {
		table  string
		states []string
	}{
		{"alerts", []string{string(store.AlertResolved), string(store.AlertAcknowledged)}},
		{"alert_deliveries", []string{string(store.DeliveryDelivered), string(store.DeliveryFailed)}},
	} {
		res, err := s.w.NewDelete().Table(p.table).
			Where("state IN (?)", bun.In(p.states)).
			Where("updated_at < ?", before).
			Exec(ctx)
		if err != nil {
			return n, wrap(err, "prune %s", p.table)
		}
		if k, err := res.RowsAffected(); err == nil {
			n += k
		}
	}
	return n, nil
}

// pushSubscriptionRow is a row of push_subscriptions.
type pushSubscriptionRow struct {
	bun.BaseModel `bun:"table:push_subscriptions"`

	ID        string    `bun:"id"`
	TenantID  string    `bun:"tenant_id"`
	UserID    string    `bun:"user_id"`
	Endpoint  string    `bun:"endpoint"`
	P256dh    string    `bun:"p256dh"`
	Auth      string    `bun:"auth"`
	CreatedAt time.Time `bun:"created_at"`
}

// CreatePushSubscription inserts p; the (tenant, endpoint) pair is unique.
func (s *Store) CreatePushSubscription(ctx context.Context, p *store.PushSubscription) error {
	v := *p
	store.PrepareCreate(&v.ID, &v.CreatedAt, nil)
	row := pushSubscriptionRow{ID: v.ID, TenantID: v.TenantID, UserID: v.UserID, Endpoint: v.Endpoint, P256dh: v.P256dh,
		Auth: v.Auth, CreatedAt: v.CreatedAt}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create push subscription in tenant %q", v.TenantID)
	}
	*p = v
	return nil
}

// ListPushSubscriptions pages through the tenant's subscriptions.
func (s *Store) ListPushSubscriptions(ctx context.Context, tenantID string, opts store.ListOptions) (store.Page[store.PushSubscription], error) {
	var rows []pushSubscriptionRow
	if err := pageByID(s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID), opts).Scan(ctx); err != nil {
		return store.Page[store.PushSubscription]{}, wrap(err, "list push subscriptions of tenant %q", tenantID)
	}
	items := make([]store.PushSubscription, len(rows))
	for i, r := range rows {
		items[i] = store.PushSubscription{ID: r.ID, TenantID: r.TenantID, UserID: r.UserID, Endpoint: r.Endpoint,
			P256dh: r.P256dh, Auth: r.Auth, CreatedAt: utc(r.CreatedAt)}
	}
	return store.MakePage(items, opts.PageSize(), func(p store.PushSubscription) string { return p.ID }), nil
}

// DeletePushSubscription removes one subscription.
func (s *Store) DeletePushSubscription(ctx context.Context, tenantID, id string) error {
	res, err := s.w.NewDelete().Table("push_subscriptions").Where("tenant_id = ?", tenantID).Where("id = ?", id).Exec(ctx)
	return wrap(affected(res, err), "delete push subscription %q", id)
}

// serverSecretRow is a row of server_secrets.
type serverSecretRow struct {
	bun.BaseModel `bun:"table:server_secrets"`

	Name      string    `bun:"name,pk"`
	Sealed    []byte    `bun:"sealed"`
	CreatedAt time.Time `bun:"created_at"`
}

// ServerSecret returns the secret called name, or store.ErrNotFound.
func (s *Store) ServerSecret(ctx context.Context, name string) (store.ServerSecret, error) {
	var row serverSecretRow
	if err := s.r.NewSelect().Model(&row).Where("name = ?", name).Scan(ctx); err != nil {
		return store.ServerSecret{}, wrap(err, "get server secret %q", name)
	}
	return store.ServerSecret{Name: row.Name, Sealed: row.Sealed, CreatedAt: utc(row.CreatedAt)}, nil
}

// CreateServerSecret writes v; store.ErrConflict when one of that name exists.
func (s *Store) CreateServerSecret(ctx context.Context, v *store.ServerSecret) error {
	v.CreatedAt = nowOr(v.CreatedAt)
	row := serverSecretRow{Name: v.Name, Sealed: v.Sealed, CreatedAt: v.CreatedAt}
	_, err := s.w.NewInsert().Model(&row).Exec(ctx)
	return wrap(err, "create server secret %q", v.Name)
}
