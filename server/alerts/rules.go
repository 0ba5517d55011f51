package alerts

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/espadmin/espadmin/store"
)

// Rule kinds: what a rule watches.
const (
	KindDeviceOffline    = "device_offline"     // offline for at least Minutes
	KindDeviceOnline     = "device_online"      // back online (after at least Minutes offline, when set)
	KindErrorNew         = "error_new"          // a new error group
	KindErrorRate        = "error_rate"         // more than Count errors within Minutes
	KindRollout          = "rollout"            // a rollout entered one of States
	KindConfigNotApplied = "config_not_applied" // a config version not applied within Minutes
	KindAuthFailures     = "auth_failures"      // Count failed logins of one device within Minutes
)

// Kinds lists the rule kinds in the order the UI offers them.
var Kinds = []string{KindDeviceOffline, KindDeviceOnline, KindErrorNew, KindErrorRate, KindRollout,
	KindConfigNotApplied, KindAuthFailures}

// RolloutStates are the rollout states a rollout rule may watch. A rollout that pauses itself
// because too many devices failed is "paused" with a pause reason.
var RolloutStates = []string{string(store.RolloutPaused), string(store.RolloutAborted), string(store.RolloutCompleted)}

// Params are a rule's thresholds; which ones apply depends on the kind.
type Params struct {
	Minutes int      `json:"minutes,omitempty"`
	Count   int      `json:"count,omitempty"`
	States  []string `json:"states,omitempty"`
}

// Limits of rule settings.
const (
	MaxMinutes        = 7 * 24 * 60
	MaxCount          = 100000
	MaxCooldown       = 7 * 24 * 3600
	MaxChannelsOfRule = 20
	MaxNameLength     = 100
)

// ValidateRule checks a rule as an administrator wrote it and normalises its Params; the
// errors name the JSON fields of the API.
func ValidateRule(r *store.AlertRule) error {
	if strings.TrimSpace(r.Name) == "" || len(r.Name) > MaxNameLength {
		return store.Invalid("name", fmt.Sprintf("must be 1 to %d characters", MaxNameLength))
	}
	if !slices.Contains(Kinds, r.Kind) {
		return store.Invalid("kind", "must be one of "+strings.Join(Kinds, ", "))
	}
	var p Params
	if r.Params != "" {
		if err := json.Unmarshal([]byte(r.Params), &p); err != nil {
			return store.Invalid("params", "must be a JSON object with minutes, count or states")
		}
	}
	needMinutes := map[string]bool{KindDeviceOffline: true, KindErrorRate: true, KindConfigNotApplied: true, KindAuthFailures: true}
	needCount := map[string]bool{KindErrorRate: true, KindAuthFailures: true}
	switch {
	case p.Minutes < 0 || p.Minutes > MaxMinutes:
		return store.Invalid("params.minutes", fmt.Sprintf("must be 0 to %d", MaxMinutes))
	case needMinutes[r.Kind] && p.Minutes == 0:
		return store.Invalid("params.minutes", "is required for "+r.Kind)
	case p.Count < 0 || p.Count > MaxCount:
		return store.Invalid("params.count", fmt.Sprintf("must be 0 to %d", MaxCount))
	case needCount[r.Kind] && p.Count == 0:
		return store.Invalid("params.count", "is required for "+r.Kind)
	}
	if r.Kind == KindRollout {
		if len(p.States) == 0 {
			p.States = slices.Clone(RolloutStates)
		}
		for i, st := range p.States {
			if !slices.Contains(RolloutStates, st) {
				return store.Invalid(fmt.Sprintf("params.states[%d]", i), "must be one of "+strings.Join(RolloutStates, ", "))
			}
		}
	} else if len(p.States) > 0 {
		return store.Invalid("params.states", "applies to rollout rules only")
	}
	b, _ := json.Marshal(p)
	r.Params = string(b)
	if r.CooldownSeconds < 0 || r.CooldownSeconds > MaxCooldown {
		return store.Invalid("cooldown_seconds", fmt.Sprintf("must be 0 to %d", MaxCooldown))
	}
	if len(r.ChannelIDs) > MaxChannelsOfRule {
		return store.Invalid("channel_ids", fmt.Sprintf("at most %d channels", MaxChannelsOfRule))
	}
	if r.ChannelIDs == nil {
		r.ChannelIDs = []string{}
	}
	return nil
}

// params decodes a stored rule's Params; a stored rule was validated, so a decoding error
// leaves the zero thresholds.
func params(r store.AlertRule) Params {
	var p Params
	_ = json.Unmarshal([]byte(r.Params), &p)
	return p
}

// covers reports whether the rule's scope includes the device.
func covers(r store.AlertRule, d deviceInfo) bool {
	switch {
	case r.DeviceID != "" && r.DeviceID != d.id:
		return false
	case r.ProjectID != "" && r.ProjectID != d.projectID:
		return false
	case r.Tag != "" && !slices.Contains(d.tags, r.Tag):
		return false
	}
	return true
}
