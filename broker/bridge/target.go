package bridge

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"syscall"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/netguard"
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

// literalTargetProblem is Validate's part of the policy: a literal IP address or localhost
// that is not public.
func literalTargetProblem(host string) string {
	if netguard.Literal(host) {
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
	if a, ok, _ := netguard.Check(ctx, host); !ok {
		return fmt.Errorf("bridge: %w: %w", ErrInvalidConfig, store.Invalid("url", fmt.Sprintf(privateMessage, host+" ("+a.String()+")")))
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
	d.Control = func(network, address string, c syscall.RawConn) error {
		if err := netguard.Control(network, address, c); err != nil {
			return fmt.Errorf("%w: %w", ErrForbiddenTarget, err)
		}
		return nil
	}
	return d
}
