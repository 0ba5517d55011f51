package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/cmd/espadmin/internal/config"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// TestDeviceEndpointDownloadCA: ota.download_ca_file reaches the endpoint bundles are built
// from, and a file a device could not use stops the server at start instead.
func TestDeviceEndpointDownloadCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testsvc.NewCAPEM(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	for _, tc := range []struct {
		name, file string
		want       string // the OTA CA in the endpoint; "" with wantErr
		wantErr    bool
	}{
		{name: "unset", file: "", want: ""},
		{name: "one certificate", file: write("ca.pem", ca), want: string(ca)},
		{name: "two certificates", file: write("two.pem", append(append([]byte{}, ca...), ca...)), want: string(ca) + string(ca)},
		{name: "missing file", file: filepath.Join(dir, "absent.pem"), wantErr: true},
		{name: "not PEM", file: write("junk.pem", []byte("hello")), wantErr: true},
		{name: "a key", file: write("key.pem", append(append([]byte{}, ca...), key...)), wantErr: true},
		{name: "trailing text", file: write("tail.pem", append(append([]byte{}, ca...), "junk"...)), wantErr: true},
		{name: "too long", file: write("long.pem", []byte(strings.Repeat(string(ca), 4000/len(ca)+1))), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var cfg config.Config
			cfg.MQTT.Addr = ":1883"
			cfg.OTA.DownloadCAFile = tc.file
			e, err := deviceEndpoint(cfg, "https://espadmin.example.com", nil)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("accepted %s", tc.file)
				}
				if tc.name != "missing file" && !errors.Is(err, errBadDownloadCA) {
					t.Errorf("error %v is not errBadDownloadCA", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.OTACAPEM != tc.want {
				t.Errorf("OTACAPEM %q, want %q", e.OTACAPEM, tc.want)
			}
			if e.ServerURL != "https://espadmin.example.com" || e.MQTTPort != 1883 {
				t.Errorf("endpoint %+v", e)
			}
		})
	}
}
