// Package netguard is the server's one policy for connections that users' settings point at
// (a tenant's own MQTT broker, alert webhooks, ntfy servers): unless the operator allows
// them, only public unicast addresses are reached, never the server's loopback services,
// its private network or link-local cloud metadata endpoints (SSRF). It sits beside the store
// because the broker side (broker/bridge) and the server side (server/alerts) both use it and
// import nothing of each other.
//
// The policy is applied in two places: before connecting (Literal for a URL as written,
// Check after resolving the host name, for a clear error) and at the connection itself
// (Control in a net.Dialer), so a DNS answer that changes between the two (rebinding) and a
// redirect to a private address are refused too.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// ErrForbidden is the error of a connection to an address that is not public.
var ErrForbidden = errors.New("private, loopback or link-local address refused")

// sharedAddressSpace is 100.64.0.0/10 (RFC 6598, carrier-grade NAT), not routed publicly.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// PublicAddr reports whether a is a public unicast address. IPv4-mapped IPv6 addresses
// (::ffff:127.0.0.1) are judged as the IPv4 address they carry.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate() && !sharedAddressSpace.Contains(a)
}

// Literal reports whether host, as written in a URL, is refused without resolving it:
// localhost (and *.localhost) or a literal address that is not public.
func Literal(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	if a, err := netip.ParseAddr(h); err == nil && !PublicAddr(a) {
		return true
	}
	return false
}

// Check resolves host and returns the first address that is not public, with ok false. A
// host that does not resolve is left to the connection attempt (ok true, err set).
func Check(ctx context.Context, host string) (bad netip.Addr, ok bool, err error) {
	if Literal(host) {
		a, _ := netip.ParseAddr(strings.Trim(host, "[]"))
		return a, false, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, true, err
	}
	for _, a := range addrs {
		if !PublicAddr(a) {
			return a.Unmap(), false, nil
		}
	}
	return netip.Addr{}, true, nil
}

// Control is a net.Dialer Control function that refuses to connect to an address that is
// not public: the check that holds whatever DNS answered before.
func Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrForbidden, address)
	}
	if !PublicAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbidden, ap.Addr().Unmap())
	}
	return nil
}
