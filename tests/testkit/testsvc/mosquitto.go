package testsvc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MosquittoBinary and MosquittoPasswdBinary are where Debian's mosquitto package installs them.
const (
	MosquittoBinary       = "/usr/sbin/mosquitto"
	MosquittoPasswdBinary = "/usr/bin/mosquitto_passwd"
)

// MosquittoOptions configure a throwaway Mosquitto that plays a tenant's own broker.
type MosquittoOptions struct {
	// Root is the topic root of the ACL patterns; empty means "espadmin".
	Root string
	// Devices maps device ID (the username) to password. Each device is confined by the
	// patterns of docs/protocol.md §1.2: read {root}/%u/down/#, write {root}/%u/up/#.
	Devices map[string]string
	// Servers maps username to password for the server's own accounts (one per replica),
	// each given readwrite on {root}/#.
	Servers map[string]string
	// TLS adds a second listener with a certificate for 127.0.0.1 only (an IP SAN, no DNS
	// name), signed by a CA generated for this server (MosquittoServer.CACertPEM).
	TLS bool
	// ExpiredCert makes the TLS listener's certificate one that expired yesterday.
	ExpiredCert bool
	// Persistence keeps sessions and queued messages across Stop/Start (saved on a clean
	// stop), as a production Mosquitto with `persistence true` does.
	Persistence bool
}

// MosquittoServer is a running (or stopped) Mosquitto child process.
type MosquittoServer struct {
	// Port is the plain MQTT listener; TLSPort the TLS one (0 without TLS).
	Port    int
	TLSPort int
	// CACertPEM is the CA that signed the TLS listener's certificate.
	CACertPEM []byte

	dir     string
	conf    string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// URL returns the plain listener's URL, tcp://127.0.0.1:PORT.
func (s *MosquittoServer) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", s.Port) }

// TLSURL returns the TLS listener's URL, ssl://127.0.0.1:PORT.
func (s *MosquittoServer) TLSURL() string { return fmt.Sprintf("ssl://127.0.0.1:%d", s.TLSPort) }

// Mosquitto starts Debian's mosquitto on 127.0.0.1 with allow_anonymous false, a password
// file made with mosquitto_passwd and the ACL patterns of docs/protocol.md, and stops it when
// tb ends. A missing binary is reported through Unavailable (a skip locally, a failure in CI).
func Mosquitto(tb testing.TB, opts MosquittoOptions) *MosquittoServer {
	tb.Helper()
	for _, bin := range []string{MosquittoBinary, MosquittoPasswdBinary} {
		if _, err := os.Stat(bin); err != nil {
			Unavailable(tb, "Mosquitto", fmt.Errorf("%s not found (apt-get install mosquitto): %w", bin, err))
			return nil
		}
	}
	if opts.Root == "" {
		opts.Root = "espadmin"
	}
	// The folder must be readable by the user mosquitto runs as; when the tests run as root
	// the configuration keeps it root (see writeMosquittoConfig), so t.TempDir() is fine.
	dir := tb.TempDir()
	s := &MosquittoServer{
		dir:     dir,
		conf:    filepath.Join(dir, "mosquitto.conf"),
		logPath: filepath.Join(dir, "mosquitto.log"),
		Port:    FreePort(tb),
	}
	if opts.TLS {
		s.TLSPort = FreePort(tb)
	}
	if err := s.writeFiles(opts); err != nil {
		tb.Fatalf("testsvc: mosquitto config: %v", err)
	}
	tb.Cleanup(s.Stop)
	if err := s.Start(); err != nil {
		tb.Fatalf("testsvc: %v", err)
	}
	return s
}

// writeFiles writes the password file (hashed by mosquitto_passwd -U), the ACL file, the
// certificates and mosquitto.conf.
func (s *MosquittoServer) writeFiles(opts MosquittoOptions) error {
	var passwd, acl strings.Builder
	for _, users := range []map[string]string{opts.Servers, opts.Devices} {
		for _, name := range sortedKeys(users) {
			if strings.ContainsAny(name, ":\n") || strings.Contains(users[name], "\n") {
				return fmt.Errorf("user %q: ':' or newline in a name or password", name)
			}
			fmt.Fprintf(&passwd, "%s:%s\n", name, users[name])
		}
	}
	// Server accounts first: Mosquitto applies `user` blocks to that user and `pattern` lines
	// to everyone, so devices get only the patterns.
	acl.WriteString("# the server's own accounts (bridge users)\n")
	for _, name := range sortedKeys(opts.Servers) {
		fmt.Fprintf(&acl, "user %s\ntopic readwrite %s/#\n\n", name, opts.Root)
	}
	fmt.Fprintf(&acl, "# every device: %%u is the username, which is the device ID\n")
	fmt.Fprintf(&acl, "pattern read %s/%%u/down/#\n", opts.Root)
	fmt.Fprintf(&acl, "pattern write %s/%%u/up/#\n", opts.Root)

	passwdPath := filepath.Join(s.dir, "passwd")
	aclPath := filepath.Join(s.dir, "acl")
	if err := os.WriteFile(passwdPath, []byte(passwd.String()), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(MosquittoPasswdBinary, "-U", passwdPath).CombinedOutput(); err != nil {
		return fmt.Errorf("mosquitto_passwd -U: %w: %s", err, strings.TrimSpace(string(out)))
	}
	if err := os.WriteFile(aclPath, []byte(acl.String()), 0o600); err != nil {
		return err
	}

	var conf strings.Builder
	if os.Geteuid() == 0 {
		// Started as root, Mosquitto drops to the "mosquitto" user, which cannot read a test's
		// temporary folder; "user root" keeps the privileges it was started with.
		conf.WriteString("user root\n")
	}
	fmt.Fprintf(&conf, "per_listener_settings false\nallow_anonymous false\n")
	fmt.Fprintf(&conf, "password_file %s\nacl_file %s\n", passwdPath, aclPath)
	fmt.Fprintf(&conf, "log_dest file %s\nlog_type all\nconnection_messages true\nlog_timestamp true\n", s.logPath)
	if opts.Persistence {
		fmt.Fprintf(&conf, "persistence true\npersistence_location %s/\nautosave_interval 1\n", s.dir)
	} else {
		conf.WriteString("persistence false\n")
	}
	// use_username_as_clientid is a listener setting (docs/protocol.md §1.2: the client ID is
	// forced to the username); set before any listener it would create Mosquitto's default
	// listener on port 1883.
	fmt.Fprintf(&conf, "\nlistener %d 127.0.0.1\nuse_username_as_clientid true\n", s.Port)
	if opts.TLS {
		ca, caKey, err := newCA("espadmin test CA")
		if err != nil {
			return err
		}
		notAfter := time.Now().Add(24 * time.Hour)
		if opts.ExpiredCert {
			notAfter = time.Now().Add(-24 * time.Hour)
		}
		certPEM, keyPEM, err := issueServerCert(ca, caKey, notAfter)
		if err != nil {
			return err
		}
		s.CACertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
		files := map[string][]byte{"ca.pem": s.CACertPEM, "server.pem": certPEM, "server.key": keyPEM}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(s.dir, name), b, 0o600); err != nil {
				return err
			}
		}
		fmt.Fprintf(&conf, "\nlistener %d 127.0.0.1\nuse_username_as_clientid true\ncafile %s\ncertfile %s\nkeyfile %s\n", s.TLSPort,
			filepath.Join(s.dir, "ca.pem"), filepath.Join(s.dir, "server.pem"), filepath.Join(s.dir, "server.key"))
	}
	return os.WriteFile(s.conf, []byte(conf.String()), 0o600)
}

// Start starts the broker (again, after Stop) on the same ports with the same files and waits
// until every listener accepts connections.
func (s *MosquittoServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	cmd := exec.Command(MosquittoBinary, "-c", s.conf)
	cmd.Dir = s.dir
	// Pdeathsig takes the broker down with the test process should cleanup not run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := os.OpenFile(filepath.Join(s.dir, "stderr.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mosquitto: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	ports := []int{s.Port}
	if s.TLSPort != 0 {
		ports = append(ports, s.TLSPort)
	}
	deadline := time.Now().Add(startTimeout)
	for _, port := range ports {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		for {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = conn.Close()
				break
			}
			select {
			case <-done:
				s.cmd = nil
				return fmt.Errorf("mosquitto exited during start: %s", s.logTailLocked())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				s.stopLocked()
				return fmt.Errorf("mosquitto not accepting on %s after %s: %v", addr, startTimeout, err)
			}
		}
	}
	return nil
}

// Stop stops the broker with SIGTERM (a clean stop, which saves the persistence file when
// Persistence is on) and waits for it to exit. Clients see their connections drop.
func (s *MosquittoServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *MosquittoServer) stopLocked() {
	if s.cmd == nil {
		return
	}
	stopProcess(s.cmd.Process, syscall.SIGTERM, s.done)
	s.cmd, s.done = nil, nil
}

// Log returns the broker's log so far (connections, refusals, subscriptions).
func (s *MosquittoServer) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

func (s *MosquittoServer) logTailLocked() string {
	b, _ := os.ReadFile(s.logPath)
	e, _ := os.ReadFile(filepath.Join(s.dir, "stderr.log"))
	b = append(b, e...)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// NewCAPEM returns a freshly generated CA certificate in PEM form, for tests that need a CA
// other than the one that signed a server's certificate.
func NewCAPEM(tb testing.TB) []byte {
	tb.Helper()
	ca, _, err := newCA("espadmin unrelated test CA")
	if err != nil {
		tb.Fatalf("testsvc: CA: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
}

// newCA generates a self-signed P-256 CA valid for a day.
func newCA(name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// issueServerCert issues a certificate for IP 127.0.0.1 only, so that connecting by the name
// "localhost" is a hostname mismatch.
func issueServerCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, notAfter time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-47 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
