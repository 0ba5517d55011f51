// Package alerts evaluates a tenant's alert rules on its event stream and queues a
// notification per rule group and channel in a persistent outbox (store.AlertDelivery), which
// the dispatcher sends: signed webhooks (with Slack and Discord presets), email, ntfy and Web
// Push. docs/alerts.md describes rules, channels and the message format.
package alerts

import (
	"strings"
	"time"

	"github.com/espadmin/espadmin/store"
)

// Message is the JSON body of every notification, in the Standard Webhooks shape (type,
// timestamp, data). Presets (Slack, Discord, ntfy, email) render its Text.
type Message struct {
	Type      string      `json:"type"` // alert.firing, alert.resolved, alert.test
	Timestamp time.Time   `json:"timestamp"`
	Data      MessageData `json:"data"`
}

// MessageData describes the alert.
type MessageData struct {
	AlertID      string     `json:"alert_id"`
	TenantID     string     `json:"tenant_id"`
	RuleID       string     `json:"rule_id"`
	RuleName     string     `json:"rule_name"`
	Kind         string     `json:"kind"`
	State        string     `json:"state"`
	Summary      string     `json:"summary"`
	Subjects     []string   `json:"subjects"`
	SubjectCount int        `json:"subject_count"`
	FiredAt      time.Time  `json:"fired_at"`
	ResolvedAt   *time.Time `json:"resolved_at,omitempty"`
	URL          string     `json:"url,omitempty"`
}

// AlertsURL is the link to a tenant's alert history in the web UI.
func AlertsURL(publicURL, tenantSlug string) string {
	if publicURL == "" || tenantSlug == "" {
		return ""
	}
	return strings.TrimRight(publicURL, "/") + "/t/" + tenantSlug + "/alerts"
}

// NewMessage builds the message of typ about a, linking to url; at most MaxPayloadSubjects
// subjects are listed, SubjectCount says how many there are.
func NewMessage(typ string, a store.Alert, url string, now time.Time) Message {
	subjects := a.Subjects
	if len(subjects) > MaxPayloadSubjects {
		subjects = subjects[:MaxPayloadSubjects]
	}
	if subjects == nil {
		subjects = []string{}
	}
	return Message{Type: typ, Timestamp: now.UTC(), Data: MessageData{
		AlertID: a.ID, TenantID: a.TenantID, RuleID: a.RuleID, RuleName: a.RuleName, Kind: a.Kind,
		State: string(a.State), Summary: a.Summary, Subjects: subjects, SubjectCount: len(a.Subjects),
		FiredAt: a.FiredAt, ResolvedAt: a.ResolvedAt, URL: url,
	}}
}

// Text renders the message as the lines a chat or phone notification shows.
func (m Message) Text() string {
	s := m.Data.Summary
	if m.Type == "alert.resolved" {
		s = "Resolved: " + s
	}
	for i, subj := range m.Data.Subjects {
		if i == 20 {
			s += "\n…"
			break
		}
		s += "\n• " + subj
	}
	if m.Data.SubjectCount > len(m.Data.Subjects) && len(m.Data.Subjects) <= 20 {
		s += "\n…"
	}
	if m.Data.URL != "" {
		s += "\n" + m.Data.URL
	}
	return s
}
