package server

import "net/http"

type (
	alertRulePage     = pageResponse[alertRuleResponse]
	alertChannelPage  = pageResponse[alertChannelResponse]
	alertPage         = pageResponse[alertResponse]
	alertDeliveryPage = pageResponse[alertDeliveryResponse]
)

// alertRoutes describes alert rules, channels, the alert history and the delivery log
// (docs/alerts.md). Administrators manage rules and channels and read the delivery log;
// every member sees and acknowledges alerts.
func (s *Server) alertRoutes() []apiRoute {
	const (
		get, post, put, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
		base                = "/api/v1/tenants/:tenant/alerts"
	)
	return []apiRoute{
		{Method: get, Path: base, Handler: s.listAlerts, Tag: "alerts", Summary: "List the alert history, newest first",
			Description: "Every notification of a rule: state firing, acknowledged or resolved, who acknowledged it and when.",
			Auth:        authTenant, Perm: PermDevicesRead, Query: alertQuery{}, Response: alertPage{}},
		{Method: get, Path: base + "/:alert", Handler: s.getAlert, Tag: "alerts", Summary: "Show one alert",
			Auth: authTenant, Perm: PermDevicesRead, Response: alertResponse{}},
		{Method: post, Path: base + "/:alert/acknowledge", Handler: s.acknowledgeAlert, Tag: "alerts", Summary: "Acknowledge an alert",
			Description: "Records the caller and the time. An alert is acknowledged once: a second acknowledgement is 409.",
			Auth:        authTenant, Perm: PermDevicesRead, Response: alertResponse{}, Errors: []int{http.StatusConflict}},

		{Method: get, Path: base + "/rules", Handler: s.listAlertRules, Tag: "alerts", Summary: "List alert rules",
			Auth: authTenant, Perm: PermSettingsManage, Query: pageQuery{}, Response: alertRulePage{}},
		{Method: post, Path: base + "/rules", Handler: s.createAlertRule, Tag: "alerts", Summary: "Create an alert rule",
			Description: "kind is one of device_offline (params.minutes), device_online (params.minutes: only after that long offline), error_new, error_rate (params.count within params.minutes), rollout (params.states: paused, aborted, completed), config_not_applied (params.minutes), auth_failures (params.count within params.minutes). Scope with project_id, tag or device_id; empty scope covers every device. Subjects that meet the rule within a few seconds are one notification per channel; cooldown_seconds keeps a subject quiet after a notification. Invalid input is 422 with field errors.",
			Auth:        authTenant, Perm: PermSettingsManage, Request: alertRuleRequest{}, Status: http.StatusCreated, Response: alertRuleResponse{}},
		{Method: get, Path: base + "/rules/:rule", Handler: s.getAlertRule, Tag: "alerts", Summary: "Show an alert rule",
			Auth: authTenant, Perm: PermSettingsManage, Response: alertRuleResponse{}},
		{Method: put, Path: base + "/rules/:rule", Handler: s.updateAlertRule, Tag: "alerts", Summary: "Replace an alert rule",
			Auth: authTenant, Perm: PermSettingsManage, Request: alertRuleRequest{}, Response: alertRuleResponse{}},
		{Method: del, Path: base + "/rules/:rule", Handler: s.deleteAlertRule, Tag: "alerts", Summary: "Delete an alert rule",
			Description: "Its alerts stay in the history.",
			Auth:        authTenant, Perm: PermSettingsManage, Status: http.StatusNoContent},

		{Method: get, Path: base + "/channels", Handler: s.listAlertChannels, Tag: "alerts", Summary: "List notification channels",
			Auth: authTenant, Perm: PermSettingsManage, Query: pageQuery{}, Response: alertChannelPage{}},
		{Method: post, Path: base + "/channels", Handler: s.createAlertChannel, Tag: "alerts", Summary: "Create a notification channel",
			Description: "kind webhook (target URL; preset standard, slack or discord), email (target: comma-separated addresses, sent through the server's SMTP settings), ntfy (target: topic URL; secret: optional access token) or push (the members' subscribed browsers). A webhook's signing secret (Standard Webhooks, whsec_…) is in this response only; it is stored sealed. URL targets in private, loopback or link-local ranges are 422 unless the operator sets alerts.webhook_allow_private.",
			Auth:        authTenant, Perm: PermSettingsManage, Request: alertChannelRequest{}, Status: http.StatusCreated, Response: alertChannelResponse{}},
		{Method: get, Path: base + "/channels/:channel", Handler: s.getAlertChannel, Tag: "alerts", Summary: "Show a notification channel",
			Auth: authTenant, Perm: PermSettingsManage, Response: alertChannelResponse{}},
		{Method: put, Path: base + "/channels/:channel", Handler: s.updateAlertChannel, Tag: "alerts", Summary: "Replace a notification channel",
			Description: "The kind cannot change. An ntfy token is replaced only when secret is sent (\"\" removes it).",
			Auth:        authTenant, Perm: PermSettingsManage, Request: alertChannelRequest{}, Response: alertChannelResponse{}},
		{Method: del, Path: base + "/channels/:channel", Handler: s.deleteAlertChannel, Tag: "alerts", Summary: "Delete a notification channel",
			Description: "Its deliveries go with it.",
			Auth:        authTenant, Perm: PermSettingsManage, Status: http.StatusNoContent},
		{Method: post, Path: base + "/channels/:channel/secret", Handler: s.rotateAlertChannelSecret, Tag: "alerts", Summary: "Rotate a webhook's signing secret",
			Description: "The new secret is in this response only.",
			Auth:        authTenant, Perm: PermSettingsManage, Response: alertChannelResponse{}},
		{Method: post, Path: base + "/channels/:channel/test", Handler: s.testAlertChannel, Tag: "alerts", Summary: "Send a test notification",
			Description: "Queues an alert.test message; its outcome appears in the delivery log.",
			Auth:        authTenant, Perm: PermSettingsManage, Status: http.StatusAccepted, Response: alertDeliveryResponse{}},

		{Method: get, Path: base + "/deliveries", Handler: s.listAlertDeliveries, Tag: "alerts", Summary: "List the delivery log, newest first",
			Description: "One line per message to a channel: state (pending, delivered, failed), attempts, the last HTTP status, latency, error and the start of the answer. Pending deliveries are retried with exponential backoff for hours.",
			Auth:        authTenant, Perm: PermSettingsManage, Query: deliveryQuery{}, Response: alertDeliveryPage{}},
		{Method: get, Path: base + "/push/key", Handler: s.pushKey, Tag: "alerts", Summary: "Show the server's Web Push key",
			Description: "The VAPID public key (base64url) a browser subscribes with (PushManager.subscribe's applicationServerKey). It is made once per installation and its private half is stored sealed.",
			Auth:        authTenant, Perm: PermDevicesRead, Response: pushKeyResponse{}},
		{Method: post, Path: base + "/push/subscriptions", Handler: s.subscribePush, Tag: "alerts", Summary: "Subscribe this browser to the tenant's push notifications",
			Description: "The body is the browser's PushSubscription (PushSubscription.toJSON()). Push channels of the tenant notify every subscribed browser of its members. Signed-in members only: a tenant token is 403. Subscribing again is no error.",
			Auth:        authTenant, Perm: PermDevicesRead, Request: pushSubscriptionRequest{}, Status: http.StatusCreated, Response: pushSubscriptionResponse{},
			Errors: []int{http.StatusForbidden}},
		{Method: del, Path: base + "/push/subscriptions", Handler: s.unsubscribePush, Tag: "alerts", Summary: "Unsubscribe a browser",
			Description: "The body names the endpoint. 404 when it was not subscribed.",
			Auth:        authTenant, Perm: PermDevicesRead, Request: pushUnsubscribeRequest{}, Status: http.StatusNoContent},
		{Method: post, Path: base + "/deliveries/:delivery/resend", Handler: s.resendAlertDelivery, Tag: "alerts", Summary: "Resend a delivery",
			Description: "Queues the same message again (same webhook-id) as a new delivery.",
			Auth:        authTenant, Perm: PermSettingsManage, Status: http.StatusAccepted, Response: alertDeliveryResponse{}},
	}
}
