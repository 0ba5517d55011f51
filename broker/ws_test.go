package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// TestWebSocket: only the configured path upgrades, only listed Origins (or none, as devices
// send) are accepted, and MQTT works over it end to end.
func TestWebSocket(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *Config) {
		c.WSAddr = "127.0.0.1:0"
		c.WSPath = "/mqtt"
		c.WSAllowedOrigins = "https://admin.example.com"
	})
	tb.devices.add("dev-ws", "sw", false)
	base := "ws://" + tb.Addr("ws")

	tests := []struct {
		name, path, origin string
		status             int
	}{
		{"wrong path", "/other", "", http.StatusNotFound},
		{"root path", "/", "", http.StatusNotFound},
		{"foreign origin", "/mqtt", "https://evil.example.com", http.StatusForbidden},
		{"listed origin", "/mqtt", "https://admin.example.com", http.StatusSwitchingProtocols},
		{"no origin (a device)", "/mqtt", "", http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
			c, resp, err := d.Dial(base+tt.path, h)
			if c != nil {
				c.Close()
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}

	server := serverSubscribe(t, tb.Broker, protocol.UplinkFilter(protocol.DefaultRoot, ""))
	c := mustDial(t, base+"/mqtt", "dev-ws", "sw")
	in := &inbox{}
	mustSubscribe(t, c, protocol.DownlinkFilter(protocol.DefaultRoot, "dev-ws"), in.pahoHandler)
	mustPublish(t, c, upTopic("dev-ws", protocol.KindMetadata), 1, false, `{"v":1}`)
	serverPublish(t, tb.Broker, cmdTopic("dev-ws"), false, `{"n":1}`)
	poll.Until(t, 5*time.Second, "uplink over WebSocket", func() bool { return server.has(upTopic("dev-ws", protocol.KindMetadata), "") })
	poll.Until(t, 5*time.Second, "command over WebSocket", func() bool { return in.has(cmdTopic("dev-ws"), "") })
	if _, err := dial(t, base+"/mqtt", "dev-ws", "wrong"); err == nil {
		t.Fatal("wrong secret accepted over WebSocket")
	}
}

// TestTLS: with a certificate configured, devices connect over TLS with the same checks.
func TestTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	tb := startBroker(t, func(c *Config) {
		c.TLSAddr = "127.0.0.1:0"
		c.TLSCert, c.TLSKey = certFile, keyFile
	})
	tb.devices.add("dev-tls", "st", false)
	tlsOpt := func(o *paho.ClientOptions) { o.SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}) }
	addr := "ssl://" + tb.Addr("tls")
	mustDial(t, addr, "dev-tls", "st", tlsOpt)
	if _, err := dial(t, addr, "dev-tls", "bad", tlsOpt); err == nil {
		t.Fatal("wrong secret accepted over TLS")
	}
}

func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "espadmin test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestPortTaken: when any listener's port is taken, New returns an error naming the listener,
// its address and the setting to change, closes the listeners it had bound, and does not
// panic.
func TestPortTaken(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := selfSigned(t)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := held.Addr().String()
	tests := []struct {
		name    string
		mutate  func(*Config)
		setting string
	}{
		{"tcp", func(c *Config) { c.Addr = busy }, "--mqtt-addr"},
		{"tls", func(c *Config) { c.TLSAddr, c.TLSCert, c.TLSKey = busy, certFile, keyFile }, "--mqtt-tls-addr"},
		{"ws", func(c *Config) { c.WSAddr = busy }, "--mqtt-ws-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The other listeners bind first where they come first, so closing them is
			// exercised too.
			cfg := testConfig()
			cfg.WSAddr = "127.0.0.1:0"
			tt.mutate(&cfg)
			_, err := New(cfg, Deps{Logger: slog.New(slog.DiscardHandler), Devices: newFakeDevices()})
			if err == nil {
				t.Fatal("New succeeded on a taken port")
			}
			for _, want := range []string{tt.setting, busy, "address already in use"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}
