package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
)

func fullErrorReport(f *fixture, tenantID, deviceID, projectID, fingerprint string, minute int) store.ErrorReport {
	return store.ErrorReport{
		ID:              f.id(),
		TenantID:        tenantID,
		DeviceID:        deviceID,
		ProjectID:       projectID,
		Fingerprint:     fingerprint,
		Message:         "Guru Meditation Error: Core 0 panic'ed (LoadProhibited)",
		Type:            "panic",
		Code:            "LoadProhibited",
		Severity:        "error",
		Stack:           `["0x400d1234:0x3ffb1f00","0x400d5678:0x3ffb1f20"]`,
		ResetReason:     "ESP_RST_PANIC",
		FirmwareVersion: "v-1.4.0",
		UptimeSeconds:   3600,
		FreeHeap:        120_000,
		CoreDump:        "ELF core dump, base64: f0VMRgEBAQ==",
		ReceivedAt:      at(minute),
	}
}

// record calls RecordError and checks what it filled in.
func (f *fixture) record(t *testing.T, r *store.ErrorReport) store.ErrorGroup {
	t.Helper()
	g, err := f.s.RecordError(t.Context(), r)
	f.must(t, err, "RecordError")
	if r.ID == "" || r.GroupID == "" || r.GroupID != g.ID {
		t.Fatalf("%s: RecordError left ID %q GroupID %q (group %q)", f.s.Backend(), r.ID, r.GroupID, g.ID)
	}
	return g
}

// groupDevices returns a group's per-device counts sorted by device ID.
func (f *fixture) groupDevices(t *testing.T, tenantID, groupID string) []store.ErrorGroupDevice {
	t.Helper()
	devs, err := f.s.ErrorGroupDevices(t.Context(), tenantID, groupID)
	f.must(t, err, "ErrorGroupDevices")
	slices.SortFunc(devs, func(a, b store.ErrorGroupDevice) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	return devs
}

func testErrorReport(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"RecordAndGroup", testRecordError},
		{"ConcurrentRecord", testRecordErrorConcurrent},
		{"OutOfOrder", func(t *testing.T, f *fixture) {
			// Reports can arrive out of time order (a device's queued reports after a later
			// one of another device): first and last seen are the earliest and the latest.
			ctx := t.Context()
			tn := f.tenant(t)
			d := f.device(t, tn.ID, "")
			for _, minute := range []int{5, 9, 2, 7} {
				r := fullErrorReport(f, tn.ID, d.ID, "", "fp-late", minute)
				f.record(t, &r)
			}
			page, err := f.s.ListErrorGroups(ctx, tn.ID, store.ErrorGroupFilter{}, store.ListOptions{})
			f.must(t, err, "ListErrorGroups")
			if len(page.Items) != 1 {
				t.Fatalf("%s: %d groups, want 1", f.s.Backend(), len(page.Items))
			}
			g := page.Items[0]
			if g.Count != 4 || !g.FirstSeen.Equal(at(2)) || !g.LastSeen.Equal(at(9)) {
				t.Errorf("%s: group count %d first %s last %s; want 4, %s, %s", f.s.Backend(), g.Count,
					fmtTime(g.FirstSeen), fmtTime(g.LastSeen), fmtTime(at(2)), fmtTime(at(9)))
			}
			devs, err := f.s.ErrorGroupDevices(ctx, tn.ID, g.ID)
			f.must(t, err, "ErrorGroupDevices")
			if len(devs) != 1 || devs[0].Count != 4 || !devs[0].FirstSeen.Equal(at(2)) || !devs[0].LastSeen.Equal(at(9)) {
				t.Errorf("%s: group devices %+v; want one with count 4, first %s, last %s", f.s.Backend(), devs, fmtTime(at(2)), fmtTime(at(9)))
			}
		}},
		{"CountByDay", testCountErrorReportsByDay},
		{"Expired", testExpiredErrorReports},
		{"ListFilters", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			p1, p2 := f.project(t, tn.ID), f.project(t, tn.ID)
			d1, d2 := f.device(t, tn.ID, p1.ID), f.device(t, tn.ID, p2.ID)
			g1 := f.record(t, ptr(fullErrorReport(f, tn.ID, d1.ID, p1.ID, "fp-1", 1)))
			f.record(t, ptr(fullErrorReport(f, tn.ID, d2.ID, p1.ID, "fp-1", 2)))
			g2 := f.record(t, ptr(fullErrorReport(f, tn.ID, d2.ID, p2.ID, "fp-2", 3)))
			g3 := f.record(t, ptr(fullErrorReport(f, tn.ID, d1.ID, p1.ID, "fp-3", 4)))
			f.must(t, f.s.SetErrorGroupResolved(ctx, tn.ID, g3.ID, true, "user-1", at(5)), "SetErrorGroupResolved")
			other := f.tenant(t)
			f.record(t, ptr(fullErrorReport(f, other.ID, f.device(t, other.ID, "").ID, "", "fp-1", 1)))

			id := func(g store.ErrorGroup) string { return g.ID }
			cases := []struct {
				name   string
				filter store.ErrorGroupFilter
				want   []store.ErrorGroup
			}{
				{"none", store.ErrorGroupFilter{}, []store.ErrorGroup{g1, g2, g3}},
				{"project", store.ErrorGroupFilter{ProjectID: p1.ID}, []store.ErrorGroup{g1, g3}},
				{"device", store.ErrorGroupFilter{DeviceID: d2.ID}, []store.ErrorGroup{g1, g2}},
				{"resolved", store.ErrorGroupFilter{Resolved: ptr(true)}, []store.ErrorGroup{g3}},
				{"unresolved", store.ErrorGroupFilter{Resolved: ptr(false)}, []store.ErrorGroup{g1, g2}},
				{"device and unresolved", store.ErrorGroupFilter{DeviceID: d1.ID, Resolved: ptr(false)}, []store.ErrorGroup{g1}},
				{"fingerprint (the other tenant's fp-1 left out)", store.ErrorGroupFilter{Fingerprint: "fp-1"}, []store.ErrorGroup{g1}},
				{"fingerprint unknown", store.ErrorGroupFilter{Fingerprint: "fp-9"}, nil},
				{"fingerprint and project", store.ErrorGroupFilter{Fingerprint: "fp-2", ProjectID: p1.ID}, nil},
			}
			for _, c := range cases {
				page, err := f.s.ListErrorGroups(ctx, tn.ID, c.filter, store.ListOptions{})
				f.must(t, err, "ListErrorGroups %s", c.name)
				want := keys(c.want, id)
				slices.Sort(want) // group IDs are assigned by the store: list order is ID order
				f.equalKeys(t, "ListErrorGroups filter "+c.name, keys(page.Items, id), want)
			}
		}},
		{"Resolve", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			d := f.device(t, tn.ID, "")
			g := f.record(t, ptr(fullErrorReport(f, tn.ID, d.ID, "", "fp-r", 1)))
			f.must(t, f.s.SetErrorGroupResolved(ctx, tn.ID, g.ID, true, "user-7", at(9)), "SetErrorGroupResolved")
			got, err := f.s.ErrorGroup(ctx, tn.ID, g.ID)
			f.must(t, err, "ErrorGroup")
			want := g
			want.Resolved, want.ResolvedAt, want.ResolvedBy = true, ptr(at(9)), "user-7"
			f.equal(t, "ErrorGroup after SetErrorGroupResolved(true)", got, want)

			// Another report counts but leaves the resolution to the error service.
			again := f.record(t, ptr(fullErrorReport(f, tn.ID, d.ID, "", "fp-r", 2)))
			if !again.Resolved || again.Count != g.Count+1 {
				t.Errorf("%s: RecordError on a resolved group: resolved=%t count=%d, want resolved=true count=%d",
					f.s.Backend(), again.Resolved, again.Count, g.Count+1)
			}
			g.Count, g.LastSeen = again.Count, again.LastSeen

			f.must(t, f.s.SetErrorGroupResolved(ctx, tn.ID, g.ID, false, "user-8", at(10)), "SetErrorGroupResolved")
			got, err = f.s.ErrorGroup(ctx, tn.ID, g.ID)
			f.must(t, err, "ErrorGroup")
			if got.Resolved {
				t.Errorf("%s: ErrorGroup after reopening is still resolved", f.s.Backend())
			}
			if got.Count != g.Count || got.Fingerprint != g.Fingerprint {
				t.Errorf("%s: reopening changed the group: %+v", f.s.Backend(), got)
			}
			f.wantErr(t, f.s.SetErrorGroupResolved(ctx, tn.ID, f.id(), true, "u", at(1)), store.ErrNotFound, "SetErrorGroupResolved of a missing group")
		}},
		{"SetFingerprint", testSetErrorGroupFingerprint},
		{"Delete", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			d := f.device(t, tn.ID, "")
			g := f.record(t, ptr(fullErrorReport(f, tn.ID, d.ID, "", "fp-d", 1)))
			keep := f.record(t, ptr(fullErrorReport(f, tn.ID, d.ID, "", "fp-keep", 1)))
			f.must(t, f.s.DeleteErrorGroup(ctx, tn.ID, g.ID), "DeleteErrorGroup")
			_, err := f.s.ErrorGroup(ctx, tn.ID, g.ID)
			f.wantErr(t, err, store.ErrNotFound, "ErrorGroup after DeleteErrorGroup")
			page, err := f.s.ListErrorReports(ctx, tn.ID, g.ID, "", store.ListOptions{})
			f.must(t, err, "ListErrorReports of a deleted group")
			if len(page.Items) != 0 {
				t.Errorf("%s: ListErrorReports of a deleted group = %d reports, want 0", f.s.Backend(), len(page.Items))
			}
			devs, err := f.s.ErrorGroupDevices(ctx, tn.ID, g.ID)
			f.must(t, err, "ErrorGroupDevices of a deleted group")
			if len(devs) != 0 {
				t.Errorf("%s: ErrorGroupDevices of a deleted group = %+v, want none", f.s.Backend(), devs)
			}
			f.wantErr(t, f.s.DeleteErrorGroup(ctx, tn.ID, g.ID), store.ErrNotFound, "DeleteErrorGroup twice")
			got, err := f.s.ErrorGroup(ctx, tn.ID, keep.ID)
			f.must(t, err, "ErrorGroup of another group")
			f.equal(t, "other ErrorGroup after DeleteErrorGroup", got, keep)
			// The fingerprint starts a new group.
			again := f.record(t, ptr(fullErrorReport(f, tn.ID, d.ID, "", "fp-d", 2)))
			if again.ID == g.ID || again.Count != 1 {
				t.Errorf("%s: RecordError after DeleteErrorGroup = %+v, want a new group with Count 1", f.s.Backend(), again)
			}
			_, err = f.s.ErrorGroup(ctx, tn.ID, f.id())
			f.wantErr(t, err, store.ErrNotFound, "ErrorGroup of a missing ID")
		}},
	})
}

func testRecordError(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	p := f.project(t, tn.ID)
	d1, d2 := f.device(t, tn.ID, p.ID), f.device(t, tn.ID, p.ID)

	r1 := fullErrorReport(f, tn.ID, d1.ID, p.ID, "fp-a", 1)
	sent := r1
	g := f.record(t, &r1)
	want := store.ErrorGroup{
		ID: g.ID, TenantID: tn.ID, ProjectID: p.ID, Fingerprint: "fp-a", Type: r1.Type, Message: r1.Message,
		FirmwareVersion: r1.FirmwareVersion, Count: 1, FirstSeen: at(1), LastSeen: at(1),
	}
	f.equal(t, "ErrorGroup returned by the first RecordError", g, want)
	got, err := f.s.ErrorGroup(ctx, tn.ID, g.ID)
	f.must(t, err, "ErrorGroup")
	f.equal(t, "ErrorGroup after the first RecordError", got, want)
	sent.ID, sent.GroupID = r1.ID, g.ID

	r2 := fullErrorReport(f, tn.ID, d2.ID, p.ID, "fp-a", 2)
	g2 := f.record(t, &r2)
	r3 := fullErrorReport(f, tn.ID, d1.ID, p.ID, "fp-a", 3)
	g3 := f.record(t, &r3)
	if g2.ID != g.ID || g3.ID != g.ID {
		t.Fatalf("%s: reports with one fingerprint landed in groups %q, %q, %q", f.s.Backend(), g.ID, g2.ID, g3.ID)
	}
	want.Count, want.LastSeen = 3, at(3)
	f.equal(t, "ErrorGroup returned by the third RecordError", g3, want)
	got, err = f.s.ErrorGroup(ctx, tn.ID, g.ID)
	f.must(t, err, "ErrorGroup")
	f.equal(t, "ErrorGroup after three reports", got, want)

	f.equal(t, "ErrorGroupDevices", f.groupDevices(t, tn.ID, g.ID), []store.ErrorGroupDevice{
		{TenantID: tn.ID, GroupID: g.ID, DeviceID: d1.ID, Count: 2, FirstSeen: at(1), LastSeen: at(3)},
		{TenantID: tn.ID, GroupID: g.ID, DeviceID: d2.ID, Count: 1, FirstSeen: at(2), LastSeen: at(2)},
	})

	// The stored report round-trips, found by group and by device.
	page, err := f.s.ListErrorReports(ctx, tn.ID, g.ID, "", store.ListOptions{})
	f.must(t, err, "ListErrorReports by group")
	ids := []string{r1.ID, r2.ID, r3.ID}
	slices.Sort(ids)
	f.equalKeys(t, "ListErrorReports by group", keys(page.Items, func(r store.ErrorReport) string { return r.ID }), ids)
	for _, r := range page.Items {
		if r.ID == sent.ID {
			f.equal(t, "ErrorReport after RecordError", r, sent)
		}
	}
	page, err = f.s.ListErrorReports(ctx, tn.ID, g.ID, d1.ID, store.ListOptions{})
	f.must(t, err, "ListErrorReports by group and device")
	ids = []string{r1.ID, r3.ID}
	slices.Sort(ids)
	f.equalKeys(t, "ListErrorReports by group and device", keys(page.Items, func(r store.ErrorReport) string { return r.ID }), ids)

	// Another fingerprint is another group; the same fingerprint in another tenant too.
	other := f.record(t, ptr(fullErrorReport(f, tn.ID, d1.ID, p.ID, "fp-b", 4)))
	if other.ID == g.ID || other.Count != 1 {
		t.Errorf("%s: a second fingerprint gave group %+v, want a new group with Count 1", f.s.Backend(), other)
	}
	page, err = f.s.ListErrorReports(ctx, tn.ID, "", d1.ID, store.ListOptions{})
	f.must(t, err, "ListErrorReports by device")
	if len(page.Items) != 3 {
		t.Errorf("%s: ListErrorReports by device only = %d reports, want 3 (two groups)", f.s.Backend(), len(page.Items))
	}
	tn2 := f.tenant(t)
	foreign := f.record(t, ptr(fullErrorReport(f, tn2.ID, f.device(t, tn2.ID, "").ID, "", "fp-a", 5)))
	if foreign.ID == g.ID || foreign.Count != 1 || foreign.TenantID != tn2.ID {
		t.Errorf("%s: the same fingerprint in another tenant gave group %+v, want a new group of that tenant", f.s.Backend(), foreign)
	}
	got, err = f.s.ErrorGroup(ctx, tn.ID, g.ID)
	f.must(t, err, "ErrorGroup")
	f.equal(t, "ErrorGroup after reports in another group and tenant", got, want)
}

// testSetErrorGroupFingerprint re-keys a group: reports with the new fingerprint count in it
// with its history, the old fingerprint starts a new group, and a fingerprint another group
// of the tenant has is a conflict that changes nothing.
func testSetErrorGroupFingerprint(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	p := f.project(t, tn.ID)
	d1, d2 := f.device(t, tn.ID, p.ID), f.device(t, tn.ID, p.ID)
	first := fullErrorReport(f, tn.ID, d1.ID, p.ID, "fp-pc", 1)
	g := f.record(t, &first)
	taken := f.record(t, ptr(fullErrorReport(f, tn.ID, d1.ID, p.ID, "fp-taken", 2)))
	f.must(t, f.s.SetErrorGroupResolved(ctx, tn.ID, g.ID, true, "user-1", at(3)), "SetErrorGroupResolved")

	f.must(t, f.s.SetErrorGroupFingerprint(ctx, tn.ID, g.ID, "fp-fn"), "SetErrorGroupFingerprint")
	got, err := f.s.ErrorGroup(ctx, tn.ID, g.ID)
	f.must(t, err, "ErrorGroup")
	want := g
	want.Fingerprint, want.Resolved, want.ResolvedAt, want.ResolvedBy = "fp-fn", true, ptr(at(3)), "user-1"
	f.equal(t, "ErrorGroup after SetErrorGroupFingerprint", got, want)

	// The new fingerprint counts in the group, on its device counts; the old one is new.
	again := f.record(t, ptr(fullErrorReport(f, tn.ID, d2.ID, p.ID, "fp-fn", 4)))
	if again.ID != g.ID || again.Count != 2 || !again.FirstSeen.Equal(at(1)) || !again.LastSeen.Equal(at(4)) {
		t.Errorf("%s: a report with the new fingerprint gave group %+v, want %q with count 2, first %s, last %s",
			f.s.Backend(), again, g.ID, fmtTime(at(1)), fmtTime(at(4)))
	}
	f.equal(t, "ErrorGroupDevices after a report with the new fingerprint", f.groupDevices(t, tn.ID, g.ID), []store.ErrorGroupDevice{
		{TenantID: tn.ID, GroupID: g.ID, DeviceID: d1.ID, Count: 1, FirstSeen: at(1), LastSeen: at(1)},
		{TenantID: tn.ID, GroupID: g.ID, DeviceID: d2.ID, Count: 1, FirstSeen: at(4), LastSeen: at(4)},
	})
	page, err := f.s.ListErrorReports(ctx, tn.ID, g.ID, "", store.ListOptions{})
	f.must(t, err, "ListErrorReports")
	if len(page.Items) != 2 || page.Items[0].ID != first.ID || page.Items[0].Fingerprint != "fp-pc" {
		t.Errorf("%s: reports of the re-keyed group %+v, want the first (fingerprint fp-pc) and the new one", f.s.Backend(), page.Items)
	}
	old := f.record(t, ptr(fullErrorReport(f, tn.ID, d1.ID, p.ID, "fp-pc", 5)))
	if old.ID == g.ID || old.Count != 1 {
		t.Errorf("%s: a report with the old fingerprint gave group %+v, want a new group with count 1", f.s.Backend(), old)
	}

	// Another group's fingerprint is a conflict; the group's own is no change.
	f.wantErr(t, f.s.SetErrorGroupFingerprint(ctx, tn.ID, g.ID, taken.Fingerprint), store.ErrConflict,
		"SetErrorGroupFingerprint to another group's fingerprint")
	f.must(t, f.s.SetErrorGroupFingerprint(ctx, tn.ID, g.ID, "fp-fn"), "SetErrorGroupFingerprint to its own fingerprint")
	got, err = f.s.ErrorGroup(ctx, tn.ID, g.ID)
	f.must(t, err, "ErrorGroup")
	want.Count, want.LastSeen = again.Count, again.LastSeen
	f.equal(t, "ErrorGroup after a refused SetErrorGroupFingerprint", got, want)
	got, err = f.s.ErrorGroup(ctx, tn.ID, taken.ID)
	f.must(t, err, "ErrorGroup")
	f.equal(t, "the other ErrorGroup after a refused SetErrorGroupFingerprint", got, taken)

	// Fingerprints are unique per tenant; a group is found only in its tenant.
	other := f.tenant(t)
	og := f.record(t, ptr(fullErrorReport(f, other.ID, f.device(t, other.ID, "").ID, "", "fp-other", 1)))
	f.must(t, f.s.SetErrorGroupFingerprint(ctx, other.ID, og.ID, "fp-fn"), "SetErrorGroupFingerprint to a fingerprint of another tenant")
	f.wantErr(t, f.s.SetErrorGroupFingerprint(ctx, tn.ID, og.ID, "fp-x"), store.ErrNotFound, "SetErrorGroupFingerprint of another tenant's group")
	f.wantErr(t, f.s.SetErrorGroupFingerprint(ctx, tn.ID, f.id(), "fp-x"), store.ErrNotFound, "SetErrorGroupFingerprint of a missing group")
	got, err = f.s.ErrorGroup(ctx, tn.ID, g.ID)
	f.must(t, err, "ErrorGroup")
	f.equal(t, "ErrorGroup after another tenant's SetErrorGroupFingerprint", got, want)
}

// testRecordErrorConcurrent reports one fingerprint from several goroutines and devices at
// once, the first sight of the group included: the counts must add up exactly and only one
// group may exist.
func testRecordErrorConcurrent(t *testing.T, f *fixture) {
	if !f.isolated(t) {
		return
	}
	ctx := t.Context()
	tn := f.tenant(t)
	devices := []store.Device{f.device(t, tn.ID, ""), f.device(t, tn.ID, ""), f.device(t, tn.ID, "")}
	const workers, each = 6, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	groups := map[string]bool{}
	errs := make(chan error, workers*each)
	start := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range each {
				r := fullErrorReport(f, tn.ID, devices[w%len(devices)].ID, "", "fp-race", 1+i)
				r.ID = ""
				g, err := f.s.RecordError(ctx, &r)
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				groups[g.ID] = true
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("%s: concurrent RecordError: %v", f.s.Backend(), err)
	}
	if len(groups) != 1 {
		t.Fatalf("%s: concurrent RecordError of one fingerprint made %d groups, want 1", f.s.Backend(), len(groups))
	}
	var gid string
	for id := range groups {
		gid = id
	}
	g, err := f.s.ErrorGroup(ctx, tn.ID, gid)
	f.must(t, err, "ErrorGroup")
	if g.Count != workers*each || !g.FirstSeen.Equal(at(1)) || !g.LastSeen.Equal(at(each)) {
		t.Errorf("%s: group after %d concurrent reports: Count %d FirstSeen %s LastSeen %s; want %d, %s, %s",
			f.s.Backend(), workers*each, g.Count, fmtTime(g.FirstSeen), fmtTime(g.LastSeen), workers*each, fmtTime(at(1)), fmtTime(at(each)))
	}
	devs, err := f.s.ErrorGroupDevices(ctx, tn.ID, gid)
	f.must(t, err, "ErrorGroupDevices")
	perDevice := map[string]int64{}
	for _, d := range devs {
		perDevice[d.DeviceID] += d.Count
	}
	wantPer := map[string]int64{}
	for w := range workers {
		wantPer[devices[w%len(devices)].ID] += each
	}
	f.equal(t, "per-device counts after concurrent RecordError", perDevice, wantPer)
	if len(devs) != len(devices) {
		t.Errorf("%s: ErrorGroupDevices = %d rows, want one per device (%d)", f.s.Backend(), len(devs), len(devices))
	}
	page, err := f.s.ListErrorGroups(ctx, tn.ID, store.ErrorGroupFilter{}, store.ListOptions{})
	f.must(t, err, "ListErrorGroups")
	if len(page.Items) != 1 {
		t.Errorf("%s: ListErrorGroups after concurrent RecordError = %d groups, want 1", f.s.Backend(), len(page.Items))
	}
}

// testCountErrorReportsByDay counts reports on both sides of every day boundary, to the
// millisecond: a report exactly on a boundary belongs to the day it starts, and the window's
// end is outside it. Another group's reports count only in the tenant's total; another
// tenant's never.
func testCountErrorReportsByDay(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	d := f.device(t, tn.ID, "")
	const day = 24 * time.Hour
	// A UTC midnight, written in zoneX as every time in the suite.
	from := time.Date(2030, 6, 10, 0, 0, 0, 0, time.UTC).In(zoneX())
	report := func(tenantID, deviceID, fingerprint string, after time.Duration) store.ErrorGroup {
		r := fullErrorReport(f, tenantID, deviceID, "", fingerprint, 0)
		r.ReceivedAt = from.Add(after)
		return f.record(t, &r)
	}
	g1 := report(tn.ID, d.ID, "fp-1", -time.Millisecond) // the millisecond before the window
	report(tn.ID, d.ID, "fp-1", 0)                       // day 0, on its first instant
	report(tn.ID, d.ID, "fp-1", day-time.Millisecond)    // day 0, on its last millisecond
	report(tn.ID, d.ID, "fp-1", day)                     // day 1, on the boundary
	g2 := report(tn.ID, d.ID, "fp-2", day+time.Millisecond)
	report(tn.ID, d.ID, "fp-1", 2*day+12*time.Hour)
	report(tn.ID, d.ID, "fp-1", 3*day) // the end of a 3-day window: outside it
	other := f.tenant(t)
	report(other.ID, f.device(t, other.ID, "").ID, "fp-1", time.Hour)

	cases := []struct {
		name     string
		tenantID string
		groupID  string
		from     time.Time
		days     int
		want     []int64
	}{
		{"tenant", tn.ID, "", from, 3, []int64{2, 2, 1}},
		{"tenant, one day more", tn.ID, "", from, 4, []int64{2, 2, 1, 1}},
		{"tenant, one day", tn.ID, "", from.Add(day), 1, []int64{2}},
		// The report of the millisecond before comes in; day 0's last millisecond goes out.
		{"tenant, a millisecond earlier", tn.ID, "", from.Add(-time.Millisecond), 1, []int64{2}},
		{"group", tn.ID, g1.ID, from, 3, []int64{2, 1, 1}},
		{"other group", tn.ID, g2.ID, from, 3, []int64{0, 1, 0}},
		{"window before the reports", tn.ID, "", from.Add(-30 * day), 5, []int64{0, 0, 0, 0, 0}},
		{"window after the reports", tn.ID, "", from.Add(4 * day), 2, []int64{0, 0}},
		{"unknown group", tn.ID, f.id(), from, 2, []int64{0, 0}},
		{"tenant without reports", f.tenant(t).ID, "", from, 2, []int64{0, 0}},
		{"other tenant", other.ID, "", from, 1, []int64{1}},
	}
	for _, c := range cases {
		got, err := f.s.CountErrorReportsByDay(ctx, c.tenantID, c.groupID, c.from, c.days)
		f.must(t, err, "CountErrorReportsByDay %s", c.name)
		f.equal(t, "CountErrorReportsByDay "+c.name, got, c.want)
	}
	for _, days := range []int{0, -1, store.MaxReportDays + 1} {
		_, err := f.s.CountErrorReportsByDay(ctx, tn.ID, "", from, days)
		f.wantErr(t, err, store.ErrInvalid, "CountErrorReportsByDay of %d days", days)
	}
}

// testExpiredErrorReports: the retention sweep lists the oldest reports of every tenant in
// pages of at most the limit, oldest first (ties by ID), without deleting them; it deletes
// those it is done with by ID. What was received at or after the cut stays, and the groups'
// counts and per-device counts stay as they were.
func testExpiredErrorReports(t *testing.T, f *fixture) {
	// The sweep spans tenants, so it runs on a store no other case writes to.
	f = f.fresh(t)
	ctx := t.Context()
	const cut = 10 // minutes: reports before at(cut) expire

	empty, err := f.s.ExpiredErrorReports(ctx, at(cut), store.ExpiredCursor{}, 10)
	f.must(t, err, "ExpiredErrorReports of an empty store")
	if len(empty) != 0 {
		t.Errorf("%s: ExpiredErrorReports of an empty store = %+v, want none", f.s.Backend(), empty)
	}
	for _, limit := range []int{0, -1, store.MaxPruneBatch + 1} {
		_, err := f.s.ExpiredErrorReports(ctx, at(cut), store.ExpiredCursor{}, limit)
		f.wantErr(t, err, store.ErrInvalid, "ExpiredErrorReports with limit %d", limit)
	}
	f.wantErr(t, f.s.DeleteErrorReports(ctx, make([]string, store.MaxPruneBatch+1)), store.ErrInvalid, "DeleteErrorReports of too many")
	f.must(t, f.s.DeleteErrorReports(ctx, nil), "DeleteErrorReports of none")

	tn, other := f.tenant(t), f.tenant(t)
	d1, d2 := f.device(t, tn.ID, ""), f.device(t, tn.ID, "")
	od := f.device(t, other.ID, "")
	report := func(tenantID, deviceID, fingerprint string, minute int, coreDump string) store.ErrorReport {
		r := fullErrorReport(f, tenantID, deviceID, "", fingerprint, minute)
		r.CoreDump = coreDump
		f.record(t, &r)
		return r
	}
	const dump = `{"task":"main","cause":"LoadProhibited","size":65536}`
	// Recorded out of time order, so "oldest first" is the received time, not the insert order.
	r3 := report(tn.ID, d2.ID, "fp-1", 3, "")
	r1 := report(tn.ID, d1.ID, "fp-1", 1, dump)
	kept := report(tn.ID, d1.ID, "fp-1", 50, dump)
	r2 := report(tn.ID, d1.ID, "fp-1", 2, "")
	r4 := report(tn.ID, d2.ID, "fp-2", 4, "")
	tie := report(tn.ID, d1.ID, "fp-2", 4, "") // received at the same time as r4: the ID orders them
	atCut := report(tn.ID, d2.ID, "fp-2", cut, "")
	r5 := report(other.ID, od.ID, "fp-1", 5, dump)
	otherKept := report(other.ID, od.ID, "fp-1", 60, "")
	if tie.ID < r4.ID {
		r4, tie = tie, r4
	}
	g1Before, err := f.s.ErrorGroup(ctx, tn.ID, r1.GroupID)
	f.must(t, err, "ErrorGroup before the deletes")
	devsBefore, err := f.s.ErrorGroupDevices(ctx, tn.ID, r1.GroupID)
	f.must(t, err, "ErrorGroupDevices before the deletes")

	expired := func(rs ...store.ErrorReport) []store.ExpiredErrorReport {
		out := make([]store.ExpiredErrorReport, len(rs))
		for i, r := range rs {
			out[i] = store.ExpiredErrorReport{ID: r.ID, TenantID: r.TenantID, CoreDump: r.CoreDump, ReceivedAt: r.ReceivedAt}
		}
		return out
	}
	list := func(what string, before time.Time, after store.ExpiredCursor, limit int, want []store.ExpiredErrorReport) []store.ExpiredErrorReport {
		t.Helper()
		got, err := f.s.ExpiredErrorReports(ctx, before, after, limit)
		f.must(t, err, "ExpiredErrorReports %s", what)
		if len(got) != 0 || len(want) != 0 {
			f.equal(t, "ExpiredErrorReports "+what, got, want)
		}
		return got
	}
	// Pages of two, each after the last of the previous one; listing deletes nothing.
	var cursor store.ExpiredCursor
	var all []string
	for i, want := range [][]store.ExpiredErrorReport{expired(r1, r2), expired(r3, r4), expired(tie, r5), nil} {
		got := list(fmt.Sprintf("page %d", i+1), at(cut), cursor, 2, want)
		for _, r := range got {
			all = append(all, r.ID)
		}
		if len(got) > 0 {
			cursor = got[len(got)-1].Cursor()
		}
	}
	list("again from the start", at(cut), store.ExpiredCursor{}, 2, expired(r1, r2))

	// The sweep deletes what it is done with; r1 stays (say its core dump could not be deleted).
	done := slices.DeleteFunc(slices.Clone(all), func(id string) bool { return id == r1.ID })
	f.must(t, f.s.DeleteErrorReports(ctx, done), "DeleteErrorReports")
	f.must(t, f.s.DeleteErrorReports(ctx, done), "DeleteErrorReports of reports already gone")
	list("after the deletes", at(cut), store.ExpiredCursor{}, store.MaxPruneBatch, expired(r1))

	left := func(tenantID, groupID string) []string {
		t.Helper()
		page, err := f.s.ListErrorReports(ctx, tenantID, groupID, "", store.ListOptions{Limit: store.MaxPageSize})
		f.must(t, err, "ListErrorReports after the deletes")
		return keys(page.Items, func(r store.ErrorReport) string { return r.ID })
	}
	f.sameKeys(t, "group fp-1's reports after the deletes", left(tn.ID, r1.GroupID), []string{r1.ID, kept.ID})
	f.sameKeys(t, "group fp-2's reports after the deletes (one received at the cut)", left(tn.ID, r4.GroupID), []string{atCut.ID})
	f.sameKeys(t, "the other tenant's reports after the deletes", left(other.ID, ""), []string{otherKept.ID})

	// The groups summarise every report they had, deleted or not.
	g1, err := f.s.ErrorGroup(ctx, tn.ID, r1.GroupID)
	f.must(t, err, "ErrorGroup after the deletes")
	f.equal(t, "group after the deletes", g1, g1Before)
	if g1.Count != 4 || !g1.LastSeen.Equal(at(50)) {
		t.Errorf("%s: group after the deletes: count %d, last seen %v; want 4, %v", f.s.Backend(), g1.Count, g1.LastSeen, at(50))
	}
	devs, err := f.s.ErrorGroupDevices(ctx, tn.ID, r1.GroupID)
	f.must(t, err, "ErrorGroupDevices after the deletes")
	f.equal(t, "per-device counts after the deletes", devs, devsBefore)
	g2, err := f.s.ErrorGroup(ctx, tn.ID, r4.GroupID)
	f.must(t, err, "ErrorGroup of fp-2 after the deletes")
	if g2.Count != 3 {
		t.Errorf("%s: group fp-2 after the deletes: count %d, want 3", f.s.Backend(), g2.Count)
	}
	og, err := f.s.ErrorGroup(ctx, other.ID, r5.GroupID)
	f.must(t, err, "the other tenant's group after the deletes")
	if og.Count != 2 {
		t.Errorf("%s: the other tenant's group after the deletes: count %d, want 2", f.s.Backend(), og.Count)
	}

	// A later cut lists the rest, in one page when the limit allows.
	list("at a later cut", at(100), store.ExpiredCursor{}, store.MaxPruneBatch, expired(r1, atCut, kept, otherKept))
}
