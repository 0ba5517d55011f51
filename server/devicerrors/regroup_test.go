package devicerrors

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/server/symbolize"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/logbuf"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// fakeSymbols is a release's ELF file: function names by PC, for one project and version.
type fakeSymbols struct {
	projectID, version string
	funcs              map[string]string
}

func (f fakeSymbols) SymbolicateFrames(_ context.Context, _, projectID, version string, frames []protocol.Frame) ([]symbolize.Frame, bool, error) {
	if projectID != f.projectID || version != f.version {
		return nil, false, nil
	}
	out := make([]symbolize.Frame, len(frames))
	for i, fr := range frames {
		pc, _ := strconv.ParseUint(strings.TrimPrefix(fr.PC, "0x"), 16, 64)
		fn := f.funcs[fr.PC]
		out[i] = symbolize.Frame{PC: pc, Func: fn, Resolved: fn != ""}
	}
	return out, true, nil
}

// crashAt records a crash with a backtrace at pcs, keyed as ErrorReport keys it: by function
// with sym, by address without.
func (w *world) crashAt(t *testing.T, projectID, firmware string, sym *fakeSymbols, pcs ...string) store.ErrorGroup {
	t.Helper()
	var frames []protocol.Frame
	for _, pc := range pcs {
		frames = append(frames, protocol.Frame{PC: pc, SP: "0x3ffb1230"})
	}
	stack, _ := json.Marshal(frames)
	fp := StackFingerprint("panic", firmware, frames, nil, false)
	if sym != nil {
		s, _, _ := sym.SymbolicateFrames(t.Context(), w.tenant, projectID, firmware, frames)
		fp = StackFingerprint("panic", firmware, frames, s, true)
	}
	g, err := w.st.RecordError(t.Context(), &store.ErrorReport{
		TenantID: w.tenant, DeviceID: w.inProject, ProjectID: projectID, Fingerprint: fp, Type: "panic",
		Message: "LoadProhibited", Stack: string(stack), FirmwareVersion: firmware, ReceivedAt: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (w *world) fingerprint(t *testing.T, groupID string) string {
	t.Helper()
	g, err := w.st.ErrorGroup(t.Context(), w.tenant, groupID)
	if err != nil {
		t.Fatal(err)
	}
	return g.Fingerprint
}

// TestRegroup: the release's groups keyed by address take the function key of their newest
// report's backtrace; groups of other versions and projects, groups without a backtrace,
// groups keyed by function already and backtraces no function resolves stay; when the
// function key is taken (by a group re-keyed a moment before, or by a group of another
// project) the group keeps its key, and a log line says so. Re-keying again changes nothing.
func TestRegroup(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	ctx := t.Context()
	other := store.Project{TenantID: w.tenant, Name: "heater", VersionMismatch: store.MismatchWarn}
	if err := w.st.CreateProject(ctx, &other); err != nil {
		t.Fatal(err)
	}
	const fw = "v-1.2.0"
	sym := fakeSymbols{projectID: w.project, version: fw, funcs: map[string]string{
		"0x400d0010": "read_sensor", "0x400d0014": "read_sensor", "0x400d0020": "app_main",
		"0x400d0030": "parse_frame", "0x400d0040": "uart_task", "0x400d0050": "esp_restart_handler",
	}}
	otherSym := sym
	otherSym.projectID = other.ID

	crash := w.crashAt(t, w.project, fw, nil, "0x400d0010", "0x400d0020")
	sameFuncs := w.crashAt(t, w.project, fw, nil, "0x400d0014", "0x400d0020") // other lines of the same functions
	takenElsewhere := w.crashAt(t, w.project, fw, nil, "0x400d0030", "0x400d0040")
	w.crashAt(t, other.ID, fw, &otherSym, "0x400d0030", "0x400d0040") // the same key in another project
	unresolved := w.crashAt(t, w.project, fw, nil, "0x400d9990", "0x400d9994")
	olderFirmware := w.crashAt(t, w.project, "v-1.1.0", nil, "0x400d0010", "0x400d0020")
	otherProject := w.crashAt(t, other.ID, fw, nil, "0x400d0050", "0x400d0020")
	byFunction := w.crashAt(t, w.project, fw, &sym, "0x400d0050", "0x400d0020")
	plain, err := w.st.RecordError(ctx, &store.ErrorReport{
		TenantID: w.tenant, DeviceID: w.inProject, ProjectID: w.project, Fingerprint: Fingerprint("error", "sensor timeout", fw),
		Type: "error", Message: "sensor timeout", FirmwareVersion: fw,
	})
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]string{}
	for _, g := range []store.ErrorGroup{sameFuncs, takenElsewhere, unresolved, olderFirmware, otherProject, byFunction, plain} {
		kept[g.ID] = g.Fingerprint
	}

	logs := &logbuf.Buffer{}
	rg := NewRegrouper(RegroupOptions{Store: w.st, Symbols: sym, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	rel := store.Release{ID: "rel-1", TenantID: w.tenant, ProjectID: w.project, Version: fw}
	res, err := rg.Regroup(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	if res != (RegroupResult{Regrouped: 1, Left: 2}) {
		t.Errorf("Regroup = %+v, want 1 re-keyed and 2 left", res)
	}
	s, _, _ := sym.SymbolicateFrames(ctx, w.tenant, w.project, fw, []protocol.Frame{{PC: "0x400d0010"}, {PC: "0x400d0020"}})
	wantFn := StackFingerprint("panic", fw, nil, s, true)
	if got := w.fingerprint(t, crash.ID); got != wantFn {
		t.Errorf("the crash group's fingerprint is %s, want the function key %s", got, wantFn)
	}
	for id, fp := range kept {
		if got := w.fingerprint(t, id); got != fp {
			t.Errorf("group %s was re-keyed to %s, want it kept at %s", id, got, fp)
		}
	}
	for _, want := range []string{`"group_id":"` + sameFuncs.ID + `","other_group_id":"` + crash.ID + `"`, `"group_id":"` + takenElsewhere.ID + `"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log line for a group left keyed by address (%s):\n%s", want, logs.String())
		}
	}

	// A report of the crash keyed by function now counts in the re-keyed group.
	g := w.crashAt(t, w.project, fw, &sym, "0x400d0010", "0x400d0020")
	if g.ID != crash.ID || g.Count != 2 {
		t.Errorf("the crash keyed by function went to group %s with count %d, want %s with count 2", g.ID, g.Count, crash.ID)
	}
	if res, err := rg.Regroup(ctx, rel); err != nil || res.Regrouped != 0 {
		t.Errorf("Regroup again = %+v, %v; want nothing re-keyed", res, err)
	}
}

// TestRegroupQueue: Queue never blocks the upload; a full queue drops the release with a log
// line; Run re-keys what was queued.
func TestRegroupQueue(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	const fw = "v-1.2.0"
	sym := fakeSymbols{projectID: w.project, version: fw, funcs: map[string]string{"0x400d0010": "read_sensor"}}
	crash := w.crashAt(t, w.project, fw, nil, "0x400d0010")
	logs := &logbuf.Buffer{}
	rg := NewRegrouper(RegroupOptions{Store: w.st, Symbols: sym, Queue: 1, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	rel := store.Release{ID: "rel-1", TenantID: w.tenant, ProjectID: w.project, Version: fw}
	rg.Queue(rel)
	rg.Queue(rel)
	if !strings.Contains(logs.String(), "queue full") {
		t.Errorf("a full queue logged nothing:\n%s", logs.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rg.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	poll.Wait(t, "the queued release's group re-keyed", func() bool { return w.fingerprint(t, crash.ID) != crash.Fingerprint })
	poll.Wait(t, "the re-keying logged", func() bool { return strings.Contains(logs.String(), `"regrouped":1`) })
}

// lookupCounter counts the error group lookups by fingerprint.
type lookupCounter struct {
	store.Store
	mu      sync.Mutex
	lookups int
}

func (c *lookupCounter) ListErrorGroups(ctx context.Context, tenantID string, f store.ErrorGroupFilter, opts store.ListOptions) (store.Page[store.ErrorGroup], error) {
	if f.Fingerprint != "" {
		c.mu.Lock()
		c.lookups++
		c.mu.Unlock()
	}
	return c.Store.ListErrorGroups(ctx, tenantID, f, opts)
}

func (c *lookupCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lookups
}

// A crash filed by address before the release's ELF file arrived, and never re-keyed by the
// Regrouper (its queue was on a replica that restarted), takes the function key when the
// crash comes again, so it stays one group; a crash of other lines of the same functions
// counts in it too. A function key already seen costs no lookup.
func TestErrorReportAdoptsAddressGroup(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	ctx := t.Context()
	const fw = "v-1.2.0"
	sym := fakeSymbols{projectID: w.project, version: fw, funcs: map[string]string{
		"0x400d0010": "read_sensor", "0x400d0014": "read_sensor", "0x400d0020": "app_main",
	}}
	crash := func(pcs ...string) protocol.ErrorReport {
		r := report(fw)
		r.Backtrace = nil
		for _, pc := range pcs {
			r.Backtrace = append(r.Backtrace, protocol.Frame{PC: pc})
		}
		return r
	}
	dev := fleet.DeviceRef{TenantID: w.tenant, DeviceID: w.inProject}
	groups := func() []store.ErrorGroup {
		t.Helper()
		page, err := w.st.ListErrorGroups(ctx, w.tenant, store.ErrorGroupFilter{}, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return page.Items
	}

	// Before the ELF file: two crashes, each keyed by its addresses.
	before := runService(t, Options{Store: w.st, Keyring: w.kr})
	for _, r := range []protocol.ErrorReport{crash("0x400d0010", "0x400d0020"), crash("0x400d0014", "0x400d0020")} {
		if err := before.ErrorReport(ctx, dev, r); err != nil {
			t.Fatal(err)
		}
	}
	byAddress := groups()
	if len(byAddress) != 2 {
		t.Fatalf("before the ELF file: %d groups, want 2", len(byAddress))
	}
	first := byAddress[0]
	if first.Fingerprint != StackFingerprint("panic", fw, crash("0x400d0010", "0x400d0020").Backtrace, nil, false) {
		first = byAddress[1]
	}

	// With the ELF file, on a service that never saw the upload.
	counted := &lookupCounter{Store: w.st}
	after := runService(t, Options{Store: counted, Keyring: w.kr, Symbols: sym})
	for _, r := range []protocol.ErrorReport{crash("0x400d0010", "0x400d0020"), crash("0x400d0014", "0x400d0020")} {
		if err := after.ErrorReport(ctx, dev, r); err != nil {
			t.Fatal(err)
		}
	}
	s, _, _ := sym.SymbolicateFrames(ctx, w.tenant, w.project, fw, crash("0x400d0010", "0x400d0020").Backtrace)
	fn := StackFingerprint("panic", fw, nil, s, true)
	got := groups()
	if len(got) != 2 {
		t.Fatalf("after the ELF file: %d groups, want the same 2 (no group split off)", len(got))
	}
	for _, g := range got {
		switch g.ID {
		case first.ID:
			if g.Fingerprint != fn || g.Count != 3 {
				t.Errorf("the first crash's group: fingerprint %s, count %d; want the function key %s and 3 reports (both crashes since)", g.Fingerprint, g.Count, fn)
			}
		default:
			if g.Count != 1 {
				t.Errorf("the other lines' old group counts %d, want its 1 report from before the ELF file", g.Count)
			}
		}
	}
	n := counted.count()
	if err := after.ErrorReport(ctx, dev, crash("0x400d0014", "0x400d0020")); err != nil {
		t.Fatal(err)
	}
	if got := counted.count(); got != n {
		t.Errorf("a crash whose function key has its group looked groups up %d more times, want none", got-n)
	}
}
