package netguard

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestPublicAddr(t *testing.T) {
	for addr, public := range map[string]bool{
		"8.8.8.8": true, "2001:4860:4860::8888": true, "127.0.0.1": false, "10.0.0.1": false,
		"172.16.0.1": false, "192.168.0.1": false, "169.254.169.254": false, "100.64.0.1": false,
		"::1": false, "fe80::1": false, "fc00::1": false, "0.0.0.0": false, "::": false,
		"::ffff:10.0.0.1": false, "::ffff:127.0.0.1": false, "::ffff:169.254.169.254": false,
		"::ffff:8.8.8.8": true, "224.0.0.1": false, "ff02::1": false,
	} {
		if got := PublicAddr(netip.MustParseAddr(addr)); got != public {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, public)
		}
	}
}

func TestLiteralAndCheck(t *testing.T) {
	for host, refused := range map[string]bool{
		"localhost": true, "LOCALHOST.": true, "api.localhost": true, "127.0.0.1": true, "[::1]": true,
		"::ffff:127.0.0.1": true, "[fe80::1]": true, "169.254.169.254": true, "example.com": false, "8.8.8.8": false,
	} {
		if got := Literal(host); got != refused {
			t.Errorf("Literal(%q) = %v, want %v", host, got, refused)
		}
	}
	// A DNS name that resolves to loopback (through the hosts file: no network needed).
	ctx := t.Context()
	for _, host := range []string{"localhost", "127.0.0.1", "[::1]", "::ffff:10.1.2.3"} {
		if a, ok, _ := Check(ctx, host); ok {
			t.Errorf("Check(%q) = ok, want refused", host)
		} else if a.IsValid() && PublicAddr(a) {
			t.Errorf("Check(%q) reports public %s", host, a)
		}
	}
	if _, ok, _ := Check(ctx, "8.8.8.8"); !ok {
		t.Errorf("Check(8.8.8.8) refused a public address")
	}
}

// The dialer check holds whatever a name resolved to before: it sees the address it dials.
func TestControlRefusesPrivateConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{Timeout: 5 * time.Second, Control: Control}
	if _, err := d.Dial("tcp", ln.Addr().String()); !errors.Is(err, ErrForbidden) {
		t.Fatalf("dial %s = %v, want ErrForbidden", ln.Addr(), err)
	}
	if _, err := d.Dial("tcp", "localhost:"+portOf(ln)); !errors.Is(err, ErrForbidden) {
		t.Fatalf("dial localhost = %v, want ErrForbidden", err)
	}
}

func portOf(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}
