// Package mail sends ESP Admin's email: password resets, address verification and
// invitations. Senders implement one small interface; SMTP sends for real, Capture keeps the
// messages for tests.
package mail

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Message is one plain-text email.
type Message struct {
	To      string
	Subject string
	Body    string
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// PasswordReset is the mail carrying a password-reset link.
func PasswordReset(to, link string, validFor string) Message {
	return Message{
		To:      to,
		Subject: "Reset your ESP Admin password",
		Body: fmt.Sprintf("Someone asked to reset the password of your ESP Admin account.\n\n"+
			"To choose a new password, open this link (valid for %s, usable once):\n\n%s\n\n"+
			"If this was not you, ignore this mail; your password stays as it is.\n", validFor, link),
	}
}

// Verification is the mail that confirms an email address.
func Verification(to, link string) Message {
	return Message{
		To:      to,
		Subject: "Confirm your email address for ESP Admin",
		Body: fmt.Sprintf("Open this link to confirm that this address belongs to you:\n\n%s\n\n"+
			"If you did not create an ESP Admin account, ignore this mail.\n", link),
	}
}

// Invitation is the mail inviting someone to join a tenant.
func Invitation(to, tenantName, inviter, role, link string) Message {
	return Message{
		To:      to,
		Subject: fmt.Sprintf("You are invited to %s on ESP Admin", oneLine(tenantName)),
		Body: fmt.Sprintf("%s invited you to join %s on ESP Admin as %s.\n\n"+
			"Accept the invitation here (the link works once and expires):\n\n%s\n", inviter, tenantName, role, link),
	}
}

// oneLine keeps user-supplied text from adding header lines.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Capture records messages instead of sending them; tests read them back.
type Capture struct {
	mu   sync.Mutex
	msgs []Message
}

// Send records m.
func (c *Capture) Send(_ context.Context, m Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	return nil
}

// Messages returns a copy of what was sent, oldest first.
func (c *Capture) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// To returns the messages sent to addr, oldest first.
func (c *Capture) To(addr string) []Message {
	var out []Message
	for _, m := range c.Messages() {
		if strings.EqualFold(m.To, addr) {
			out = append(out, m)
		}
	}
	return out
}

var _ Sender = (*Capture)(nil)
