package bridge

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	const ca = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string // "" means valid
	}{
		{"tcp", Config{URL: "tcp://broker:1883", Username: "u", Password: "p"}, ""},
		{"wss without port", Config{URL: "wss://broker.example/mqtt"}, ""},
		{"empty url", Config{}, "url"},
		{"http scheme", Config{URL: "http://broker:1883"}, "url"},
		{"mqtt scheme", Config{URL: "mqtt://broker:1883"}, "url"},
		{"no host", Config{URL: "tcp://:1883"}, "url"},
		{"no port", Config{URL: "tcp://broker"}, "url"},
		{"bad port", Config{URL: "ssl://broker:70000"}, "url"},
		{"userinfo", Config{URL: "tcp://u:p@broker:1883"}, "url"},
		{"bad CA", Config{URL: "ssl://broker:8883", CACertPEM: ca}, "ca_cert_pem"},
		{"CA not PEM", Config{URL: "ssl://broker:8883", CACertPEM: "hello"}, "ca_cert_pem"},
		{"CA without TLS", Config{URL: "tcp://broker:1883", CACertPEM: string(testCAPEM(t))}, "ca_cert_pem"},
		{"password without user", Config{URL: "tcp://broker:1883", Password: "p"}, "username"},
		{"root wildcard", Config{URL: "tcp://broker:1883", TopicRoot: "a/#"}, "topic_root"},
		{"root dollar", Config{URL: "tcp://broker:1883", TopicRoot: "$SYS"}, "topic_root"},
		{"client id slash", Config{URL: "tcp://broker:1883", ClientID: "a/b"}, "client_id"},
		{"share group plus", Config{URL: "tcp://broker:1883", ShareGroup: "g+"}, "share_group"},
		{"backoff order", Config{URL: "tcp://broker:1883", MinBackoff: 10, MaxBackoff: 5}, "min_backoff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Validate(tc.cfg)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var verr *store.InvalidError
			if !errors.As(err, &verr) || !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("Validate = %v, want a *store.InvalidError", err)
			}
			if _, ok := verr.Fields[tc.field]; !ok {
				t.Fatalf("fields = %v, want %q", verr.Fields, tc.field)
			}
		})
	}
}

func TestMatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"espadmin/+/up/#", "espadmin/d1/up/status", true},
		{"espadmin/+/up/#", "espadmin/d1/up", true}, // '#' includes the parent level
		{"espadmin/+/up/#", "espadmin/d1/down/cmd", false},
		{"espadmin/+/up/status", "espadmin/d1/up/status/x", false},
		{"#", "$SYS/broker", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/broker", true},
		{"a/b", "a/b", true},
	} {
		if got := matches(tc.filter, tc.topic); got != tc.want {
			t.Errorf("matches(%q, %q) = %v", tc.filter, tc.topic, got)
		}
	}
	for f, want := range map[string]bool{"a/#": true, "a/#/b": false, "a/b+": false, "+": true, "": false} {
		if validFilter(f) != want {
			t.Errorf("validFilter(%q) = %v", f, !want)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for failures, want := range []int64{100, 200, 400, 400, 400} {
		for range 50 {
			d := backoff(failures, 100, 400)
			if int64(d) < want/2 || int64(d) > want {
				t.Fatalf("backoff(%d) = %d, want in [%d, %d]", failures, d, want/2, want)
			}
		}
	}
}

// TestTargetDialerRefusesPrivate: the dialer checks the address it actually connects to, so
// a host name that resolved to a public address at checkTarget and to a private one at
// connect time (DNS rebinding) is still refused; allowed, it connects.
func TestTargetDialerRefusesPrivate(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = targetDialer(Config{ConnectTimeout: 5 * time.Second}).Dial("tcp", ln.Addr().String())
	if !errors.Is(err, ErrForbiddenTarget) {
		t.Fatalf("dial loopback = %v, want ErrForbiddenTarget", err)
	}
	var verr *store.InvalidError
	if !errors.As(classify(err), &verr) || verr.Fields["url"] == "" {
		t.Fatalf("classify = %v, want a url field error", classify(err))
	}
	c, err := targetDialer(Config{ConnectTimeout: 5 * time.Second, AllowPrivate: true}).Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial loopback with AllowPrivate = %v", err)
	}
	c.Close()
}
