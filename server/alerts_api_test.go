package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/server/alerts"
	"github.com/espadmin/espadmin/store"
)

type alertIDs struct{ rule, channel, alert, delivery string }

// populateAlerts gives a tenant a webhook channel, a rule sending to it, an acknowledged
// alert of the rule and a delivery of it.
func (w *tenantWorld) populateAlerts(t *testing.T, tenantID string) alertIDs {
	t.Helper()
	ctx := context.Background()
	st := w.h.st
	ch := store.AlertChannel{TenantID: tenantID, Name: "hook", Kind: alerts.ChannelWebhook, Target: "https://8.8.8.8/hook",
		Options: `{"preset":"standard"}`, Enabled: true}
	r := store.AlertRule{TenantID: tenantID, Name: "offline", Kind: alerts.KindDeviceOffline, Params: `{"minutes":5}`, Enabled: true}
	if err := st.CreateAlertChannel(ctx, &ch); err != nil {
		t.Fatal(err)
	}
	r.ChannelIDs = []string{ch.ID}
	if err := st.CreateAlertRule(ctx, &r); err != nil {
		t.Fatal(err)
	}
	a := store.Alert{TenantID: tenantID, RuleID: r.ID, RuleName: r.Name, Kind: r.Kind, State: store.AlertFiring,
		Summary: "offline: 1 device offline for 5 min or more", Subjects: []string{"dev"}}
	if err := st.CreateAlert(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if err := st.AcknowledgeAlert(ctx, tenantID, a.ID, "someone", time.Now()); err != nil {
		t.Fatal(err)
	}
	d := store.AlertDelivery{TenantID: tenantID, ChannelID: ch.ID, AlertID: a.ID, MessageID: "msg_1",
		Payload: `{"type":"alert.firing"}`, NextAttemptAt: time.Now().Add(time.Hour)}
	if err := st.CreateAlertDelivery(ctx, &d); err != nil {
		t.Fatal(err)
	}
	return alertIDs{rule: r.ID, channel: ch.ID, alert: a.ID, delivery: d.ID}
}

// TestAlertsAPI: channels (secret shown once, sealed; SSRF refusals), rules (field errors,
// channels of the tenant only), the history with acknowledgement by a viewer, the delivery
// log with resend.
func TestAlertsAPI(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t, withPublicBrokersOnly())
	admin := w.session(t, "alpha", store.RoleAdmin)
	viewer := w.session(t, "alpha", store.RoleViewer)
	base := "/api/v1/tenants/alpha/alerts"

	st, resp := admin.do("POST", base+"/channels", map[string]any{"name": "Ops", "kind": "webhook", "target": "https://8.8.8.8/hook", "preset": "slack"})
	if st != 201 || !strings.HasPrefix(resp["secret"].(string), "whsec_") || resp["has_secret"] != true || resp["preset"] != "slack" {
		t.Fatalf("create webhook channel: %d %v", st, resp)
	}
	secret, chID := resp["secret"].(string), resp["id"].(string)
	if st, resp = admin.do("GET", base+"/channels/"+chID, nil); st != 200 || resp["secret"] != nil {
		t.Errorf("the secret is shown again: %d %v", st, resp)
	}
	tn, _ := w.h.st.TenantBySlug(t.Context(), "alpha")
	stored, err := w.h.st.AlertChannel(t.Context(), tn.ID, chID)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := w.h.keyring.Open(stored.SecretSealed, []byte(alerts.SecretAD(tn.ID, chID))); err != nil || string(plain) != secret {
		t.Errorf("sealed secret opens to %q, %v", plain, err)
	}
	if strings.Contains(string(stored.SecretSealed), secret) {
		t.Error("the secret is stored in clear")
	}
	if _, audit := admin.do("GET", "/api/v1/tenants/alpha/audit", nil); strings.Contains(toJSON(t, audit), secret) {
		t.Error("the secret is in the audit log")
	}
	if st, resp = admin.do("POST", base+"/channels/"+chID+"/secret", nil); st != 200 || resp["secret"] == secret || resp["secret"] == nil {
		t.Errorf("rotate: %d %v", st, resp)
	}

	// Bad input is 422 naming the field; private targets are refused (this server does not
	// allow them).
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": "x", "kind": "webhook", "target": "http://127.0.0.1:9000/"}, "target"},
		{map[string]any{"name": "x", "kind": "webhook", "target": "http://[::ffff:10.0.0.1]/"}, "target"},
		{map[string]any{"name": "x", "kind": "ntfy", "target": "http://localhost/topic"}, "target"},
		{map[string]any{"name": "x", "kind": "webhook", "target": "https://8.8.8.8/", "secret": "s"}, "secret"},
		{map[string]any{"name": "x", "kind": "email", "target": "not-an-address"}, "target"},
		{map[string]any{"name": "", "kind": "email", "target": "a@example.com"}, "name"},
		{map[string]any{"name": "x", "kind": "pager"}, "kind"},
	} {
		st, resp = admin.do("POST", base+"/channels", tc.body)
		wantError(t, toJSON(t, tc.body), st, resp, 422)
		if fields, _ := resp["error"].(map[string]any)["fields"].(map[string]any); fields[tc.field] == nil {
			t.Errorf("%v: no error on %s: %v", tc.body, tc.field, resp)
		}
	}

	// Rules.
	st, resp = admin.do("POST", base+"/rules", map[string]any{"name": "Kitchen offline", "kind": "device_offline", "tag": "kitchen",
		"params": map[string]any{"minutes": 10}, "channel_ids": []string{chID}, "cooldown_seconds": 3600})
	if st != 201 || resp["enabled"] != true || resp["params"].(map[string]any)["minutes"] != float64(10) {
		t.Fatalf("create rule: %d %v", st, resp)
	}
	beta := w.b["channel"]
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": "r", "kind": "device_offline"}, "params.minutes"},
		{map[string]any{"name": "r", "kind": "error_new", "channel_ids": []string{beta}}, "channel_ids[0]"},
		{map[string]any{"name": "r", "kind": "rollout", "params": map[string]any{"states": []string{"exploded"}}}, "params.states[0]"},
	} {
		st, resp = admin.do("POST", base+"/rules", tc.body)
		wantError(t, toJSON(t, tc.body), st, resp, 422)
		if fields, _ := resp["error"].(map[string]any)["fields"].(map[string]any); fields[tc.field] == nil {
			t.Errorf("%v: no error on %s: %v", tc.body, tc.field, resp)
		}
	}

	// The history: a viewer sees and acknowledges; a second acknowledgement is 409.
	a := store.Alert{TenantID: tn.ID, RuleID: "r", RuleName: "Kitchen offline", Kind: "device_offline", State: store.AlertFiring,
		Summary: "Kitchen offline: 2 devices offline", Subjects: []string{"d1", "d2"}}
	if err := w.h.st.CreateAlert(t.Context(), &a); err != nil {
		t.Fatal(err)
	}
	st, resp = viewer.do("GET", base+"?state=firing", nil)
	if items, _ := resp["items"].([]any); st != 200 || len(items) != 1 || items[0].(map[string]any)["id"] != a.ID {
		t.Fatalf("firing alerts: %d %v", st, resp)
	}
	st, resp = viewer.do("POST", base+"/"+a.ID+"/acknowledge", nil)
	if st != 200 || resp["state"] != "acknowledged" || resp["acknowledged_by"] == "" || resp["acknowledged_at"] == nil {
		t.Fatalf("acknowledge: %d %v", st, resp)
	}
	st, resp = viewer.do("POST", base+"/"+a.ID+"/acknowledge", nil)
	wantError(t, "second acknowledgement", st, resp, 409)
	st, resp = viewer.do("GET", base+"?state=bogus", nil)
	wantError(t, "bad state filter", st, resp, 422)
	st, resp = viewer.do("GET", base+"/"+w.b["alert"], nil)
	wantError(t, "another tenant's alert", st, resp, 404)

	// Test message and resend land in the delivery log, newest first.
	st, resp = admin.do("POST", base+"/channels/"+chID+"/test", nil)
	if st != 202 || resp["type"] != "alert.test" || resp["state"] != "pending" {
		t.Fatalf("test: %d %v", st, resp)
	}
	testID := resp["id"].(string)
	st, resp = admin.do("POST", base+"/deliveries/"+testID+"/resend", nil)
	if st != 202 || resp["id"] == testID || resp["message_id"] == "" {
		t.Fatalf("resend: %d %v", st, resp)
	}
	resent := resp["id"].(string)
	st, resp = admin.do("GET", base+"/deliveries?channel_id="+chID, nil)
	items, _ := resp["items"].([]any)
	if st != 200 || len(items) != 2 || items[0].(map[string]any)["id"] != resent {
		t.Fatalf("delivery log: %d %v", st, resp)
	}
	if items[0].(map[string]any)["message_id"] != items[1].(map[string]any)["message_id"] {
		t.Errorf("resend changed the webhook-id: %v", items)
	}
	st, resp = admin.do("POST", base+"/deliveries/"+w.b["delivery"]+"/resend", nil)
	wantError(t, "another tenant's delivery", st, resp, 404)
}
