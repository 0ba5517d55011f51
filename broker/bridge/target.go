package bridge

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/espadmin/espadmin/store"
)

// The bridge and the connection test connect wherever a tenant's settings point, so a tenant
// admin could otherwise use the server to reach hosts only the server can reach: its own
// loopback services, the private network, link-local cloud metadata endpoints. Unless the
// operator sets Config.AllowPrivate (mqtt.bridge_allow_private), only public unicast
// addresses are dialled. Validate refuses literal addresses and "localhost"; checkTarget
// resolves a host name before connecting; for tcp:// and ssl:// the dialer also checks the
// address it actually connects to, so a DNS answer that changes between the two (rebinding)
// is refused as well. ws:// and wss:// rely on the check before connecting.

// privateMessage is the field message of a refused target.
const privateMessage = "%s is a private, loopback or link-local address; the server's operator allows such brokers with mqtt.bridge_allow_private (ESPADMIN_MQTT_BRIDGE_ALLOW_PRIVATE)"

// sharedAddressSpace is 100.64.0.0/10 (RFC 6598, carrier-grade NAT), not routed publicly.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// publicAddr reports whether a is a public unicast address.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate() && !sharedAddressSpace.Contains(a)
}

// literalTargetProblem is Validate's part of the policy: a literal IP address or localhost
// that is not public.
func literalTargetProblem(host string) string {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") || strings.HasSuffix(strings.ToLower(strings.TrimSuffix(host, ".")), ".localhost") {
		return fmt.Sprintf(privateMessage, host)
	}
	if a, err := netip.ParseAddr(host); err == nil && !publicAddr(a) {
		return fmt.Sprintf(privateMessage, host)
	}
	return ""
}

// checkTarget resolves the URL's host and refuses it unless every address is public (or the
// operator allows private targets). It returns a *store.InvalidError on the url field (wrapped with ErrInvalidConfig); a host
// that does not resolve is left to the connection attempt, which reports it as unreachable.
func checkTarget(ctx context.Context, cfg Config) error {
	if cfg.AllowPrivate {
		return nil
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil // Validate reports it
	}
	host := u.Hostname()
	if p := literalTargetProblem(host); p != "" {
		return fmt.Errorf("bridge: %w: %w", ErrInvalidConfig, store.Invalid("url", p))
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if !publicAddr(a) {
			return fmt.Errorf("bridge: %w: %w", ErrInvalidConfig, store.Invalid("url", fmt.Sprintf(privateMessage, host+" ("+a.Unmap().String()+")")))
		}
	}
	return nil
}

// targetDialer is the dialer of tcp:// and ssl:// connections: with private targets refused,
// it refuses to connect to an address that is not public. With ALL_PROXY set, paho dials the
// proxy instead of the broker, so only checkTarget applies.
func targetDialer(cfg Config) *net.Dialer {
	d := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: cfg.KeepAlive}
	if cfg.AllowPrivate || os.Getenv("ALL_PROXY") != "" || os.Getenv("all_proxy") != "" {
		return d
	}
	d.Control = func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s", ErrForbiddenTarget, address)
		}
		if !publicAddr(ap.Addr()) {
			return fmt.Errorf("%w: %s", ErrForbiddenTarget, ap.Addr().Unmap())
		}
		return nil
	}
	return d
}
