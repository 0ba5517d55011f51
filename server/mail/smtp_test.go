package mail

import (
	"bufio"
	"context"
	"encoding/base64"
	"net"
	"strings"
	"sync"
	"testing"
)

// smtpServer is a minimal SMTP server on loopback that records one session's commands and
// message data, enough to check what the client really sends on the wire.
type smtpServer struct {
	ln   net.Listener
	mu   sync.Mutex
	cmds []string
	data string
	done chan struct{}
}

func startSMTP(t *testing.T) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, done: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go s.serve()
	return s
}

func (s *smtpServer) serve() {
	defer close(s.done)
	conn, err := s.ln.Accept()
	if err != nil {
		return
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	say := func(line string) { conn.Write([]byte(line + "\r\n")) }
	say("220 test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.cmds = append(s.cmds, line)
		s.mu.Unlock()
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch verb {
		case "EHLO":
			say("250-test")
			say("250 AUTH PLAIN")
		case "AUTH":
			say("235 ok")
		case "MAIL", "RCPT":
			say("250 ok")
		case "DATA":
			say("354 go on")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			s.mu.Lock()
			s.data = b.String()
			s.mu.Unlock()
			say("250 queued")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 unknown")
		}
	}
}

func TestSMTPSendsOnTheWire(t *testing.T) {
	t.Parallel()
	srv := startSMTP(t)
	s, err := NewSMTP("smtp://mailer:s3cret@"+srv.ln.Addr().String(), "ESP Admin <noreply@example.com>")
	if err != nil {
		t.Fatal(err)
	}
	m := PasswordReset("Ann <ann@example.com>", "https://espadmin.example.com/reset?token=abc", "1h")
	m.Subject += "\r\nBcc: eve@example.com" // header injection attempt
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	<-srv.done
	srv.mu.Lock()
	defer srv.mu.Unlock()
	cmds := strings.Join(srv.cmds, "\n")
	for _, want := range []string{"MAIL FROM:<noreply@example.com>", "RCPT TO:<ann@example.com>", "QUIT"} {
		if !strings.Contains(cmds, want) {
			t.Errorf("SMTP session lacks %q:\n%s", want, cmds)
		}
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00mailer\x00s3cret"))
	if !strings.Contains(cmds, "AUTH PLAIN "+plain) {
		t.Errorf("SMTP session did not authenticate with the URL's credentials:\n%s", cmds)
	}
	if strings.Contains(srv.data, "\r\nBcc:") || strings.Contains(cmds, "eve@example.com") {
		t.Errorf("a newline in the subject added a header:\n%s", srv.data)
	}
	head, body, ok := strings.Cut(srv.data, "\r\n\r\n")
	if !ok || !strings.Contains(head, "To: \"Ann\" <ann@example.com>") || !strings.Contains(head, "Subject: ") {
		t.Errorf("headers are wrong:\n%s", head)
	}
	if !strings.Contains(body, "https://espadmin.example.com/reset?token=abc\r\n") {
		t.Errorf("body lacks the link with CRLF line ends:\n%q", body)
	}
}

func TestSMTPRefusesBadSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, from, want string }{
		{"http://host", "a@example.com", "ESPADMIN_SMTP_URL"},
		{"smtp://", "a@example.com", "ESPADMIN_SMTP_URL"},
		{"smtp://host:25", "not an address", "ESPADMIN_MAIL_FROM"},
	} {
		if _, err := NewSMTP(tc.url, tc.from); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSMTP(%q, %q) = %v, want an error naming %s", tc.url, tc.from, err, tc.want)
		}
	}
}

func TestSMTPReportsAnUnreachableServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := NewSMTP("smtp://"+addr, "a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), Message{To: "b@example.com", Subject: "x", Body: "y"}); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("Send to a closed port = %v, want a connect error", err)
	}
}
