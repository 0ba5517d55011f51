package fleet

import (
	"strings"
	"testing"
)

// TestLoopbackWarnings: a bundle whose broker host or server URL only reaches the server's own
// machine is flagged, naming the setting to change; reachable names are not.
func TestLoopbackWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host, serverURL string
		want            []string // substrings, one per expected warning
	}{
		{"localhost", "http://localhost:8080", []string{"--mqtt-public-host", "--public-url"}},
		{"127.0.0.1", "https://fleet.example.com", []string{`"127.0.0.1"`}},
		{"::1", "https://fleet.example.com", []string{`"::1"`}},
		{"0.0.0.0", "https://fleet.example.com", []string{`"0.0.0.0"`}},
		{"fleet.example.com", "http://[::1]:8080", []string{"--public-url"}},
		{"dev.localhost", "https://fleet.example.com", []string{"dev.localhost"}},
		{"fleet.example.com", "https://fleet.example.com", nil},
		{"192.168.1.20", "http://192.168.1.20:8080", nil},
	}
	for _, tt := range tests {
		got := Bundle{MQTT: BundleMQTT{Host: tt.host}, ServerURL: tt.serverURL}.LoopbackWarnings()
		if len(got) != len(tt.want) {
			t.Errorf("%s / %s: %d warnings %q, want %d", tt.host, tt.serverURL, len(got), got, len(tt.want))
			continue
		}
		for i, w := range tt.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s / %s: warning %q lacks %q", tt.host, tt.serverURL, got[i], w)
			}
		}
	}
}
