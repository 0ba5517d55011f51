package bridge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/espadmin/espadmin/store"
)

// Error classes. Every connection error the bridge reports (State.LastError, Test, Start)
// wraps exactly one of them, so callers use errors.Is and the UI can say what to fix.
var (
	// ErrInvalidConfig: the settings are wrong before any connection (see Validate).
	ErrInvalidConfig = errors.New("invalid broker settings")
	// ErrUnreachable: no TCP connection (refused, no route, unknown host, dial timeout).
	ErrUnreachable = errors.New("broker unreachable")
	// ErrNotAuthorized: the broker refused the username or password (CONNACK return code 4
	// or 5, MQTT 3.1.1 §3.2.2.3), or the account may not use the topic root.
	ErrNotAuthorized = errors.New("not authorized by the broker")
	// ErrTLS: the TLS handshake failed (unknown CA, expired or mismatched certificate,
	// hostname mismatch, or the port does not speak TLS).
	ErrTLS = errors.New("TLS handshake failed")
	// ErrRefused: the broker refused the connection for another reason (CONNACK 1-3).
	ErrRefused = errors.New("broker refused the connection")
	// ErrDropped: the broker accepted the TCP connection but closed it without a CONNACK,
	// or the connection broke while connected.
	ErrDropped = errors.New("broker closed the connection")
	// ErrTimeout: the broker accepted the TCP connection but sent no CONNACK in time.
	ErrTimeout = errors.New("broker did not answer in time")
	// ErrForbiddenTarget: the broker's address is private, loopback or link-local and the
	// operator does not allow such targets (Config.AllowPrivate). Connection errors report
	// it as a *store.InvalidError on the url field, wrapped with ErrInvalidConfig.
	ErrForbiddenTarget = errors.New("broker address not allowed")
	// ErrNotConnected: a publish while the bridge has no connection; nothing was sent.
	ErrNotConnected = errors.New("bridge not connected to the broker")
	// ErrPublishTimeout: no acknowledgement in time; the outcome is unknown (the message
	// stays in the client's store and is re-sent on reconnect).
	ErrPublishTimeout = errors.New("publish not acknowledged in time")
)

// failedClasses are the errors that need someone to change a setting; the bridge reports
// them as StatusFailed (still retrying, with backoff) rather than StatusDisconnected.
var failedClasses = []error{ErrInvalidConfig, ErrNotAuthorized, ErrTLS, ErrRefused}

// isFailedClass reports whether err belongs to a class that needs a settings change.
func isFailedClass(err error) bool {
	for _, c := range failedClasses {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}

// classify wraps a paho connection error with its class. paho reports a refused CONNACK as
// one of its packets.ErrorRefused… values and a network failure as
// "network Error : <cause>" wrapping the cause.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var (
		unknownCA   x509.UnknownAuthorityError
		hostname    x509.HostnameError
		invalid     x509.CertificateInvalidError
		verify      *tls.CertificateVerificationError
		recordHdr   tls.RecordHeaderError
		alert       tls.AlertError
		dnsErr      *net.DNSError
		opErr       *net.OpError
		netErr      net.Error
		errnoTarget syscall.Errno
	)
	switch {
	case errors.Is(err, ErrInvalidConfig):
		return err
	case errors.As(err, &opErr) && errors.Is(opErr.Err, ErrForbiddenTarget):
		return fmt.Errorf("bridge: %w: %w", ErrInvalidConfig, store.Invalid("url", fmt.Sprintf(privateMessage, opErr.Err.Error())))
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return fmt.Errorf("%w: bad user name or password (CONNACK 4)", ErrNotAuthorized)
	case errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return fmt.Errorf("%w: not authorized (CONNACK 5)", ErrNotAuthorized)
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return fmt.Errorf("%w: client identifier rejected (CONNACK 2)", ErrRefused)
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		return fmt.Errorf("%w: server unavailable (CONNACK 3)", ErrRefused)
	case errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return fmt.Errorf("%w: MQTT 3.1.1 not supported (CONNACK 1)", ErrRefused)
	case errors.As(err, &unknownCA):
		return fmt.Errorf("%w: certificate signed by an unknown authority (check the CA certificate): %v", ErrTLS, unknownCA)
	case errors.As(err, &hostname):
		return fmt.Errorf("%w: certificate does not match the host name: %v", ErrTLS, hostname)
	case errors.As(err, &invalid):
		return fmt.Errorf("%w: %v", ErrTLS, invalid)
	case errors.As(err, &verify):
		return fmt.Errorf("%w: %v", ErrTLS, verify)
	case errors.As(err, &recordHdr):
		return fmt.Errorf("%w: the port does not speak TLS: %v", ErrTLS, recordHdr)
	case errors.As(err, &alert):
		return fmt.Errorf("%w: broker sent alert: %v", ErrTLS, alert)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("%w: %v", ErrUnreachable, dnsErr)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return fmt.Errorf("%w: %v", ErrUnreachable, opErr.Err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return fmt.Errorf("%w: %v", ErrDropped, err)
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	case errors.As(err, &errnoTarget):
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	case strings.Contains(err.Error(), "tls:"), strings.Contains(err.Error(), "x509:"):
		return fmt.Errorf("%w: %v", ErrTLS, err)
	}
	return fmt.Errorf("%w: %v", ErrDropped, err)
}

// kind returns the short name of err's class for log attributes.
func kind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrInvalidConfig):
		return "invalid_config"
	case errors.Is(err, ErrUnreachable):
		return "unreachable"
	case errors.Is(err, ErrNotAuthorized):
		return "not_authorized"
	case errors.Is(err, ErrTLS):
		return "tls"
	case errors.Is(err, ErrRefused):
		return "refused"
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrDropped):
		return "dropped"
	}
	return "other"
}
