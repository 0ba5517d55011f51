package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/alerts"
	"github.com/espadmin/espadmin/store"
)

// Audit actions of the alert routes.
const (
	auditAlertRuleCreate    = "alert_rule.create"
	auditAlertRuleUpdate    = "alert_rule.update"
	auditAlertRuleDelete    = "alert_rule.delete"
	auditAlertChannelCreate = "alert_channel.create"
	auditAlertChannelUpdate = "alert_channel.update"
	auditAlertChannelDelete = "alert_channel.delete"
	auditAlertChannelSecret = "alert_channel.rotate_secret"
	auditAlertAcknowledge   = "alert.acknowledge"
	auditAlertResend        = "alert_delivery.resend"
)

type alertQuery struct {
	pageQuery
	State  string `query:"state" doc:"firing, acknowledged or resolved"`
	RuleID string `query:"rule_id"`
}

type deliveryQuery struct {
	pageQuery
	ChannelID string `query:"channel_id"`
	AlertID   string `query:"alert_id"`
	State     string `query:"state" doc:"pending, delivered or failed"`
}

type alertResponse struct {
	ID             string     `json:"id"`
	RuleID         string     `json:"rule_id"`
	RuleName       string     `json:"rule_name"`
	Kind           string     `json:"kind"`
	State          string     `json:"state" enum:"firing,acknowledged,resolved"`
	Summary        string     `json:"summary"`
	Subjects       []string   `json:"subjects"`
	FiredAt        time.Time  `json:"fired_at"`
	ResolvedAt     *time.Time `json:"resolved_at,omitempty"`
	AcknowledgedAt *time.Time `json:"acknowledged_at,omitempty"`
	AcknowledgedBy string     `json:"acknowledged_by,omitempty" doc:"user ID"`
}

func alertOf(a store.Alert) alertResponse {
	subjects := a.Subjects
	if subjects == nil {
		subjects = []string{}
	}
	return alertResponse{ID: a.ID, RuleID: a.RuleID, RuleName: a.RuleName, Kind: a.Kind, State: string(a.State),
		Summary: a.Summary, Subjects: subjects, FiredAt: a.FiredAt, ResolvedAt: a.ResolvedAt,
		AcknowledgedAt: a.AcknowledgedAt, AcknowledgedBy: a.AcknowledgedBy}
}

type alertParams struct {
	Minutes int      `json:"minutes,omitempty"`
	Count   int      `json:"count,omitempty"`
	States  []string `json:"states,omitempty"`
}

type alertRuleRequest struct {
	Name            string      `json:"name" doc:"1 to 100 characters"`
	Kind            string      `json:"kind" enum:"device_offline,device_online,error_new,error_rate,rollout,config_not_applied,auth_failures"`
	ProjectID       string      `json:"project_id,omitempty"`
	Tag             string      `json:"tag,omitempty"`
	DeviceID        string      `json:"device_id,omitempty"`
	Params          alertParams `json:"params"`
	ChannelIDs      []string    `json:"channel_ids"`
	CooldownSeconds int         `json:"cooldown_seconds" doc:"0 to 604800"`
	Enabled         *bool       `json:"enabled,omitempty" doc:"default true"`
}

func (r alertRuleRequest) input() alerts.RuleInput {
	return alerts.RuleInput{Name: r.Name, Kind: r.Kind, ProjectID: r.ProjectID, Tag: r.Tag, DeviceID: r.DeviceID,
		Params: alerts.Params(r.Params), ChannelIDs: r.ChannelIDs, CooldownSeconds: r.CooldownSeconds,
		Enabled: r.Enabled == nil || *r.Enabled}
}

type alertRuleResponse struct {
	ID              string      `json:"id"`
	Name            string      `json:"name"`
	Kind            string      `json:"kind"`
	ProjectID       string      `json:"project_id,omitempty"`
	Tag             string      `json:"tag,omitempty"`
	DeviceID        string      `json:"device_id,omitempty"`
	Params          alertParams `json:"params"`
	ChannelIDs      []string    `json:"channel_ids"`
	CooldownSeconds int         `json:"cooldown_seconds"`
	Enabled         bool        `json:"enabled"`
	CreatedBy       string      `json:"created_by,omitempty"`
	CreatedAt       time.Time   `json:"created_at"`
	UpdatedAt       time.Time   `json:"updated_at"`
}

func alertRuleOf(r store.AlertRule) alertRuleResponse {
	var p alertParams
	_ = json.Unmarshal([]byte(r.Params), &p)
	ids := r.ChannelIDs
	if ids == nil {
		ids = []string{}
	}
	return alertRuleResponse{ID: r.ID, Name: r.Name, Kind: r.Kind, ProjectID: r.ProjectID, Tag: r.Tag, DeviceID: r.DeviceID,
		Params: p, ChannelIDs: ids, CooldownSeconds: r.CooldownSeconds, Enabled: r.Enabled, CreatedBy: r.CreatedBy,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

type alertChannelRequest struct {
	Name    string  `json:"name" doc:"1 to 100 characters"`
	Kind    string  `json:"kind" enum:"webhook,email,ntfy,push"`
	Target  string  `json:"target,omitempty" doc:"URL (webhook, ntfy) or comma-separated email addresses"`
	Preset  string  `json:"preset,omitempty" enum:"standard,slack,discord" doc:"webhooks only; default standard"`
	Enabled *bool   `json:"enabled,omitempty" doc:"default true"`
	Secret  *string `json:"secret,omitempty" doc:"ntfy access token (write-only)"`
}

func (r alertChannelRequest) input() alerts.ChannelInput {
	return alerts.ChannelInput{Name: r.Name, Kind: r.Kind, Target: r.Target, Preset: r.Preset,
		Enabled: r.Enabled == nil || *r.Enabled, Secret: r.Secret}
}

type alertChannelResponse struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	Target    string    `json:"target"`
	Preset    string    `json:"preset,omitempty"`
	Enabled   bool      `json:"enabled"`
	HasSecret bool      `json:"has_secret" doc:"a signing secret or token is set"`
	Secret    string    `json:"secret,omitempty" doc:"the webhook signing secret: only in the answer that made it"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func alertChannelOf(c store.AlertChannel) alertChannelResponse {
	var o alerts.ChannelOptions
	_ = json.Unmarshal([]byte(c.Options), &o)
	return alertChannelResponse{ID: c.ID, Name: c.Name, Kind: c.Kind, Target: c.Target, Preset: o.Preset, Enabled: c.Enabled,
		HasSecret: len(c.SecretSealed) > 0, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

type alertDeliveryResponse struct {
	ID              string     `json:"id"`
	ChannelID       string     `json:"channel_id"`
	AlertID         string     `json:"alert_id,omitempty"`
	MessageID       string     `json:"message_id" doc:"the webhook-id header"`
	State           string     `json:"state" enum:"pending,delivered,failed"`
	Attempts        int        `json:"attempts"`
	NextAttemptAt   *time.Time `json:"next_attempt_at,omitempty" doc:"pending only"`
	LastStatus      int        `json:"last_status,omitempty" doc:"HTTP status of the last attempt"`
	LastLatencyMS   int64      `json:"last_latency_ms"`
	LastError       string     `json:"last_error,omitempty"`
	ResponseExcerpt string     `json:"response_excerpt,omitempty"`
	Type            string     `json:"type" doc:"alert.firing, alert.resolved or alert.test"`
	CreatedAt       time.Time  `json:"created_at"`
	DeliveredAt     *time.Time `json:"delivered_at,omitempty"`
}

func alertDeliveryOf(d store.AlertDelivery) alertDeliveryResponse {
	var m alerts.Message
	_ = json.Unmarshal([]byte(d.Payload), &m)
	r := alertDeliveryResponse{ID: d.ID, ChannelID: d.ChannelID, AlertID: d.AlertID, MessageID: d.MessageID, State: string(d.State),
		Attempts: d.Attempts, LastStatus: d.LastStatus, LastLatencyMS: d.LastLatencyMS, LastError: d.LastError,
		ResponseExcerpt: d.ResponseExcerpt, Type: m.Type, CreatedAt: d.CreatedAt, DeliveredAt: d.DeliveredAt}
	if d.State == store.DeliveryPending {
		next := d.NextAttemptAt
		r.NextAttemptAt = &next
	}
	return r
}

// alertsReady fails with 503 when the alert service is not configured.
func (s *Server) alertsReady() error {
	if s.deps.Alerts == nil {
		return &Error{Status: http.StatusServiceUnavailable, Message: "alerts are not available"}
	}
	return nil
}

// notFound maps a missing record (or an ID no record can have) to a 404 naming it.
func notFound(err error, id, what string) error {
	if errors.Is(err, store.ErrNotFound) || len(id) > 64 {
		return &Error{Status: http.StatusNotFound, Message: what + " not found", Err: err}
	}
	return err
}

func (s *Server) listAlerts(c echo.Context) error {
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	opts.Desc = true
	f := store.AlertFilter{State: store.AlertState(c.QueryParam("state")), RuleID: c.QueryParam("rule_id")}
	if f.State != "" && !slices.Contains([]store.AlertState{store.AlertFiring, store.AlertAcknowledged, store.AlertResolved}, f.State) {
		return store.Invalid("state", "must be firing, acknowledged or resolved")
	}
	page, err := s.deps.Store.ListAlerts(c.Request().Context(), tenantFrom(c).Tenant.ID, f, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(page, alertOf))
}

func (s *Server) getAlert(c echo.Context) error {
	id := c.Param("alert")
	a, err := s.deps.Store.Alert(c.Request().Context(), tenantFrom(c).Tenant.ID, id)
	if err != nil {
		return notFound(err, id, "alert")
	}
	return c.JSON(http.StatusOK, alertOf(a))
}

func (s *Server) acknowledgeAlert(c echo.Context) error {
	ctx, tenantID, id := c.Request().Context(), tenantFrom(c).Tenant.ID, c.Param("alert")
	p, _ := principalFrom(c)
	by := p.UserID
	if by == "" {
		by = "token:" + p.TokenID
	}
	err := s.deps.Store.AcknowledgeAlert(ctx, tenantID, id, by, s.now())
	switch {
	case errors.Is(err, store.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: "conflict", Message: "the alert was acknowledged already", Err: err}
	case err != nil:
		return notFound(err, id, "alert")
	}
	a, err := s.deps.Store.Alert(ctx, tenantID, id)
	if err != nil {
		return err
	}
	s.audit(c, auditAlertAcknowledge, "alert", id, map[string]any{"rule": a.RuleName})
	return c.JSON(http.StatusOK, alertOf(a))
}

func (s *Server) alertRule(c echo.Context) (store.AlertRule, error) {
	id := c.Param("rule")
	r, err := s.deps.Store.AlertRule(c.Request().Context(), tenantFrom(c).Tenant.ID, id)
	return r, notFound(err, id, "alert rule")
}

func (s *Server) listAlertRules(c echo.Context) error {
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	page, err := s.deps.Store.ListAlertRules(c.Request().Context(), tenantFrom(c).Tenant.ID, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(page, alertRuleOf))
}

func (s *Server) getAlertRule(c echo.Context) error {
	r, err := s.alertRule(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, alertRuleOf(r))
}

func (s *Server) createAlertRule(c echo.Context) error {
	if err := s.alertsReady(); err != nil {
		return err
	}
	var req alertRuleRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	p, _ := principalFrom(c)
	r, err := s.deps.Alerts.CreateRule(c.Request().Context(), tenantFrom(c).Tenant.ID, p.UserID, req.input())
	if err != nil {
		return err
	}
	s.audit(c, auditAlertRuleCreate, "alert_rule", r.ID, map[string]any{"name": r.Name, "kind": r.Kind})
	return c.JSON(http.StatusCreated, alertRuleOf(r))
}

func (s *Server) updateAlertRule(c echo.Context) error {
	if err := s.alertsReady(); err != nil {
		return err
	}
	r, err := s.alertRule(c)
	if err != nil {
		return err
	}
	var req alertRuleRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if r, err = s.deps.Alerts.UpdateRule(c.Request().Context(), r, req.input()); err != nil {
		return err
	}
	s.audit(c, auditAlertRuleUpdate, "alert_rule", r.ID, map[string]any{"name": r.Name, "kind": r.Kind, "enabled": r.Enabled})
	return c.JSON(http.StatusOK, alertRuleOf(r))
}

func (s *Server) deleteAlertRule(c echo.Context) error {
	if err := s.alertsReady(); err != nil {
		return err
	}
	r, err := s.alertRule(c)
	if err != nil {
		return err
	}
	if err := s.deps.Alerts.DeleteRule(c.Request().Context(), r.TenantID, r.ID); err != nil {
		return err
	}
	s.audit(c, auditAlertRuleDelete, "alert_rule", r.ID, map[string]any{"name": r.Name})
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) alertChannel(c echo.Context) (store.AlertChannel, error) {
	id := c.Param("channel")
	ch, err := s.deps.Store.AlertChannel(c.Request().Context(), tenantFrom(c).Tenant.ID, id)
	return ch, notFound(err, id, "alert channel")
}

func (s *Server) listAlertChannels(c echo.Context) error {
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	page, err := s.deps.Store.ListAlertChannels(c.Request().Context(), tenantFrom(c).Tenant.ID, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(page, alertChannelOf))
}

func (s *Server) getAlertChannel(c echo.Context) error {
	ch, err := s.alertChannel(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, alertChannelOf(ch))
}

func (s *Server) createAlertChannel(c echo.Context) error {
	if err := s.alertsReady(); err != nil {
		return err
	}
	var req alertChannelRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ch, secret, err := s.deps.Alerts.CreateChannel(c.Request().Context(), tenantFrom(c).Tenant.ID, req.input())
	if err != nil {
		return err
	}
	s.audit(c, auditAlertChannelCreate, "alert_channel", ch.ID, map[string]any{"name": ch.Name, "kind": ch.Kind})
	resp := alertChannelOf(ch)
	resp.Secret = secret
	return c.JSON(http.StatusCreated, resp)
}

func (s *Server) updateAlertChannel(c echo.Context) error {
	if err := s.alertsReady(); err != nil {
		return err
	}
	ch, err := s.alertChannel(c)
	if err != nil {
		return err
	}
	var req alertChannelRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if ch, err = s.deps.Alerts.UpdateChannel(c.Request().Context(), ch, req.input()); err != nil {
		return err
	}
	s.audit(c, auditAlertChannelUpdate, "alert_channel", ch.ID, map[string]any{"name": ch.Name, "enabled": ch.Enabled})
	return c.JSON(http.StatusOK, alertChannelOf(ch))
}

func (s *Server) deleteAlertChannel(c echo.Context) error {
	ch, err := s.alertChannel(c)
	if err != nil {
		return err
	}
	if err := s.deps.Store.DeleteAlertChannel(c.Request().Context(), ch.TenantID, ch.ID); err != nil {
		return err
	}
	s.audit(c, auditAlertChannelDelete, "alert_channel", ch.ID, map[string]any{"name": ch.Name})
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) rotateAlertChannelSecret(c echo.Context) error {
	if err := s.alertsReady(); err != nil {
		return err
	}
	ch, err := s.alertChannel(c)
	if err != nil {
		return err
	}
	secret, err := s.deps.Alerts.RotateSecret(c.Request().Context(), ch)
	if err != nil {
		return err
	}
	if ch, err = s.deps.Store.AlertChannel(c.Request().Context(), ch.TenantID, ch.ID); err != nil {
		return err
	}
	s.audit(c, auditAlertChannelSecret, "alert_channel", ch.ID, map[string]any{"name": ch.Name})
	resp := alertChannelOf(ch)
	resp.Secret = secret
	return c.JSON(http.StatusOK, resp)
}

func (s *Server) testAlertChannel(c echo.Context) error {
	if err := s.alertsReady(); err != nil {
		return err
	}
	ch, err := s.alertChannel(c)
	if err != nil {
		return err
	}
	d, err := s.deps.Alerts.TestChannel(c.Request().Context(), ch, tenantFrom(c).Tenant.Slug, s.now())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, alertDeliveryOf(d))
}

func (s *Server) listAlertDeliveries(c echo.Context) error {
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	opts.Desc = true
	f := store.DeliveryFilter{ChannelID: c.QueryParam("channel_id"), AlertID: c.QueryParam("alert_id"), State: store.DeliveryState(c.QueryParam("state"))}
	if f.State != "" && !slices.Contains([]store.DeliveryState{store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed}, f.State) {
		return store.Invalid("state", "must be pending, delivered or failed")
	}
	page, err := s.deps.Store.ListAlertDeliveries(c.Request().Context(), tenantFrom(c).Tenant.ID, f, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(page, alertDeliveryOf))
}

func (s *Server) resendAlertDelivery(c echo.Context) error {
	if err := s.alertsReady(); err != nil {
		return err
	}
	ctx, id := c.Request().Context(), c.Param("delivery")
	d, err := s.deps.Store.AlertDelivery(ctx, tenantFrom(c).Tenant.ID, id)
	if err != nil {
		return notFound(err, id, "delivery")
	}
	n, err := s.deps.Alerts.Resend(ctx, d)
	if err != nil {
		return err
	}
	s.audit(c, auditAlertResend, "alert_delivery", d.ID, map[string]any{"channel_id": d.ChannelID, "new_delivery_id": n.ID})
	return c.JSON(http.StatusAccepted, alertDeliveryOf(n))
}

type pushKeyResponse struct {
	PublicKey string `json:"public_key" doc:"VAPID public key, base64url"`
}

type pushSubscriptionRequest struct {
	Endpoint string `json:"endpoint"`
	Keys     struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

type pushUnsubscribeRequest struct {
	Endpoint string `json:"endpoint"`
}

type pushSubscriptionResponse struct {
	ID        string    `json:"id"`
	Endpoint  string    `json:"endpoint"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Server) pushKey(c echo.Context) error {
	if err := s.alertsReady(); err != nil {
		return err
	}
	key, err := s.deps.Alerts.VAPIDPublicKey(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pushKeyResponse{PublicKey: key})
}

func (s *Server) subscribePush(c echo.Context) error {
	if err := s.alertsReady(); err != nil {
		return err
	}
	p, _ := principalFrom(c)
	if p.UserID == "" {
		return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "push subscriptions belong to signed-in members, not to tenant tokens"}
	}
	var req pushSubscriptionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	sub, err := s.deps.Alerts.Subscribe(c.Request().Context(), store.PushSubscription{TenantID: tenantFrom(c).Tenant.ID, UserID: p.UserID,
		Endpoint: req.Endpoint, P256dh: req.Keys.P256dh, Auth: req.Keys.Auth})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, pushSubscriptionResponse{ID: sub.ID, Endpoint: sub.Endpoint, CreatedAt: sub.CreatedAt})
}

func (s *Server) unsubscribePush(c echo.Context) error {
	if err := s.alertsReady(); err != nil {
		return err
	}
	var req pushUnsubscribeRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ok, err := s.deps.Alerts.Unsubscribe(c.Request().Context(), tenantFrom(c).Tenant.ID, req.Endpoint)
	if err != nil {
		return err
	}
	if !ok {
		return &Error{Status: http.StatusNotFound, Message: "this browser is not subscribed"}
	}
	return c.NoContent(http.StatusNoContent)
}
