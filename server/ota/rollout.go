package ota

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
)

// Event types this service publishes on the fleet Hub, for the UI.
const (
	EventRollout       = "rollout"       // a rollout was created or changed state or stage
	EventDeviceUpdate  = "device_update" // a device's state in a rollout changed
	maxStages          = 10
	maxRolloutDeviceID = 1000
	// MaxStageSoak bounds a stage's soak time.
	MaxStageSoak = 7 * 24 * time.Hour
	// ReasonAwaitingApproval is the pause reason of a rollout that waits for a person to
	// approve its next stage (a resume approves it).
	ReasonAwaitingApproval = "awaiting approval"
)

// RolloutInput describes a rollout to start.
type RolloutInput struct {
	ReleaseID string
	Target    store.RolloutTarget
	// Stages are increasing percentages of the target ending at 100, e.g. 5, 25, 100; empty
	// means one stage of 100.
	Stages []int
	// FailureThreshold is the fraction of failed devices (0..1) above which the rollout
	// pauses itself; nil means DefaultFailureThreshold.
	FailureThreshold *float64
	// StageSoak is how long a finished stage waits before the next one starts (failures
	// reported meanwhile still pause the rollout); 0 starts the next stage at once.
	StageSoak time.Duration
	// RequireApproval pauses the rollout at the end of every stage but the last until a
	// person resumes it.
	RequireApproval bool
	CreatedBy       string
}

// RolloutEvent is the data of a rollout event.
type RolloutEvent struct {
	ID           string                      `json:"id"`
	ProjectID    string                      `json:"project_id"`
	ReleaseID    string                      `json:"release_id"`
	State        string                      `json:"state"`
	CurrentStage int                         `json:"current_stage"`
	PauseReason  string                      `json:"pause_reason,omitempty"`
	Totals       map[store.UpdateState]int64 `json:"totals"`
}

// DeviceUpdateEvent is the data of a device_update event.
type DeviceUpdateEvent struct {
	RolloutID string `json:"rollout_id"`
	Version   string `json:"version"`
	State     string `json:"state"`
	Progress  int    `json:"progress"`
	Reason    string `json:"reason,omitempty"`
}

func validateRollout(in *RolloutInput) error {
	t := &in.Target
	switch t.Kind {
	case store.TargetAll:
	case store.TargetTag:
		if t.Tag == "" || len(t.Tag) > 64 {
			return store.Invalid("rollout.target.tag", "must be 1 to 64 characters")
		}
	case store.TargetDevices:
		if len(t.DeviceIDs) == 0 || len(t.DeviceIDs) > maxRolloutDeviceID {
			return store.Invalid("rollout.target.device_ids", fmt.Sprintf("must list 1 to %d devices", maxRolloutDeviceID))
		}
		seen := map[string]bool{}
		for i, id := range t.DeviceIDs {
			if seen[id] || !protocol.ValidDeviceID(id) {
				return store.Invalid(fmt.Sprintf("rollout.target.device_ids[%d]", i), "is not a device ID or is listed twice")
			}
			seen[id] = true
		}
	case store.TargetPercent:
		if t.Percent < 1 || t.Percent > 100 {
			return store.Invalid("rollout.target.percent", "must be from 1 to 100")
		}
	default:
		return store.Invalid("rollout.target.kind", "must be all, tag, devices or percent")
	}
	if len(in.Stages) == 0 {
		in.Stages = []int{100}
	}
	if len(in.Stages) > maxStages {
		return store.Invalid("rollout.stages", fmt.Sprintf("at most %d stages", maxStages))
	}
	for i, st := range in.Stages {
		if st < 1 || st > 100 || i > 0 && st <= in.Stages[i-1] {
			return store.Invalid("rollout.stages", "must be increasing percentages from 1 to 100")
		}
	}
	if in.Stages[len(in.Stages)-1] != 100 {
		return store.Invalid("rollout.stages", "the last stage must be 100")
	}
	if in.FailureThreshold != nil && (*in.FailureThreshold < 0 || *in.FailureThreshold > 1) {
		return store.Invalid("rollout.failure_threshold", "must be from 0 to 1")
	}
	if in.StageSoak < 0 || in.StageSoak > MaxStageSoak {
		return store.Invalid("rollout.stage_soak_seconds", fmt.Sprintf("must be from 0 to %d (7 days)", int(MaxStageSoak/time.Second)))
	}
	return nil
}

// CreateRollout starts a rollout of a release: it stores the rollout, the first stage's
// devices (skipped when they already run the version) and sends each pending device an update
// command.
func (s *Service) CreateRollout(ctx context.Context, tenantID string, in RolloutInput) (store.Rollout, error) {
	if err := validateRollout(&in); err != nil {
		return store.Rollout{}, err
	}
	rel, err := s.o.Store.Release(ctx, tenantID, in.ReleaseID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Rollout{}, store.Invalid("release_id", "no such release")
	}
	if err != nil {
		return store.Rollout{}, err
	}
	threshold := DefaultFailureThreshold
	if in.FailureThreshold != nil {
		threshold = *in.FailureThreshold
	}
	now := s.now()
	r := store.Rollout{
		ID: store.NewID(), TenantID: tenantID, ProjectID: rel.ProjectID, ReleaseID: rel.ID,
		Target: in.Target, Stages: in.Stages, FailureThreshold: threshold, State: store.RolloutActive,
		StageSoak: in.StageSoak.Truncate(time.Second), RequireApproval: in.RequireApproval,
		CreatedBy: in.CreatedBy, CreatedAt: now, UpdatedAt: now,
	}
	targets, err := s.targets(ctx, r)
	if err != nil {
		return store.Rollout{}, err
	}
	if len(targets) == 0 {
		return store.Rollout{}, store.Invalid("rollout.target", "matches no device of the project")
	}
	if err := s.o.Store.CreateRollout(ctx, &r); err != nil {
		return store.Rollout{}, err
	}
	if err := s.materialize(ctx, r, rel, targets); err != nil {
		return r, err
	}
	s.publishRollout(ctx, r)
	s.evaluate(ctx, r.TenantID, r.ID)
	return s.o.Store.Rollout(ctx, tenantID, r.ID)
}

// RolloutPreview is what a rollout would reach if started now, for a confirmation.
type RolloutPreview struct {
	Devices        int // the whole target
	FirstStage     int // devices in the first stage
	AlreadyRunning int // target devices that run the release's version already (skipped)
	Version        string
}

// PreviewRollout validates in like CreateRollout and counts the devices it would reach,
// without starting anything. A percent target's cohort depends on the rollout's ID, so its
// count is what a new rollout would most likely get.
func (s *Service) PreviewRollout(ctx context.Context, tenantID string, in RolloutInput) (RolloutPreview, error) {
	if err := validateRollout(&in); err != nil {
		return RolloutPreview{}, err
	}
	rel, err := s.o.Store.Release(ctx, tenantID, in.ReleaseID)
	if errors.Is(err, store.ErrNotFound) {
		return RolloutPreview{}, store.Invalid("release_id", "no such release")
	}
	if err != nil {
		return RolloutPreview{}, err
	}
	r := store.Rollout{ID: store.NewID(), TenantID: tenantID, ProjectID: rel.ProjectID, Target: in.Target, Stages: in.Stages}
	targets, err := s.targets(ctx, r)
	if err != nil {
		return RolloutPreview{}, err
	}
	p := RolloutPreview{Devices: len(targets), Version: rel.Version}
	if len(targets) > 0 {
		p.FirstStage = stageSize(len(targets), in.Stages[0])
	}
	for _, d := range targets {
		if d.Metadata.FirmwareVersion == rel.Version {
			p.AlreadyRunning++
		}
	}
	return p, nil
}

// targets returns the rollout's target devices in cohort order (a hash of rollout and device
// ID), so stages take prefixes of a fixed random order.
func (s *Service) targets(ctx context.Context, r store.Rollout) ([]store.Device, error) {
	var devs []store.Device
	switch r.Target.Kind {
	case store.TargetDevices:
		for i, id := range r.Target.DeviceIDs {
			d, err := s.o.Store.Device(ctx, r.TenantID, id)
			if errors.Is(err, store.ErrNotFound) || err == nil && d.ProjectID != r.ProjectID {
				return nil, store.Invalid(fmt.Sprintf("rollout.target.device_ids[%d]", i), "no such device in this project")
			}
			if err != nil {
				return nil, err
			}
			devs = append(devs, d)
		}
	default:
		f := store.DeviceFilter{ProjectID: r.ProjectID}
		if r.Target.Kind == store.TargetTag {
			f.Tag = r.Target.Tag
		}
		opts := store.ListOptions{Limit: store.MaxPageSize}
		for {
			page, err := s.o.Store.ListDevices(ctx, r.TenantID, f, opts)
			if err != nil {
				return nil, err
			}
			for _, d := range page.Items {
				if r.Target.Kind != store.TargetPercent || Cohort(r.ID, d.ID) < r.Target.Percent*100 {
					devs = append(devs, d)
				}
			}
			if len(devs) > fleet.MaxTargets {
				return nil, store.Invalid("rollout.target", fmt.Sprintf("matches more than %d devices", fleet.MaxTargets))
			}
			if page.NextCursor == "" {
				break
			}
			opts.Cursor = page.NextCursor
		}
	}
	slices.SortFunc(devs, func(a, b store.Device) int {
		return strings.Compare(cohortKey(r.ID, a.ID), cohortKey(r.ID, b.ID))
	})
	return devs, nil
}

func cohortHash(rolloutID, deviceID string) [32]byte {
	return sha256.Sum256([]byte(rolloutID + "\x00" + deviceID))
}

func cohortKey(rolloutID, deviceID string) string {
	h := cohortHash(rolloutID, deviceID)
	return string(h[:8]) + deviceID
}

// Cohort places a device in a rollout's population: a number in 0..9999 from a hash of the
// rollout and device IDs. A percent target of P takes the devices below P×100, so the same
// device is in or out every time the rollout is evaluated, and different rollouts pick
// different devices.
func Cohort(rolloutID, deviceID string) int {
	h := cohortHash(rolloutID, deviceID)
	return int(binary.BigEndian.Uint64(h[:8]) % 10000)
}

// stageSize is how many of n targets the stage includes (at least one).
func stageSize(n, percent int) int {
	k := (n*percent + 99) / 100
	return max(1, min(k, n))
}

// materialize adds the current stage's devices to the rollout and sends them their update
// commands. Rows are written first, so the totals count the whole stage before any device can
// report; then each pending device gets its command.
func (s *Service) materialize(ctx context.Context, r store.Rollout, rel store.Release, targets []store.Device) error {
	n := stageSize(len(targets), r.Stages[min(r.CurrentStage, len(r.Stages)-1)])
	var send []store.Device
	for _, d := range targets[:n] {
		if _, err := s.o.Store.RolloutDevice(ctx, r.TenantID, r.ID, d.ID); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		rd := store.RolloutDevice{TenantID: r.TenantID, RolloutID: r.ID, DeviceID: d.ID, State: store.UpdatePending, UpdatedAt: s.now()}
		if d.Metadata.FirmwareVersion == rel.Version {
			rd.State = store.UpdateSkipped // nothing to download: progress stays 0
		} else {
			send = append(send, d)
		}
		if err := s.o.Store.PutRolloutDevice(ctx, &rd); err != nil {
			return err
		}
		s.publishDevice(rd, rel.Version)
	}
	var errs []error
	for _, d := range send {
		if err := s.sendUpdate(ctx, r, rel, d.ID); err != nil {
			errs = append(errs, fmt.Errorf("device %s: %w", d.ID, err))
		}
	}
	return errors.Join(errs...)
}

// sendUpdate sends one device its update command, with a fresh signed URL valid as long as
// the command, signed by the project's key unless signing is off.
func (s *Service) sendUpdate(ctx context.Context, r store.Rollout, rel store.Release, deviceID string) error {
	proj, err := s.o.Store.Project(ctx, r.TenantID, r.ProjectID)
	if err != nil {
		return err
	}
	url, expires, err := s.DownloadURL(ctx, rel, s.o.CommandTTL)
	if err != nil {
		return err
	}
	params := protocol.UpdateParams{
		Version: rel.Version, Size: rel.Size, SHA256: rel.SHA256, URL: url, URLExpiresAt: expires.UnixMilli(),
	}
	if proj.SigningEnabled {
		key, err := s.signingKey(proj)
		if err != nil {
			return err
		}
		params = protocol.SignUpdate(key, params)
	}
	commands, err := s.commander()
	if err != nil {
		return err
	}
	cmd, err := commands.SendSystem(ctx, r.TenantID, fleet.SystemCommand{
		DeviceID: deviceID, TTL: s.o.CommandTTL, RolloutID: r.ID, CreatedBy: r.CreatedBy,
		Build: func(id string, expiresAt int64) protocol.Command {
			return protocol.Command{ID: id, Name: protocol.CommandUpdate, ExpiresAt: expiresAt, Update: &params}
		},
	})
	if err != nil {
		return err
	}
	// Record the command unless the device already reported on it (which records it too).
	cur, err := s.o.Store.RolloutDevice(ctx, r.TenantID, r.ID, deviceID)
	if err != nil {
		return err
	}
	if cur.State == store.UpdatePending && cur.CommandID != cmd.ID {
		cur.CommandID, cur.UpdatedAt = cmd.ID, s.now()
		return s.o.Store.PutRolloutDevice(ctx, &cur)
	}
	return nil
}

// OTAProgress applies a device's ota report (fleet.OTAReporter). Reports for commands that
// are not part of a rollout, of another device, or superseded by a newer command are dropped.
func (s *Service) OTAProgress(ctx context.Context, dev fleet.DeviceRef, p protocol.OTAProgress) error {
	cmd, err := s.o.Store.Command(ctx, dev.TenantID, p.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if cmd.DeviceID != dev.DeviceID || cmd.RolloutID == "" {
		return nil
	}
	rd, err := s.o.Store.RolloutDevice(ctx, dev.TenantID, cmd.RolloutID, dev.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if rd.CommandID != "" && rd.CommandID != cmd.ID || final(rd.State) {
		return nil
	}
	r, err := s.o.Store.Rollout(ctx, dev.TenantID, cmd.RolloutID)
	if err != nil {
		return err
	}
	rel, err := s.o.Store.Release(ctx, dev.TenantID, r.ReleaseID)
	if err != nil {
		return err
	}
	if p.Version != rel.Version {
		return nil
	}
	// A failure report may carry no progress: what was downloaded before stays shown.
	downloaded := rd.Progress
	rd.CommandID, rd.Progress, rd.Reason = cmd.ID, p.Progress, ""
	switch p.State {
	case protocol.OTADownloading:
		rd.State = store.UpdateDownloading
	case protocol.OTADownloaded:
		rd.State = store.UpdateDownloaded
	case protocol.OTAInstalling:
		rd.State = store.UpdateInstalling
	case protocol.OTARebooting:
		rd.State = store.UpdateRebooting
	case protocol.OTASucceeded:
		// The new image reached the server: its metadata (handled before this report, on the
		// same ingest worker) must carry the release version.
		d, err := s.o.Store.Device(ctx, dev.TenantID, dev.DeviceID)
		if err != nil {
			return err
		}
		// Either way the whole image was downloaded and installed.
		rd.Progress = 100
		if d.Metadata.FirmwareVersion == rel.Version {
			rd.State = store.UpdateSucceeded
		} else {
			rd.State, rd.Reason = store.UpdateFailed, protocol.ReasonBootFailedRolledBack
		}
	case protocol.OTAFailed:
		rd.State, rd.Reason, rd.Progress = store.UpdateFailed, p.Reason, max(downloaded, p.Progress)
		if p.Reason == protocol.ReasonBootFailedRolledBack {
			rd.Progress = 100
		}
	default:
		return nil
	}
	rd.UpdatedAt = s.now()
	if err := s.o.Store.PutRolloutDevice(ctx, &rd); err != nil {
		return err
	}
	s.publishDevice(rd, rel.Version)
	if final(rd.State) {
		s.evaluate(ctx, dev.TenantID, r.ID)
	}
	return nil
}

func final(st store.UpdateState) bool {
	return st == store.UpdateSucceeded || st == store.UpdateFailed || st == store.UpdateSkipped
}

// CommandAcked applies the acknowledgement of an update command: a device that refuses it
// because it already runs the version is skipped; any other refusal fails the device with the
// reason. (The engine's tick does the same from the command's stored state, so nothing is
// lost when acks reach another replica.)
func (s *Service) CommandAcked(ctx context.Context, cmd store.Command, ack protocol.Ack) {
	if cmd.Name != protocol.CommandUpdate || cmd.RolloutID == "" || ack.Result == protocol.ResultOK {
		return
	}
	cmd.State, cmd.Error = store.CommandFailed, ack.Result
	if ack.Message != "" {
		cmd.Error += ": " + ack.Message
	}
	if err := s.applyCommand(ctx, cmd); err != nil {
		s.o.Logger.Warn("apply update ack", "tenant_id", cmd.TenantID, "command_id", cmd.ID, "error", err)
	}
}

// applyCommand moves a pending device on from its update command's final state.
func (s *Service) applyCommand(ctx context.Context, cmd store.Command) error {
	if cmd.State != store.CommandFailed {
		return nil
	}
	rd, err := s.o.Store.RolloutDevice(ctx, cmd.TenantID, cmd.RolloutID, cmd.DeviceID)
	if err != nil {
		return err
	}
	if rd.CommandID != cmd.ID || rd.State != store.UpdatePending {
		return nil
	}
	reason := cmd.Error
	if i := strings.LastIndex(reason, ": "); i >= 0 {
		reason = reason[i+2:]
	}
	if reason == protocol.ReasonAlreadyRunning {
		rd.State, rd.Progress = store.UpdateSkipped, 0
	} else {
		if !slices.Contains(protocol.OTAReasons(), reason) {
			reason = protocol.ReasonInternal
		}
		rd.State, rd.Reason = store.UpdateFailed, reason
	}
	rd.UpdatedAt = s.now()
	if err := s.o.Store.PutRolloutDevice(ctx, &rd); err != nil {
		return err
	}
	if rel, err := s.releaseOf(ctx, cmd.TenantID, cmd.RolloutID); err == nil {
		s.publishDevice(rd, rel.Version)
	}
	s.evaluate(ctx, cmd.TenantID, cmd.RolloutID)
	return nil
}

func (s *Service) releaseOf(ctx context.Context, tenantID, rolloutID string) (store.Release, error) {
	r, err := s.o.Store.Rollout(ctx, tenantID, rolloutID)
	if err != nil {
		return store.Release{}, err
	}
	return s.o.Store.Release(ctx, tenantID, r.ReleaseID)
}

// Totals counts a rollout's devices per state (every state present, zero when none).
func (s *Service) Totals(ctx context.Context, tenantID, rolloutID string) (map[store.UpdateState]int64, error) {
	c, err := s.o.Store.CountRolloutDevices(ctx, tenantID, rolloutID)
	if err != nil {
		return nil, err
	}
	out := map[store.UpdateState]int64{}
	for _, st := range []store.UpdateState{store.UpdatePending, store.UpdateDownloading, store.UpdateDownloaded,
		store.UpdateInstalling, store.UpdateRebooting, store.UpdateSucceeded, store.UpdateFailed, store.UpdateSkipped} {
		out[st] = c[st]
	}
	return out, nil
}

// evaluate decides what an active rollout does next: pause when the failure rate passes the
// threshold (in the last stage too: a rollout whose devices failed never reads as completed),
// advance to the next stage when every device of this one finished and the stage's soak time
// has passed (pausing for approval first when the rollout asks for it), complete after the
// last. Each change is a compare-and-set on the rollout's version, so with several
// replicas it happens once, and only the winner sends the next stage's commands.
func (s *Service) evaluate(ctx context.Context, tenantID, rolloutID string) {
	if err := s.evaluateErr(ctx, tenantID, rolloutID); err != nil && !errors.Is(err, store.ErrConflict) {
		s.o.Logger.Warn("evaluate rollout", "tenant_id", tenantID, "rollout_id", rolloutID, "error", err)
	}
}

func (s *Service) evaluateErr(ctx context.Context, tenantID, rolloutID string) error {
	r, err := s.o.Store.Rollout(ctx, tenantID, rolloutID)
	if err != nil {
		return err
	}
	if r.State != store.RolloutActive {
		return nil
	}
	totals, err := s.Totals(ctx, tenantID, rolloutID)
	if err != nil {
		return err
	}
	var all, unfinished int64
	for st, n := range totals {
		all += n
		if !final(st) {
			unfinished += n
		}
	}
	considered := all - totals[store.UpdateSkipped]
	rate := 0.0
	if considered > 0 {
		rate = float64(totals[store.UpdateFailed]) / float64(considered)
	}
	last := r.CurrentStage >= len(r.Stages)-1
	now := s.now()
	switch {
	case rate > r.FailureThreshold:
		r.State = store.RolloutPaused
		r.PauseReason = fmt.Sprintf("failure rate %.0f%% (%d of %d devices) passed the threshold of %.0f%%",
			rate*100, totals[store.UpdateFailed], considered, r.FailureThreshold*100)
		r.UpdatedAt = s.now()
		if err := s.o.Store.UpdateRollout(ctx, &r); err != nil {
			return err
		}
		s.stopQueued(ctx, r)
		s.o.Logger.Info("rollout paused", "tenant_id", tenantID, "rollout_id", r.ID, "reason", r.PauseReason)
	case unfinished > 0:
		return nil
	case last:
		r.State, r.UpdatedAt = store.RolloutCompleted, now
		if err := s.o.Store.UpdateRollout(ctx, &r); err != nil {
			return err
		}
	case r.StageDoneAt.IsZero() && (r.StageSoak > 0 || r.RequireApproval):
		// The stage has just finished: the soak time counts from now (the engine's tick
		// comes back to it).
		r.StageDoneAt, r.UpdatedAt = now, now
		if err := s.o.Store.UpdateRollout(ctx, &r); err != nil {
			return err
		}
		s.publishRollout(ctx, r)
		return s.evaluateErr(ctx, tenantID, rolloutID)
	case now.Before(r.StageDoneAt.Add(r.StageSoak)):
		return nil // soaking
	case r.RequireApproval:
		r.State, r.PauseReason, r.UpdatedAt = store.RolloutPaused, ReasonAwaitingApproval, now
		if err := s.o.Store.UpdateRollout(ctx, &r); err != nil {
			return err
		}
		s.o.Logger.Info("rollout awaits approval", "tenant_id", tenantID, "rollout_id", r.ID, "stage", r.CurrentStage)
	default:
		r.CurrentStage++
		r.StageDoneAt, r.UpdatedAt = time.Time{}, now
		if err := s.o.Store.UpdateRollout(ctx, &r); err != nil {
			return err
		}
		if err := s.startStage(ctx, r); err != nil {
			return err
		}
		// A stage whose devices were all skipped finishes at once.
		return s.evaluateErr(ctx, tenantID, rolloutID)
	}
	s.publishRollout(ctx, r)
	return nil
}

// startStage adds the rollout's current stage's devices and sends them their commands.
func (s *Service) startStage(ctx context.Context, r store.Rollout) error {
	rel, err := s.o.Store.Release(ctx, r.TenantID, r.ReleaseID)
	if err != nil {
		return err
	}
	targets, err := s.targets(ctx, r)
	if err != nil {
		return err
	}
	if err := s.materialize(ctx, r, rel, targets); err != nil {
		return err
	}
	s.publishRollout(ctx, r)
	return nil
}

// stopQueued expires the rollout's commands not yet delivered, so a paused or aborted rollout
// does not reach devices that were offline; resume sends them fresh ones.
func (s *Service) stopQueued(ctx context.Context, r store.Rollout) {
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := s.o.Store.ListCommands(ctx, r.TenantID, store.CommandFilter{RolloutID: r.ID, State: store.CommandQueued}, opts)
		if err != nil {
			s.o.Logger.Warn("list queued update commands", "rollout_id", r.ID, "error", err)
			return
		}
		for _, c := range page.Items {
			_, err := s.o.Store.TransitionCommand(ctx, r.TenantID, c.ID, store.CommandTransition{
				From: []store.CommandState{store.CommandQueued}, To: store.CommandExpired, Error: "rollout " + string(r.State), At: s.now(),
			})
			if err != nil && !errors.Is(err, store.ErrConflict) {
				s.o.Logger.Warn("expire update command", "command_id", c.ID, "error", err)
			}
		}
		if page.NextCursor == "" {
			return
		}
		opts.Cursor = page.NextCursor
	}
}

// changeState applies a person's pause, resume or abort, retrying on a concurrent change.
func (s *Service) changeState(ctx context.Context, tenantID, id string, apply func(r *store.Rollout) error) (store.Rollout, error) {
	for range 5 {
		r, err := s.o.Store.Rollout(ctx, tenantID, id)
		if err != nil {
			return store.Rollout{}, err
		}
		if err := apply(&r); err != nil {
			return store.Rollout{}, err
		}
		r.UpdatedAt = s.now()
		err = s.o.Store.UpdateRollout(ctx, &r)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return store.Rollout{}, err
		}
		return r, nil
	}
	return store.Rollout{}, &StateError{Reason: "the rollout is changing; try again"}
}

// Pause stops sending the rollout to more devices; devices already updating carry on.
func (s *Service) Pause(ctx context.Context, tenantID, id string) (store.Rollout, error) {
	r, err := s.changeState(ctx, tenantID, id, func(r *store.Rollout) error {
		if r.State != store.RolloutActive {
			return &StateError{Reason: "only an active rollout can be paused (it is " + string(r.State) + ")"}
		}
		r.State, r.PauseReason = store.RolloutPaused, "paused by a person"
		return nil
	})
	if err != nil {
		return r, err
	}
	s.stopQueued(ctx, r)
	s.publishRollout(ctx, r)
	return r, nil
}

// Abort ends the rollout for good; devices already updating carry on.
func (s *Service) Abort(ctx context.Context, tenantID, id string) (store.Rollout, error) {
	r, err := s.changeState(ctx, tenantID, id, func(r *store.Rollout) error {
		if r.State != store.RolloutActive && r.State != store.RolloutPaused {
			return &StateError{Reason: "the rollout is already " + string(r.State)}
		}
		r.State = store.RolloutAborted
		return nil
	})
	if err != nil {
		return r, err
	}
	s.stopQueued(ctx, r)
	s.publishRollout(ctx, r)
	return r, nil
}

// Resume continues a paused rollout; threshold, when set, replaces the failure threshold
// (raise it to continue past the failures that paused the rollout). Pending devices whose
// command was stopped get a fresh one. A rollout awaiting approval goes on to its next stage.
func (s *Service) Resume(ctx context.Context, tenantID, id string, threshold *float64) (store.Rollout, error) {
	if threshold != nil && (*threshold < 0 || *threshold > 1) {
		return store.Rollout{}, store.Invalid("failure_threshold", "must be from 0 to 1")
	}
	approved := false
	r, err := s.changeState(ctx, tenantID, id, func(r *store.Rollout) error {
		if r.State != store.RolloutPaused {
			return &StateError{Reason: "only a paused rollout can be resumed (it is " + string(r.State) + ")"}
		}
		approved = r.PauseReason == ReasonAwaitingApproval && r.CurrentStage < len(r.Stages)-1
		if approved {
			r.CurrentStage++
			r.StageDoneAt = time.Time{}
		}
		r.State, r.PauseReason = store.RolloutActive, ""
		if threshold != nil {
			r.FailureThreshold = *threshold
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	if approved {
		if err := s.startStage(ctx, r); err != nil {
			s.o.Logger.Warn("start approved stage", "rollout_id", r.ID, "error", err)
		}
	}
	if err := s.reconcile(ctx, r); err != nil {
		s.o.Logger.Warn("resume rollout", "rollout_id", r.ID, "error", err)
	}
	s.publishRollout(ctx, r)
	s.evaluate(ctx, tenantID, id)
	return s.o.Store.Rollout(ctx, tenantID, id)
}

// reconcile looks at the commands of an active rollout's pending devices: a refused command
// skips or fails the device, and an expired one (the device stayed offline past its TTL, or the
// rollout was paused) is sent again with a fresh URL and signature.
func (s *Service) reconcile(ctx context.Context, r store.Rollout) error {
	var rel *store.Release
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := s.o.Store.ListRolloutDevices(ctx, r.TenantID, r.ID, opts)
		if err != nil {
			return err
		}
		for _, rd := range page.Items {
			if rd.State != store.UpdatePending {
				continue
			}
			resend := rd.CommandID == ""
			if !resend {
				cmd, err := s.o.Store.Command(ctx, r.TenantID, rd.CommandID)
				switch {
				case errors.Is(err, store.ErrNotFound):
					resend = true
				case err != nil:
					return err
				case cmd.State == store.CommandExpired:
					resend = true
				case cmd.State == store.CommandFailed:
					if err := s.applyCommand(ctx, cmd); err != nil {
						return err
					}
				}
			}
			if !resend {
				continue
			}
			if rel == nil {
				rl, err := s.o.Store.Release(ctx, r.TenantID, r.ReleaseID)
				if err != nil {
					return err
				}
				rel = &rl
			}
			if err := s.sendUpdate(ctx, r, *rel, rd.DeviceID); err != nil {
				s.o.Logger.Warn("re-send update", "rollout_id", r.ID, "device_id", rd.DeviceID, "error", err)
			}
		}
		if page.NextCursor == "" {
			return nil
		}
		opts.Cursor = page.NextCursor
	}
}

// Run looks at every active rollout each Interval until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
				s.o.Logger.Warn("rollout engine", "error", err)
			}
		}
	}
}

// Tick reconciles and evaluates every active rollout of every tenant once.
func (s *Service) Tick(ctx context.Context) error {
	topts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		tenants, err := s.o.Store.ListTenants(ctx, topts)
		if err != nil {
			return err
		}
		for _, tn := range tenants.Items {
			ropts := store.ListOptions{Limit: store.MaxPageSize}
			for {
				page, err := s.o.Store.ListRollouts(ctx, tn.ID, store.RolloutFilter{State: store.RolloutActive}, ropts)
				if err != nil {
					return err
				}
				for _, r := range page.Items {
					if err := s.reconcile(ctx, r); err != nil {
						s.o.Logger.Warn("reconcile rollout", "rollout_id", r.ID, "error", err)
					}
					s.evaluate(ctx, tn.ID, r.ID)
				}
				if page.NextCursor == "" {
					break
				}
				ropts.Cursor = page.NextCursor
			}
		}
		if tenants.NextCursor == "" {
			return nil
		}
		topts.Cursor = tenants.NextCursor
	}
}

func (s *Service) publishRollout(ctx context.Context, r store.Rollout) {
	hub := s.eventHub()
	if hub == nil {
		return
	}
	totals, _ := s.Totals(ctx, r.TenantID, r.ID)
	hub.Publish(fleet.Event{Type: EventRollout, TenantID: r.TenantID, At: r.UpdatedAt, Data: RolloutEvent{
		ID: r.ID, ProjectID: r.ProjectID, ReleaseID: r.ReleaseID, State: string(r.State),
		CurrentStage: r.CurrentStage, PauseReason: r.PauseReason, Totals: totals,
	}})
}

func (s *Service) publishDevice(rd store.RolloutDevice, version string) {
	hub := s.eventHub()
	if hub == nil {
		return
	}
	hub.Publish(fleet.Event{Type: EventDeviceUpdate, TenantID: rd.TenantID, DeviceID: rd.DeviceID, At: rd.UpdatedAt,
		Data: DeviceUpdateEvent{RolloutID: rd.RolloutID, Version: version, State: string(rd.State), Progress: rd.Progress, Reason: rd.Reason}})
}
