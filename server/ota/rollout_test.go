package ota

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/blob"
	"github.com/espadmin/espadmin/store/sqlstore"
	"github.com/espadmin/espadmin/tests/testkit/testclock"
)

const (
	oldVersion = "v-1.0.0"
	newVersion = "v-2.0.0"
)

// recordingCommander stores each update command as the fleet would (queued, with the
// rollout's ID) and remembers the last one per device.
type recordingCommander struct {
	st   store.Store
	mu   sync.Mutex
	last map[string]store.Command
	sent []string // device IDs in send order
}

func (c *recordingCommander) SendSystem(ctx context.Context, tenantID string, sc fleet.SystemCommand) (store.Command, error) {
	id := store.NewID()
	pc := sc.Build(id, time.Now().Add(sc.TTL).UnixMilli())
	if pc.Name != protocol.CommandUpdate || pc.Update == nil || pc.Update.Version != newVersion || pc.Update.URL == "" {
		return store.Command{}, errors.New("not an update command of the release")
	}
	cmd := store.Command{ID: id, TenantID: tenantID, DeviceID: sc.DeviceID, Name: pc.Name, Payload: "{}",
		State: store.CommandQueued, RolloutID: sc.RolloutID, CreatedBy: sc.CreatedBy, ExpiresAt: time.Now().Add(sc.TTL)}
	if err := c.st.CreateCommand(ctx, &cmd); err != nil {
		return store.Command{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last[sc.DeviceID] = cmd
	c.sent = append(c.sent, sc.DeviceID)
	return cmd, nil
}

func (c *recordingCommander) command(deviceID string) store.Command {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last[deviceID]
}

func (c *recordingCommander) sends() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sent)
}

// rolloutEnv is a tenant with a project, a release of newVersion and devices running
// oldVersion (or the versions given), with the OTA service on a real SQLite store.
type rolloutEnv struct {
	t       *testing.T
	st      store.Store
	svc     *Service
	cmds    *recordingCommander
	tenant  string
	release store.Release
	devices []string
}

func newRolloutEnv(t *testing.T, versions ...string) *rolloutEnv {
	t.Helper()
	ctx := t.Context()
	st, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "ota.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	tn := store.Tenant{Slug: "t", Name: "T"}
	must(t, st.CreateTenant(ctx, &tn))
	p := store.Project{TenantID: tn.ID, Name: "p"}
	must(t, st.CreateProject(ctx, &p))
	rel := store.Release{TenantID: tn.ID, ProjectID: p.ID, Version: newVersion, BlobKey: "releases/fw.bin", Size: 1024,
		SHA256: strings.Repeat("ab", 32)}
	must(t, st.CreateRelease(ctx, &rel))
	blobs, err := blob.NewLocal(t.TempDir(), []byte("0123456789abcdef0123456789abcdef"), "http://127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	e := &rolloutEnv{t: t, st: st, tenant: tn.ID, release: rel, cmds: &recordingCommander{st: st, last: map[string]store.Command{}}}
	for _, v := range versions {
		d := store.Device{TenantID: tn.ID, Name: "d", ProjectID: p.ID, Metadata: store.DeviceMetadata{FirmwareVersion: v}}
		must(t, st.CreateDevice(ctx, &d))
		e.devices = append(e.devices, d.ID)
	}
	e.svc = New(Options{Store: st, Blobs: blobs, Commands: e.cmds, Hub: fleet.NewHub(nil)})
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func repeat(v string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func (e *rolloutEnv) create(stages []int, threshold float64) store.Rollout {
	e.t.Helper()
	r, err := e.svc.CreateRollout(e.t.Context(), e.tenant, RolloutInput{
		ReleaseID: e.release.ID, Target: store.RolloutTarget{Kind: store.TargetAll}, Stages: stages, FailureThreshold: &threshold,
	})
	must(e.t, err)
	return r
}

func (e *rolloutEnv) rollout(id string) store.Rollout {
	e.t.Helper()
	r, err := e.st.Rollout(e.t.Context(), e.tenant, id)
	must(e.t, err)
	return r
}

// members returns the rollout's devices by state.
func (e *rolloutEnv) members(id string) map[string]store.UpdateState {
	e.t.Helper()
	page, err := e.st.ListRolloutDevices(e.t.Context(), e.tenant, id, store.ListOptions{Limit: store.MaxPageSize})
	must(e.t, err)
	out := map[string]store.UpdateState{}
	for _, rd := range page.Items {
		out[rd.DeviceID] = rd.State
	}
	return out
}

// pending returns the rollout's devices still pending, sorted.
func (e *rolloutEnv) pending(id string) []string {
	var out []string
	for d, st := range e.members(id) {
		if st == store.UpdatePending {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// finish reports the final outcome of a device's update: a success runs the new version
// first, as the device's metadata would say after its reboot.
func (e *rolloutEnv) finish(deviceID string, ok bool) {
	e.t.Helper()
	ctx := e.t.Context()
	cmd := e.cmds.command(deviceID)
	if cmd.ID == "" {
		e.t.Fatalf("device %s got no update command", deviceID)
	}
	// The device acknowledged the command when it took it (unless it was stopped first).
	_, err := e.st.TransitionCommand(ctx, e.tenant, cmd.ID, store.CommandTransition{
		From: []store.CommandState{store.CommandQueued, store.CommandDelivered}, To: store.CommandSucceeded})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		e.t.Fatal(err)
	}
	p := protocol.OTAProgress{ID: cmd.ID, Version: newVersion, State: protocol.OTAFailed, Reason: protocol.ReasonHashMismatch}
	if ok {
		must(e.t, e.st.SetDeviceMetadata(ctx, e.tenant, deviceID, store.DeviceMetadata{FirmwareVersion: newVersion}))
		p.State, p.Progress, p.Reason = protocol.OTASucceeded, 100, ""
	}
	must(e.t, e.svc.OTAProgress(ctx, fleet.DeviceRef{TenantID: e.tenant, DeviceID: deviceID}, p))
}

func (e *rolloutEnv) wantState(id string, want store.RolloutState, stage int) store.Rollout {
	e.t.Helper()
	r := e.rollout(id)
	if r.State != want || r.CurrentStage != stage {
		e.t.Fatalf("rollout is %s at stage %d (%s), want %s at stage %d", r.State, r.CurrentStage, r.PauseReason, want, stage)
	}
	return r
}

// commandStates counts the rollout's commands by state.
func (e *rolloutEnv) commandStates(id string) map[store.CommandState]int {
	e.t.Helper()
	page, err := e.st.ListCommands(e.t.Context(), e.tenant, store.CommandFilter{RolloutID: id}, store.ListOptions{Limit: store.MaxPageSize})
	must(e.t, err)
	out := map[store.CommandState]int{}
	for _, c := range page.Items {
		out[c.State]++
	}
	return out
}

// TestRolloutStages: each stage takes a larger prefix of one fixed order of the devices,
// starts when every device of the previous one finished, and the rollout completes after the
// last.
func TestRolloutStages(t *testing.T) {
	t.Parallel()
	e := newRolloutEnv(t, repeat(oldVersion, 10)...)
	r := e.create([]int{20, 50, 100}, 0.5)
	var previous []string
	for stage, size := range []int{2, 5, 10} {
		e.wantState(r.ID, store.RolloutActive, stage)
		members := e.members(r.ID)
		if len(members) != size {
			t.Fatalf("stage %d has %d devices, want %d", stage, len(members), size)
		}
		for _, d := range previous {
			if members[d] != store.UpdateSucceeded {
				t.Errorf("stage %d: device %s of the previous stage is %s, want succeeded", stage, d, members[d])
			}
		}
		pending := e.pending(r.ID)
		if len(pending) != size-len(previous) {
			t.Fatalf("stage %d: %d pending devices, want %d", stage, len(pending), size-len(previous))
		}
		if n := len(e.cmds.sends()); n != size {
			t.Errorf("stage %d: %d update commands sent in all, want %d", stage, n, size)
		}
		for i, d := range pending {
			e.finish(d, true)
			if i < len(pending)-1 {
				e.wantState(r.ID, store.RolloutActive, stage) // waits for the whole stage
			}
		}
		previous = append(previous, pending...)
	}
	e.wantState(r.ID, store.RolloutCompleted, 2)
}

// TestRolloutPausesOnFailureRate: the rollout pauses once the failed share of a stage passes
// the threshold (not at it), stops the commands not yet delivered, and a resume with a higher
// threshold sends those devices fresh ones and carries on.
func TestRolloutPausesOnFailureRate(t *testing.T) {
	t.Parallel()
	e := newRolloutEnv(t, repeat(oldVersion, 10)...)
	r := e.create([]int{50, 100}, 0.2)
	pending := e.pending(r.ID)
	if len(pending) != 5 {
		t.Fatalf("first stage has %d devices, want 5", len(pending))
	}
	e.finish(pending[0], false) // 1 of 5 = 20 %: at the threshold, not past it
	e.wantState(r.ID, store.RolloutActive, 0)
	e.finish(pending[1], false) // 2 of 5 = 40 %
	paused := e.wantState(r.ID, store.RolloutPaused, 0)
	if !strings.Contains(paused.PauseReason, "2 of 5") {
		t.Errorf("PauseReason = %q, want the failed count", paused.PauseReason)
	}
	if got := e.commandStates(r.ID); got[store.CommandQueued] != 0 || got[store.CommandExpired] != 3 {
		t.Errorf("commands after the pause = %v, want the 3 undelivered ones expired", got)
	}
	// Reports of devices that were already updating still count while paused.
	e.finish(pending[2], true)
	e.wantState(r.ID, store.RolloutPaused, 0)

	_, err := e.svc.Pause(t.Context(), e.tenant, r.ID)
	var se *StateError
	if !errors.As(err, &se) {
		t.Errorf("Pause of a paused rollout = %v, want a StateError", err)
	}
	threshold := 0.5
	if _, err := e.svc.Resume(t.Context(), e.tenant, r.ID, &threshold); err != nil {
		t.Fatal(err)
	}
	e.wantState(r.ID, store.RolloutActive, 0)
	if n := len(e.cmds.sends()); n != 5+2 {
		t.Errorf("%d update commands sent after the resume, want 7 (the two stopped devices again)", n)
	}
	for _, d := range pending[3:] {
		e.finish(d, true)
	}
	e.wantState(r.ID, store.RolloutActive, 1)
	for _, d := range e.pending(r.ID) {
		e.finish(d, true)
	}
	e.wantState(r.ID, store.RolloutCompleted, 1)
}

// TestRolloutAbort: an abort ends the rollout for good and stops its undelivered commands;
// later reports change the device states but never the rollout's.
func TestRolloutAbort(t *testing.T) {
	t.Parallel()
	e := newRolloutEnv(t, repeat(oldVersion, 4)...)
	r := e.create([]int{50, 100}, 0.2)
	pending := e.pending(r.ID)
	if _, err := e.svc.Abort(t.Context(), e.tenant, r.ID); err != nil {
		t.Fatal(err)
	}
	e.wantState(r.ID, store.RolloutAborted, 0)
	if got := e.commandStates(r.ID); got[store.CommandQueued] != 0 || got[store.CommandExpired] != len(pending) {
		t.Errorf("commands after the abort = %v, want all %d expired", got, len(pending))
	}
	for _, d := range pending {
		e.finish(d, true)
	}
	e.wantState(r.ID, store.RolloutAborted, 0)
	if len(e.members(r.ID)) != len(pending) {
		t.Errorf("an aborted rollout took in more devices")
	}
	must(t, e.svc.Tick(t.Context()))
	e.wantState(r.ID, store.RolloutAborted, 0)
	var se *StateError
	if _, err := e.svc.Abort(t.Context(), e.tenant, r.ID); !errors.As(err, &se) {
		t.Errorf("second Abort = %v, want a StateError", err)
	}
	if _, err := e.svc.Resume(t.Context(), e.tenant, r.ID, nil); !errors.As(err, &se) {
		t.Errorf("Resume of an aborted rollout = %v, want a StateError", err)
	}
}

// TestRolloutSkipsAndCompletes: devices that already run the version are skipped without a
// command (and without download progress), a stage of skipped devices finishes at once, and
// failures past the threshold in the last stage pause the rollout rather than complete it:
// a rollout in which every device failed must never read as completed.
func TestRolloutSkipsAndCompletes(t *testing.T) {
	t.Parallel()
	e := newRolloutEnv(t, newVersion, newVersion)
	r := e.create([]int{50, 100}, 0)
	e.wantState(r.ID, store.RolloutCompleted, 1)
	if n := len(e.cmds.sends()); n != 0 {
		t.Errorf("%d commands sent to devices already on the version", n)
	}
	for _, d := range e.devices {
		if rd, err := e.st.RolloutDevice(t.Context(), e.tenant, r.ID, d); err != nil || rd.Progress != 0 {
			t.Errorf("skipped device progress = %d (%v), want 0: it downloaded nothing", rd.Progress, err)
		}
	}

	e = newRolloutEnv(t, oldVersion, oldVersion)
	r = e.create([]int{100}, 0.2)
	pending := e.pending(r.ID)
	e.finish(pending[0], true)
	e.finish(pending[1], false) // 1 of 2 failed in the last stage
	paused := e.wantState(r.ID, store.RolloutPaused, 0)
	if want := "failure rate 50% (1 of 2 devices)"; !strings.Contains(paused.PauseReason, want) {
		t.Errorf("PauseReason = %q, want it to contain %q", paused.PauseReason, want)
	}
	// A person who accepts the failures resumes with a higher threshold; then it completes.
	threshold := 0.5
	if _, err := e.svc.Resume(t.Context(), e.tenant, r.ID, &threshold); err != nil {
		t.Fatal(err)
	}
	e.wantState(r.ID, store.RolloutCompleted, 0)

	// Every device failed: paused with the reason docs/ota.md shows.
	e = newRolloutEnv(t, oldVersion)
	r = e.create(nil, 0.1)
	e.finish(e.pending(r.ID)[0], false)
	paused = e.wantState(r.ID, store.RolloutPaused, 0)
	if want := "failure rate 100% (1 of 1 devices)"; !strings.Contains(paused.PauseReason, want) {
		t.Errorf("PauseReason = %q, want it to contain %q", paused.PauseReason, want)
	}
}

// TestFailedDeviceKeepsDownloadProgress: a device that downloaded the whole image and then
// failed (a hash mismatch, a rollback) shows what it downloaded, not 0 %.
func TestFailedDeviceKeepsDownloadProgress(t *testing.T) {
	t.Parallel()
	e := newRolloutEnv(t, oldVersion, oldVersion)
	r := e.create(nil, 1)
	ctx := t.Context()
	pending := e.pending(r.ID)
	for i, d := range pending {
		cmd := e.cmds.command(d)
		ref := fleet.DeviceRef{TenantID: e.tenant, DeviceID: d}
		must(t, e.svc.OTAProgress(ctx, ref, protocol.OTAProgress{ID: cmd.ID, Version: newVersion, State: protocol.OTADownloading, Progress: 100}))
		final := protocol.OTAProgress{ID: cmd.ID, Version: newVersion, State: protocol.OTAFailed, Reason: protocol.ReasonHashMismatch}
		if i == 1 {
			// The device rebooted into the new image, which failed; it reports success of
			// the old one (its metadata still says the old version).
			final = protocol.OTAProgress{ID: cmd.ID, Version: newVersion, State: protocol.OTASucceeded}
		}
		must(t, e.svc.OTAProgress(ctx, ref, final))
		rd, err := e.st.RolloutDevice(ctx, e.tenant, r.ID, d)
		must(t, err)
		if rd.State != store.UpdateFailed || rd.Progress != 100 {
			t.Errorf("device %d: %s at %d%%, want failed at 100%%", i, rd.State, rd.Progress)
		}
	}
}

// TestRolloutStageSoakAndApproval: a finished stage waits its soak time before the next one
// starts; with approval required it then pauses as "awaiting approval" until resumed, and
// failures during the soak still pause the rollout.
func TestRolloutStageSoakAndApproval(t *testing.T) {
	t.Parallel()
	e := newRolloutEnv(t, repeat(oldVersion, 4)...)
	clock := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	e.svc.o.Now = func() time.Time { return clock }
	r, err := e.svc.CreateRollout(t.Context(), e.tenant, RolloutInput{
		ReleaseID: e.release.ID, Target: store.RolloutTarget{Kind: store.TargetAll}, Stages: []int{50, 100},
		StageSoak: 10 * time.Minute, RequireApproval: true,
	})
	must(t, err)
	for _, d := range e.pending(r.ID) {
		e.finish(d, true)
	}
	soaking := e.wantState(r.ID, store.RolloutActive, 0)
	if !soaking.StageDoneAt.Equal(clock) {
		t.Errorf("StageDoneAt = %v, want %v", soaking.StageDoneAt, clock)
	}
	clock = clock.Add(9 * time.Minute)
	must(t, e.svc.Tick(t.Context()))
	e.wantState(r.ID, store.RolloutActive, 0) // still soaking
	if n := len(e.cmds.sends()); n != 2 {
		t.Errorf("%d commands sent during the soak, want the first stage's 2", n)
	}
	clock = clock.Add(2 * time.Minute)
	must(t, e.svc.Tick(t.Context()))
	awaiting := e.wantState(r.ID, store.RolloutPaused, 0)
	if awaiting.PauseReason != ReasonAwaitingApproval {
		t.Errorf("PauseReason = %q, want %q", awaiting.PauseReason, ReasonAwaitingApproval)
	}
	if _, err := e.svc.Resume(t.Context(), e.tenant, r.ID, nil); err != nil {
		t.Fatal(err)
	}
	e.wantState(r.ID, store.RolloutActive, 1)
	if n := len(e.cmds.sends()); n != 4 {
		t.Errorf("%d commands sent after the approval, want 4", n)
	}
	for _, d := range e.pending(r.ID) {
		e.finish(d, true)
	}
	e.wantState(r.ID, store.RolloutCompleted, 1) // no approval after the last stage

	// A failure reported during the soak pauses the rollout for its failure rate.
	e = newRolloutEnv(t, repeat(oldVersion, 4)...)
	e.svc.o.Now = func() time.Time { return clock }
	r, err = e.svc.CreateRollout(t.Context(), e.tenant, RolloutInput{
		ReleaseID: e.release.ID, Target: store.RolloutTarget{Kind: store.TargetAll}, Stages: []int{50, 100},
		StageSoak: time.Hour, FailureThreshold: new(float64),
	})
	must(t, err)
	pending := e.pending(r.ID)
	e.finish(pending[0], true)
	e.finish(pending[1], true)
	e.wantState(r.ID, store.RolloutActive, 0)
	// The second device's new image crashes later and it rolls back: a late failure report.
	rd, err := e.st.RolloutDevice(t.Context(), e.tenant, r.ID, pending[1])
	must(t, err)
	rd.State, rd.Reason = store.UpdateFailed, protocol.ReasonBootFailedRolledBack
	must(t, e.st.PutRolloutDevice(t.Context(), &rd))
	must(t, e.svc.Tick(t.Context()))
	e.wantState(r.ID, store.RolloutPaused, 0)

	// Bad input: a soak past seven days or below zero is a field error.
	for _, soak := range []time.Duration{-time.Second, MaxStageSoak + time.Second} {
		_, err := e.svc.CreateRollout(t.Context(), e.tenant, RolloutInput{
			ReleaseID: e.release.ID, Target: store.RolloutTarget{Kind: store.TargetAll}, StageSoak: soak,
		})
		var inv *store.InvalidError
		if !errors.As(err, &inv) || inv.Fields["rollout.stage_soak_seconds"] == "" {
			t.Errorf("CreateRollout with soak %v = %v, want a field error on rollout.stage_soak_seconds", soak, err)
		}
	}
}

// TestRolloutTickAppliesRefusals: the engine's tick moves devices on from their commands'
// stored outcome, as when the acknowledgement reached another replica: a device that already
// runs the version is skipped, another refusal fails it with the reason, an expired command
// is sent again.
func TestRolloutTickAppliesRefusals(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newRolloutEnv(t, repeat(oldVersion, 3)...)
	r := e.create([]int{100}, 1)
	p := e.pending(r.ID)
	fail := func(d, why string, to store.CommandState) {
		_, err := e.st.TransitionCommand(ctx, e.tenant, e.cmds.command(d).ID, store.CommandTransition{
			From: []store.CommandState{store.CommandQueued}, To: to, Error: why})
		must(t, err)
	}
	fail(p[0], "refused: "+protocol.ReasonAlreadyRunning, store.CommandFailed)
	fail(p[1], protocol.ReasonNoSpace, store.CommandFailed)
	fail(p[2], "", store.CommandExpired)
	before := e.cmds.command(p[2]).ID
	must(t, e.svc.Tick(ctx))
	m := e.members(r.ID)
	if m[p[0]] != store.UpdateSkipped || m[p[1]] != store.UpdateFailed || m[p[2]] != store.UpdatePending {
		t.Errorf("device states after Tick = %v, want skipped, failed, pending", []store.UpdateState{m[p[0]], m[p[1]], m[p[2]]})
	}
	rd, err := e.st.RolloutDevice(ctx, e.tenant, r.ID, p[1])
	must(t, err)
	if rd.Reason != protocol.ReasonNoSpace {
		t.Errorf("failed device's reason = %q, want %q", rd.Reason, protocol.ReasonNoSpace)
	}
	if after := e.cmds.command(p[2]); after.ID == before {
		t.Errorf("the device whose command expired got no new one")
	}
	rd, err = e.st.RolloutDevice(ctx, e.tenant, r.ID, p[2])
	must(t, err)
	if rd.CommandID != e.cmds.command(p[2]).ID {
		t.Errorf("the rollout records command %s, want the new one %s", rd.CommandID, e.cmds.command(p[2]).ID)
	}
	e.finish(p[2], true)
	e.wantState(r.ID, store.RolloutCompleted, 0)
}

// tickCounter is a store whose only use by Run is the tenant list Tick starts with.
type tickCounter struct {
	Store
	mu    sync.Mutex
	ticks []time.Time
}

func (c *tickCounter) ListTenants(context.Context, store.ListOptions) (store.Page[store.Tenant], error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ticks = append(c.ticks, time.Now())
	return store.Page[store.Tenant]{}, nil
}

// TestRunTicksEveryInterval runs the engine's loop on a fake clock.
func TestRunTicksEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 7 * time.Second
		st := &tickCounter{}
		svc := New(Options{Store: st, Interval: interval})
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		testclock.Advance(3*interval + interval/2)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		if len(st.ticks) != 3 {
			t.Fatalf("Run ticked %d times in 3.5 intervals, want 3", len(st.ticks))
		}
		for i, at := range st.ticks {
			if want := start.Add(time.Duration(i+1) * interval); !at.Equal(want) {
				t.Errorf("tick %d at +%s, want +%s", i, at.Sub(start), want.Sub(start))
			}
		}
	})
}
