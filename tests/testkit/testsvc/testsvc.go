// Package testsvc starts the real services that tests need (PostgreSQL, MariaDB, Mosquitto …)
// on loopback, in temporary folders, and stops them when the test ends.
//
// Policy: on a developer's machine a missing service skips the tests that need it, with the
// reason; in CI (CI=true) it fails them, so a missing install step can never pass silently.
package testsvc

import (
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI, where every service must be present.
func InCI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// Unavailable reports that service could not be started: a failure in CI, a skip elsewhere.
func Unavailable(tb testing.TB, service string, err error) {
	tb.Helper()
	msg := fmt.Sprintf("%s is not available: %v", service, err)
	if InCI() {
		tb.Fatal(msg + " (CI=true: every service must run; see scripts/test.sh)")
	}
	tb.Skip(msg + " (run scripts/test.sh to install it)")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for servers that
// cannot be given port 0.
func FreePort(tb testing.TB) int {
	tb.Helper()
	port, err := freePort()
	if err != nil {
		tb.Fatalf("testsvc: free port: %v", err)
	}
	return port
}

// freePort returns a loopback TCP port that was free a moment ago. It is chosen below the
// kernel's ephemeral range (ip_local_port_range): a port from that range, free when checked,
// can be taken by any outgoing connection of a parallel test before the server binds it (or
// while a test has it stopped), which made a broker fail with "Address already in use".
func freePort() (int, error) {
	lo := ephemeralLow()
	const floor = 10000
	for range 50 {
		if lo-floor < 1000 {
			break
		}
		port := floor + mathrand.IntN(lo-floor)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 when unknown).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return lo
}
