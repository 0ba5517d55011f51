package devconfig

import (
	"encoding/json"
	"testing"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
)

// TestPlatformKeysPerTenant: the platform keys (_mqtt_host, _mqtt_port, _mqtt_ca) of a
// tenant on its own broker name that broker; another tenant's name the embedded broker; the
// per-tenant source takes precedence over the process-wide one.
func TestPlatformKeysPerTenant(t *testing.T) {
	t.Parallel()
	builtin := fleet.Endpoint{MQTTHost: "espadmin.example", MQTTPort: 8883, CAPEM: "builtin-ca"}
	devices := fleet.NewDevices(fleet.DevicesOptions{
		Endpoint: builtin,
		TenantEndpoint: func(tenantID string) (fleet.Endpoint, bool) {
			if tenantID != "own" {
				return fleet.Endpoint{}, false
			}
			return fleet.Endpoint{MQTTHost: "mqtt.tenant.example", MQTTPort: 1884, CAPEM: "tenant-ca"}, true
		},
	})
	s := New(Options{Endpoint: devices.Endpoint, TenantEndpoint: devices.EndpointFor})
	cases := []struct {
		tenant   string
		host, ca string
		port     int
	}{
		{"own", "mqtt.tenant.example", "tenant-ca", 1884},
		{"other", "espadmin.example", "builtin-ca", 8883},
	}
	for _, tc := range cases {
		t.Run(tc.tenant, func(t *testing.T) {
			items, err := s.merge(tc.tenant, layers{})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, it := range items {
				if it.Layer != LayerPlatform {
					t.Errorf("%s: layer %v, want platform", it.Key, it.Layer)
				}
				var v any
				if err := json.Unmarshal(it.Value, &v); err != nil {
					t.Fatalf("%s: %v", it.Key, err)
				}
				got[it.Key] = jsonString(v)
			}
			want := map[string]string{protocol.KeyMQTTHost: tc.host, protocol.KeyMQTTPort: jsonString(float64(tc.port)), protocol.KeyMQTTCA: tc.ca}
			if len(got) != len(want) {
				t.Fatalf("platform keys %v, want %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
	// Without the per-tenant source every tenant gets the process-wide endpoint.
	plain := New(Options{Endpoint: devices.Endpoint})
	items, err := plain.merge("own", layers{})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Key == protocol.KeyMQTTHost && string(it.Value) != `"espadmin.example"` {
			t.Errorf("without TenantEndpoint: host %s", it.Value)
		}
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	return string(b)
}
