package testsvc

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// connack sends a minimal MQTT 3.1.1 CONNECT (MQTT 3.1.1 §3.1) with username and password
// over conn and returns the CONNACK return code (§3.2.2.3).
func connack(t *testing.T, conn net.Conn, user, pass string) byte {
	t.Helper()
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append(str("MQTT"), 4, 0xC2, 0, 30) // level 4; username, password, clean session; keep alive 30 s
	body = append(body, str(user)...)           // client ID (forced to the username anyway)
	body = append(body, str(user)...)
	body = append(body, str(pass)...)
	pkt := append([]byte{0x10, byte(len(body))}, body...)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(pkt); err != nil {
		t.Fatalf("write CONNECT: %v", err)
	}
	var ack [4]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		t.Fatalf("not a CONNACK: % x", ack)
	}
	return ack[3]
}

func dialConnack(t *testing.T, addr, user, pass string) byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	return connack(t, conn, user, pass)
}

func TestMosquitto(t *testing.T) {
	t.Parallel()
	srv := Mosquitto(t, MosquittoOptions{
		Devices: map[string]string{"dev-1": "pw-1"},
		Servers: map[string]string{"espadmin-server": "server-pw"},
		TLS:     true,
	})
	addr := fmt.Sprintf("127.0.0.1:%d", srv.Port)

	if rc := dialConnack(t, addr, "dev-1", "pw-1"); rc != 0 {
		t.Fatalf("device with the right password: CONNACK %d, want 0", rc)
	}
	if rc := dialConnack(t, addr, "espadmin-server", "server-pw"); rc != 0 {
		t.Fatalf("server account: CONNACK %d, want 0", rc)
	}
	if rc := dialConnack(t, addr, "dev-1", "wrong"); rc != 4 && rc != 5 {
		t.Fatalf("wrong password: CONNACK %d, want 4 or 5", rc)
	}

	// The password file holds hashes only, and the ACL the documented patterns.
	passwd, err := os.ReadFile(filepath.Join(srv.dir, "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(passwd), "pw-1") || !strings.Contains(string(passwd), "dev-1:$") {
		t.Fatalf("password file not hashed:\n%s", passwd)
	}
	acl, _ := os.ReadFile(filepath.Join(srv.dir, "acl"))
	for _, want := range []string{"pattern read espadmin/%u/down/#", "pattern write espadmin/%u/up/#", "user espadmin-server\ntopic readwrite espadmin/#"} {
		if !strings.Contains(string(acl), want) {
			t.Fatalf("ACL lacks %q:\n%s", want, acl)
		}
	}

	// TLS: the certificate verifies against CACertPEM for 127.0.0.1.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv.CACertPEM) {
		t.Fatal("CACertPEM does not parse")
	}
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", srv.TLSPort)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAddr,
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	if rc := connack(t, conn, "dev-1", "pw-1"); rc != 0 {
		t.Fatalf("over TLS: CONNACK %d", rc)
	}
	conn.Close()

	// Stop refuses connections; Start brings the broker back on the same port.
	srv.Stop()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("stopped broker still accepts connections")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if rc := dialConnack(t, addr, "dev-1", "pw-1"); rc != 0 {
		t.Fatalf("after restart: CONNACK %d", rc)
	}
	if !strings.Contains(srv.Log(), "New connection from 127.0.0.1") {
		t.Fatalf("log has no connection lines:\n%s", srv.Log())
	}
}
