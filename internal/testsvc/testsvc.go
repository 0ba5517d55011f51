// Package testsvc starts the real services that tests need (PostgreSQL, MariaDB, Mosquitto …)
// on loopback, in temporary folders, and stops them when the test ends.
//
// Policy: on a developer's machine a missing service skips the tests that need it, with the
// reason; in CI (CI=true) it fails them, so a missing install step can never pass silently.
package testsvc

import (
	"fmt"
	"net"
	"os"
	"strconv"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testsvc: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
