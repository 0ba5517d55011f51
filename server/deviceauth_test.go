package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
)

// TestDeviceAuthEndpoints checks the EMQX and mosquitto-go-auth endpoints: allow and deny
// for credentials and topics, the shared secret (header, basic auth, query), the endpoints
// being off without one, and the failure limit per device.
func TestDeviceAuthEndpoints(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	tenant := store.Tenant{Slug: "acme", Name: "Acme"}
	if err := h.st.CreateTenant(ctx, &tenant); err != nil {
		t.Fatal(err)
	}
	dev, err := h.fleet.devices.Create(ctx, tenant.ID, fleet.DeviceInput{Name: "pump"})
	if err != nil {
		t.Fatal(err)
	}
	off, err := h.fleet.devices.Create(ctx, tenant.ID, fleet.DeviceInput{Name: "off"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.fleet.devices.SetDisabled(ctx, tenant.ID, off.Device.ID, true); err != nil {
		t.Fatal(err)
	}
	const secret = "shared-secret-0123456789"
	s := New(HTTPConfig{Addr: "127.0.0.1:0"}, Deps{Store: h.st, MQTTAuthSecret: secret})
	id := dev.Device.ID

	call := func(path string, body map[string]any, form bool, auth func(*http.Request)) (int, map[string]any) {
		t.Helper()
		var req *http.Request
		if form {
			v := url.Values{}
			for k, x := range body {
				b, _ := json.Marshal(x)
				v.Set(k, strings.Trim(string(b), `"`))
			}
			req = httptest.NewRequest("POST", path, strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			b, _ := json.Marshal(body)
			req = httptest.NewRequest("POST", path, strings.NewReader(string(b)))
			req.Header.Set("Content-Type", "application/json")
		}
		if auth != nil {
			auth(req)
		}
		rec := httptest.NewRecorder()
		s.echo.ServeHTTP(rec, req)
		var out map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}
	header := func(r *http.Request) { r.Header.Set(AuthSecretHeader, secret) }

	// EMQX: always 200 with a result.
	for _, tc := range []struct {
		name string
		body map[string]any
		want string
	}{
		{"valid", map[string]any{"username": id, "password": dev.Secret, "clientid": id}, "allow"},
		{"valid without client ID", map[string]any{"username": id, "password": dev.Secret}, "allow"},
		{"wrong secret", map[string]any{"username": id, "password": "nope", "clientid": id}, "deny"},
		{"client ID of another", map[string]any{"username": id, "password": dev.Secret, "clientid": "other"}, "deny"},
		{"unknown device", map[string]any{"username": "d-unknown", "password": dev.Secret}, "deny"},
		{"disabled device", map[string]any{"username": off.Device.ID, "password": off.Secret}, "deny"},
	} {
		st, resp := call("/api/v1/mqtt/auth", tc.body, false, header)
		if st != 200 || resp["result"] != tc.want {
			t.Errorf("emqx %s: %d %v, want %s", tc.name, st, resp, tc.want)
		}
	}

	// mosquitto-go-auth, form and JSON: 200 allows, 403 denies.
	for _, form := range []bool{true, false} {
		if st, _ := call("/api/v1/mqtt/user", map[string]any{"username": id, "password": dev.Secret, "clientid": id}, form, header); st != 200 {
			t.Errorf("user valid (form %v): %d", form, st)
		}
		if st, _ := call("/api/v1/mqtt/user", map[string]any{"username": id, "password": "nope"}, form, header); st != 403 {
			t.Errorf("user wrong (form %v): %d", form, st)
		}
		if st, _ := call("/api/v1/mqtt/superuser", map[string]any{"username": id}, form, header); st != 403 {
			t.Errorf("superuser (form %v): %d", form, st)
		}
	}
	root := protocol.DefaultRoot
	for _, tc := range []struct {
		name  string
		user  string
		topic string
		acc   int
		want  int
	}{
		{"publish own metadata", id, protocol.Uplink(root, id, protocol.KindMetadata), 2, 200},
		{"publish another's metadata", id, protocol.Uplink(root, off.Device.ID, protocol.KindMetadata), 2, 403},
		{"publish to own downlink", id, protocol.DownlinkCommand(root, id), 2, 403},
		{"read own commands", id, protocol.DownlinkCommand(root, id), 1, 200},
		{"read another's commands", id, protocol.DownlinkCommand(root, off.Device.ID), 1, 403},
		{"subscribe own downlink", id, root + "/" + id + "/down/#", 4, 200},
		{"subscribe everything", id, root + "/#", 4, 403},
		{"read and write", id, protocol.DownlinkCommand(root, id), 3, 403},
		{"unknown access", id, protocol.DownlinkCommand(root, id), 9, 403},
		{"disabled device", off.Device.ID, protocol.DownlinkCommand(root, off.Device.ID), 1, 403},
		{"unknown device", "d-unknown", protocol.DownlinkCommand(root, "d-unknown"), 1, 403},
	} {
		body := map[string]any{"username": tc.user, "clientid": tc.user, "topic": tc.topic, "acc": tc.acc}
		if st, _ := call("/api/v1/mqtt/acl", body, true, header); st != tc.want {
			t.Errorf("acl %s: %d, want %d", tc.name, st, tc.want)
		}
	}

	// The shared secret: header, basic auth or query; missing or wrong is 401.
	valid := map[string]any{"username": id, "password": dev.Secret}
	for _, tc := range []struct {
		name string
		path string
		auth func(*http.Request)
		want int
	}{
		{"basic auth", "/api/v1/mqtt/user", func(r *http.Request) { r.SetBasicAuth("broker", secret) }, 200},
		{"query", "/api/v1/mqtt/user?secret=" + secret, nil, 200},
		{"missing", "/api/v1/mqtt/user", nil, 401},
		{"wrong header", "/api/v1/mqtt/user", func(r *http.Request) { r.Header.Set(AuthSecretHeader, "nope") }, 401},
		{"wrong basic auth", "/api/v1/mqtt/auth", func(r *http.Request) { r.SetBasicAuth("broker", "nope") }, 401},
	} {
		if st, _ := call(tc.path, valid, false, tc.auth); st != tc.want {
			t.Errorf("secret %s: %d, want %d", tc.name, st, tc.want)
		}
	}

	// Too many wrong secrets for one device: denied unchecked, even the right one, for the
	// rest of the window.
	for range deviceAuthFailures {
		call("/api/v1/mqtt/user", map[string]any{"username": id, "password": "guess"}, false, header)
	}
	if st, _ := call("/api/v1/mqtt/user", valid, false, header); st != 403 {
		t.Errorf("after %d failures: %d, want 403", deviceAuthFailures, st)
	}

	// Without mqtt.auth_secret the endpoints do not exist.
	s = New(HTTPConfig{Addr: "127.0.0.1:0"}, Deps{Store: h.st})
	if st, _ := call("/api/v1/mqtt/auth", valid, false, header); st != 404 {
		t.Errorf("without a secret: %d, want 404", st)
	}
}
