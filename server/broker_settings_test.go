package server

import (
	"strconv"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/broker/tenantbus"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// TestBrokerSettingsAPI: defaults, a valid external save (password sealed, write-only, not
// in the audit log), field errors from bridge.Validate, the version check, switching back.
func TestBrokerSettingsAPI(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	admin := w.session(t, "alpha", store.RoleAdmin)
	base := "/api/v1/tenants/alpha/settings/broker"

	st, resp := admin.do("GET", base, nil)
	if st != 200 || resp["mode"] != "builtin" || resp["version"] != float64(0) || resp["password_set"] != false {
		t.Fatalf("defaults: %d %v", st, resp)
	}
	const password = "broker-pass-4711"
	put := map[string]any{"mode": "external", "url": "ssl://mqtt.example.com:8883", "username": "espadmin",
		"password": password, "topic_root": "acme/devices", "client_id": "acme-server", "version": 0}
	st, resp = admin.do("PUT", base, put)
	if st != 200 || resp["mode"] != "external" || resp["password_set"] != true || resp["version"] != float64(1) || resp["password"] != nil {
		t.Fatalf("put: %d %v", st, resp)
	}
	tn, err := w.h.st.TenantBySlug(t.Context(), "alpha")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := w.h.st.TenantSettings(t.Context(), tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := w.h.keyring.Open(ts.Broker.PasswordSealed, tenantbus.PasswordAD(ts.TenantID)); err != nil || string(plain) != password {
		t.Errorf("sealed password opens to %q, %v", plain, err)
	}
	if _, resp = admin.do("GET", base, nil); strings.Contains(toJSON(t, resp), password) || resp["url"] != "ssl://mqtt.example.com:8883" {
		t.Errorf("get: %v", resp)
	}
	_, audit := admin.do("GET", "/api/v1/tenants/alpha/audit", nil)
	if s := toJSON(t, audit); strings.Contains(s, password) || !strings.Contains(s, "settings.broker") {
		t.Errorf("audit: %s", s)
	}

	// A stale version is 409; the saved settings are unchanged.
	st, resp = admin.do("PUT", base, map[string]any{"mode": "builtin", "version": 0})
	wantError(t, "stale version", st, resp, 409)

	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"mode": "external", "url": "http://mqtt.example.com", "version": 1}, "url"},
		{map[string]any{"mode": "external", "url": "tcp://mqtt.example.com", "version": 1}, "url"},
		{map[string]any{"mode": "external", "url": "ssl://h:8883", "ca_cert_pem": "not a cert", "version": 1}, "ca_cert_pem"},
		{map[string]any{"mode": "external", "url": "tcp://h:1883", "topic_root": "a/+/b", "version": 1}, "topic_root"},
		{map[string]any{"mode": "external", "url": "tcp://h:1883", "client_id": "a/b", "version": 1}, "client_id"},
		{map[string]any{"mode": "other", "version": 1}, "mode"},
		{map[string]any{"mode": "builtin"}, "version"},
	} {
		st, resp = admin.do("PUT", base, tc.body)
		wantError(t, toJSON(t, tc.body), st, resp, 422)
		if fields, _ := resp["error"].(map[string]any)["fields"].(map[string]any); fields[tc.field] == nil {
			t.Errorf("%v: no error on %s: %v", tc.body, tc.field, resp)
		}
	}

	// Without a password in the request the saved one is kept.
	st, resp = admin.do("PUT", base, map[string]any{"mode": "builtin", "url": "ssl://mqtt.example.com:8883", "username": "espadmin", "version": 1})
	if st != 200 || resp["mode"] != "builtin" || resp["password_set"] != true {
		t.Fatalf("switch back: %d %v", st, resp)
	}
	if st, resp = admin.do("GET", base+"/state", nil); st != 200 || resp["mode"] != "builtin" || resp["status"] != nil {
		t.Errorf("state: %d %v", st, resp)
	}
	st, resp = admin.do("PUT", base, map[string]any{"mode": "builtin", "password": "", "version": 2})
	if st != 200 || resp["password_set"] != false {
		t.Fatalf("remove password: %d %v", st, resp)
	}
}

// TestBrokerSettingsTest runs the connection test against Debian's Mosquitto: the right
// account passes, a wrong password is not_authorized, a refused port unreachable, and
// without a URL the saved settings (with the saved password) are tested.
func TestBrokerSettingsTest(t *testing.T) {
	t.Parallel()
	mq := testsvc.Mosquitto(t, testsvc.MosquittoOptions{Servers: map[string]string{"espadmin": "right-pass"}})
	w := newTenantWorld(t)
	admin := w.session(t, "alpha", store.RoleAdmin)
	base := "/api/v1/tenants/alpha/settings/broker"
	for _, tc := range []struct {
		name string
		body map[string]any
		ok   bool
		kind string
	}{
		{"right", map[string]any{"url": mq.URL(), "username": "espadmin", "password": "right-pass"}, true, ""},
		{"wrong password", map[string]any{"url": mq.URL(), "username": "espadmin", "password": "wrong"}, false, "not_authorized"},
		{"closed port", map[string]any{"url": "tcp://127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t)), "username": "espadmin", "password": "x"}, false, "unreachable"},
	} {
		st, resp := admin.do("POST", base+"/test", tc.body)
		if st != 200 || resp["ok"] != tc.ok || (tc.kind != "" && resp["error_kind"] != tc.kind) {
			t.Errorf("%s: %d %v", tc.name, st, resp)
		}
	}
	st, resp := admin.do("POST", base+"/test", map[string]any{"url": "mqtt://x:1"})
	wantError(t, "bad scheme", st, resp, 422)

	if st, resp = admin.do("PUT", base, map[string]any{"mode": "builtin", "url": mq.URL(), "username": "espadmin",
		"password": "right-pass", "version": 0}); st != 200 {
		t.Fatalf("save: %d %v", st, resp)
	}
	if st, resp = admin.do("POST", base+"/test", map[string]any{}); st != 200 || resp["ok"] != true {
		t.Errorf("saved settings: %d %v", st, resp)
	}
}

// TestBrokerSettingsBoundsAndTargets: the connection test and the save bound every field
// (a 200 KB username used to be sent to the broker), and with the default policy neither
// accepts a broker on a private, loopback, link-local or CGNAT address, so a tenant admin
// cannot make the server probe its own network: each is 422 on the field, nothing is dialled
// and nothing saved.
func TestBrokerSettingsBoundsAndTargets(t *testing.T) {
	t.Parallel()
	base := "/api/v1/tenants/alpha/settings/broker"
	long := strings.Repeat("u", 200<<10)
	t.Run("bounds", func(t *testing.T) {
		t.Parallel()
		w := newTenantWorld(t)
		admin := w.session(t, "alpha", store.RoleAdmin)
		closed := "tcp://127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
		for _, tc := range []struct {
			field string
			body  map[string]any
		}{
			{"username", map[string]any{"url": closed, "username": long}},
			{"password", map[string]any{"url": closed, "username": "u", "password": long}},
			{"url", map[string]any{"url": closed + "/" + long[:4096]}},
			{"ca_cert_pem", map[string]any{"url": "ssl://127.0.0.1:8883", "ca_cert_pem": strings.Repeat("A", 65<<10)}},
		} {
			st, resp := admin.do("POST", base+"/test", tc.body)
			if st != 422 || fieldError(resp, tc.field) == "" {
				t.Errorf("test with long %s: %d %v, want 422 on %s", tc.field, st, resp, tc.field)
			}
			put := map[string]any{"mode": "external", "version": 0}
			for k, v := range tc.body {
				put[k] = v
			}
			st, resp = admin.do("PUT", base, put)
			if st != 422 || fieldError(resp, tc.field) == "" {
				t.Errorf("save with long %s: %d %v, want 422 on %s", tc.field, st, resp, tc.field)
			}
		}
	})
	t.Run("private targets", func(t *testing.T) {
		t.Parallel()
		w := newTenantWorld(t, withPublicBrokersOnly())
		admin := w.session(t, "alpha", store.RoleAdmin)
		// A listener that would answer: the refusal must not depend on the port being closed.
		mq := testsvc.Mosquitto(t, testsvc.MosquittoOptions{Servers: map[string]string{"espadmin": "right-pass"}})
		for _, url := range []string{
			mq.URL(), "tcp://localhost:1883", "tcp://10.1.2.3:1883", "tcp://192.168.1.10:1883", "ssl://[::1]:8883",
			"tcp://169.254.169.254:80", "ws://100.64.0.1/mqtt", "wss://[fe80::1]/mqtt", "tcp://0.0.0.0:1883",
			"tcp://[::ffff:127.0.0.1]:1883",
		} {
			st, resp := admin.do("POST", base+"/test", map[string]any{"url": url, "username": "espadmin", "password": "right-pass"})
			if st != 422 || !strings.Contains(fieldError(resp, "url"), "mqtt.bridge_allow_private") {
				t.Errorf("test %s: %d %v, want 422 on url", url, st, resp)
			}
			st, resp = admin.do("PUT", base, map[string]any{"mode": "external", "url": url, "version": 0})
			if st != 422 || fieldError(resp, "url") == "" {
				t.Errorf("save %s: %d %v, want 422 on url", url, st, resp)
			}
		}
		if _, resp := admin.do("GET", base, nil); resp["mode"] != "builtin" || resp["version"] != float64(0) {
			t.Errorf("settings changed: %v", resp)
		}
	})
}

// fieldError is the message of field in a 422 answer, or "".
func fieldError(resp map[string]any, field string) string {
	e, _ := resp["error"].(map[string]any)
	f, _ := e["fields"].(map[string]any)
	s, _ := f[field].(string)
	return s
}
