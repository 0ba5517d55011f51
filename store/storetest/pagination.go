package storetest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/espadmin/espadmin/store"
)

// paged describes one list for checkPaging.
type paged[T any] struct {
	// n records are created with create before listing; limit is the page size.
	n, limit int
	// create makes one more record and returns its key; every record it makes sorts after the
	// ones made before (IDs from the fixture's sequence, growing version numbers).
	create func(t *testing.T) string
	list   func(ctx context.Context, opts store.ListOptions) (store.Page[T], error)
	key    func(T) string
	// assigned is set when the store assigns the IDs (error groups and reports): creation order
	// is then not ID order within a millisecond, so the expectation is sorted instead and no
	// record is added between pages.
	assigned bool
}

// checkPaging walks a list page by page, oldest first and newest first, and checks the page
// sizes, the cursors, the order and that the pages together hold every record exactly once.
// It then adds records while a walk is under way: the pages already issued are not disturbed
// and the new records appear at the end.
func checkPaging[T any](t *testing.T, f *fixture, p paged[T]) {
	t.Helper()
	want := make([]string, 0, p.n)
	for range p.n {
		want = append(want, p.create(t))
	}
	if p.assigned {
		slices.Sort(want)
	}

	walk := func(opts store.ListOptions, between func()) ([]string, []int) {
		t.Helper()
		var all []string
		var sizes []int
		for i := 0; ; i++ {
			page, err := p.list(t.Context(), opts)
			f.must(t, err, "list page %d (cursor %q, desc %v)", i+1, opts.Cursor, opts.Desc)
			if page.Items == nil {
				t.Errorf("%s: page %d has nil Items, want an empty slice", f.s.Backend(), i+1)
			}
			all = append(all, keys(page.Items, p.key)...)
			sizes = append(sizes, len(page.Items))
			if page.NextCursor == "" {
				return all, sizes
			}
			if len(page.Items) != opts.PageSize() || i > 50 {
				t.Fatalf("%s: page %d holds %d items with a next cursor %q, want a full page of %d",
					f.s.Backend(), i+1, len(page.Items), page.NextCursor, opts.PageSize())
			}
			opts.Cursor = page.NextCursor
			if between != nil && i == 0 {
				between()
			}
		}
	}
	wantSizes := func(n int) []int {
		var s []int
		for ; n > p.limit; n -= p.limit {
			s = append(s, p.limit)
		}
		return append(s, n)
	}
	check := func(what string, got []string, sizes []int, want []string) {
		t.Helper()
		f.equalKeys(t, what+": items", got, want)
		if !slices.Equal(sizes, wantSizes(len(want))) {
			t.Errorf("%s: %s: page sizes %v, want %v", f.s.Backend(), what, sizes, wantSizes(len(want)))
		}
	}

	got, sizes := walk(store.ListOptions{Limit: p.limit}, nil)
	check(fmt.Sprintf("ascending, limit %d", p.limit), got, sizes, want)
	got, sizes = walk(store.ListOptions{Limit: p.limit, Desc: true}, nil)
	check(fmt.Sprintf("descending, limit %d", p.limit), got, sizes, reversed(want))

	// Limit 0 is the default page size; a limit above the count is one page.
	for _, limit := range []int{0, len(want) + 1} {
		page, err := p.list(t.Context(), store.ListOptions{Limit: limit})
		f.must(t, err, "list with limit %d", limit)
		f.equalKeys(t, fmt.Sprintf("one page with limit %d", limit), keys(page.Items, p.key), want)
		if page.NextCursor != "" {
			t.Errorf("%s: list with limit %d: NextCursor %q on the only page, want empty", f.s.Backend(), limit, page.NextCursor)
		}
	}
	// A limit of exactly the count: one full page and no cursor (no empty page follows).
	page, err := p.list(t.Context(), store.ListOptions{Limit: len(want)})
	f.must(t, err, "list with limit %d", len(want))
	if len(page.Items) != len(want) || page.NextCursor != "" {
		t.Errorf("%s: list with limit = count %d: %d items, NextCursor %q; want all and no cursor", f.s.Backend(), len(want), len(page.Items), page.NextCursor)
	}

	if p.assigned {
		return
	}
	var added []string
	got, sizes = walk(store.ListOptions{Limit: p.limit}, func() {
		added = append(added, p.create(t), p.create(t))
	})
	check("ascending with records added after the first page", got, sizes, append(slices.Clone(want), added...))
	got, sizes = walk(store.ListOptions{Limit: p.limit, Desc: true}, nil)
	check("descending after the additions", got, sizes, reversed(append(slices.Clone(want), added...)))
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func testPagination(t *testing.T, f *fixture) {
	const n, limit = 7, 3
	runCases(t, f, []testCase{
		{"Tenants", func(t *testing.T, f *fixture) {
			f = f.fresh(t) // the list is not tenant-scoped
			checkPaging(t, f, paged[store.Tenant]{n: n, limit: limit,
				create: func(t *testing.T) string { return f.tenant(t).ID },
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.Tenant], error) {
					return f.s.ListTenants(ctx, o)
				},
				key: func(v store.Tenant) string { return v.ID },
			})
		}},
		{"Users", func(t *testing.T, f *fixture) {
			f = f.fresh(t) // the list is not tenant-scoped
			checkPaging(t, f, paged[store.User]{n: n, limit: limit,
				create: func(t *testing.T) string { return f.user(t).ID },
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.User], error) {
					return f.s.ListUsers(ctx, o)
				},
				key: func(v store.User) string { return v.ID },
			})
		}},
		{"Memberships", func(t *testing.T, f *fixture) {
			tn := f.tenant(t)
			checkPaging(t, f, paged[store.Membership]{n: n, limit: limit,
				create: func(t *testing.T) string {
					m := fullMembership(f, tn.ID, f.user(t).ID)
					f.must(t, f.s.CreateMembership(t.Context(), &m), "CreateMembership")
					return m.ID
				},
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.Membership], error) {
					return f.s.ListMemberships(ctx, tn.ID, o)
				},
				key: func(v store.Membership) string { return v.ID },
			})
		}},
		{"APITokens", func(t *testing.T, f *fixture) {
			tn := f.tenant(t)
			checkPaging(t, f, paged[store.APIToken]{n: n, limit: limit,
				create: func(t *testing.T) string {
					a := fullAPIToken(f, tn.ID, "")
					f.must(t, f.s.CreateAPIToken(t.Context(), &a), "CreateAPIToken")
					return a.ID
				},
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.APIToken], error) {
					return f.s.ListAPITokens(ctx, tn.ID, o)
				},
				key: func(v store.APIToken) string { return v.ID },
			})
		}},
		{"Invitations", func(t *testing.T, f *fixture) {
			tn := f.tenant(t)
			checkPaging(t, f, paged[store.Invitation]{n: n, limit: limit,
				create: func(t *testing.T) string {
					inv := fullInvitation(f, tn.ID, "user-1")
					f.must(t, f.s.CreateInvitation(t.Context(), &inv), "CreateInvitation")
					return inv.ID
				},
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.Invitation], error) {
					return f.s.ListInvitations(ctx, tn.ID, o)
				},
				key: func(v store.Invitation) string { return v.ID },
			})
		}},
		{"Projects", func(t *testing.T, f *fixture) {
			tn := f.tenant(t)
			checkPaging(t, f, paged[store.Project]{n: n, limit: limit,
				create: func(t *testing.T) string { return f.project(t, tn.ID).ID },
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.Project], error) {
					return f.s.ListProjects(ctx, tn.ID, o)
				},
				key: func(v store.Project) string { return v.ID },
			})
		}},
		{"Releases", func(t *testing.T, f *fixture) {
			tn := f.tenant(t)
			p, other := f.project(t, tn.ID), f.project(t, tn.ID)
			f.release(t, tn.ID, other.ID, "v-0.0.1") // another project's release never shows
			v := 0
			checkPaging(t, f, paged[store.Release]{n: n, limit: limit,
				create: func(t *testing.T) string {
					v++
					return f.release(t, tn.ID, p.ID, "v-1.0."+strconv.Itoa(v)).ID
				},
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.Release], error) {
					return f.s.ListReleases(ctx, tn.ID, p.ID, o)
				},
				key: func(v store.Release) string { return v.ID },
			})
		}},
		{"Devices", func(t *testing.T, f *fixture) {
			tn := f.tenant(t)
			f.device(t, tn.ID, "") // filtered out by the tag
			checkPaging(t, f, paged[store.Device]{n: n, limit: limit,
				create: func(t *testing.T) string {
					d := fullDevice(f, tn.ID, "")
					d.Tags = []string{"paged"}
					f.must(t, f.s.CreateDevice(t.Context(), &d), "CreateDevice")
					return d.ID
				},
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.Device], error) {
					return f.s.ListDevices(ctx, tn.ID, store.DeviceFilter{Tag: "paged"}, o)
				},
				key: func(v store.Device) string { return v.ID },
			})
		}},
		{"ConfigVersions", func(t *testing.T, f *fixture) {
			tn := f.tenant(t)
			d := f.device(t, tn.ID, "")
			v := int64(0)
			// 12 versions in pages of 5 cross 9 → 10, where a cursor compared as text breaks.
			checkPaging(t, f, paged[store.ConfigVersion]{n: 12, limit: 5,
				create: func(t *testing.T) string {
					v++
					cv := fullConfigVersion(tn.ID, d.ID, v)
					f.must(t, f.s.CreateConfigVersion(t.Context(), &cv), "CreateConfigVersion")
					return strconv.FormatInt(v, 10)
				},
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.ConfigVersion], error) {
					return f.s.ListConfigVersions(ctx, tn.ID, d.ID, o)
				},
				key: func(v store.ConfigVersion) string { return strconv.FormatInt(v.Version, 10) },
			})
		}},
		{"Commands", func(t *testing.T, f *fixture) {
			tn := f.tenant(t)
			d, other := f.device(t, tn.ID, ""), f.device(t, tn.ID, "")
			f.queued(t, tn.ID, other.ID, 0, 10)
			checkPaging(t, f, paged[store.Command]{n: n, limit: limit,
				create: func(t *testing.T) string { return f.queued(t, tn.ID, d.ID, 0, 10).ID },
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.Command], error) {
					return f.s.ListCommands(ctx, tn.ID, store.CommandFilter{DeviceID: d.ID}, o)
				},
				key: func(v store.Command) string { return v.ID },
			})
		}},
		{"Rollouts", func(t *testing.T, f *fixture) {
			rs := f.rolloutSetup(t, 0)
			checkPaging(t, f, paged[store.Rollout]{n: n, limit: limit,
				create: func(t *testing.T) string { return f.rollout(t, rs.tenant.ID, rs.project.ID, rs.release.ID, nil).ID },
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.Rollout], error) {
					return f.s.ListRollouts(ctx, rs.tenant.ID, store.RolloutFilter{}, o)
				},
				key: func(v store.Rollout) string { return v.ID },
			})
		}},
		{"RolloutDevices", func(t *testing.T, f *fixture) {
			rs := f.rolloutSetup(t, 0)
			r := f.rollout(t, rs.tenant.ID, rs.project.ID, rs.release.ID, nil)
			checkPaging(t, f, paged[store.RolloutDevice]{n: n, limit: limit,
				create: func(t *testing.T) string {
					d := f.device(t, rs.tenant.ID, rs.project.ID)
					rd := fullRolloutDevice(rs.tenant.ID, r.ID, d.ID, "")
					f.must(t, f.s.PutRolloutDevice(t.Context(), &rd), "PutRolloutDevice")
					return d.ID
				},
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.RolloutDevice], error) {
					return f.s.ListRolloutDevices(ctx, rs.tenant.ID, r.ID, o)
				},
				key: func(v store.RolloutDevice) string { return v.DeviceID },
			})
		}},
		{"ErrorGroups", func(t *testing.T, f *fixture) {
			tn := f.tenant(t)
			d := f.device(t, tn.ID, "")
			fp := 0
			checkPaging(t, f, paged[store.ErrorGroup]{n: n, limit: limit, assigned: true,
				create: func(t *testing.T) string {
					fp++
					return f.record(t, ptr(fullErrorReport(f, tn.ID, d.ID, "", "fp-"+strconv.Itoa(fp), fp))).ID
				},
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.ErrorGroup], error) {
					return f.s.ListErrorGroups(ctx, tn.ID, store.ErrorGroupFilter{}, o)
				},
				key: func(v store.ErrorGroup) string { return v.ID },
			})
		}},
		{"ErrorReports", func(t *testing.T, f *fixture) {
			tn := f.tenant(t)
			d := f.device(t, tn.ID, "")
			var group string
			minute := 0
			checkPaging(t, f, paged[store.ErrorReport]{n: n, limit: limit, assigned: true,
				create: func(t *testing.T) string {
					minute++
					r := fullErrorReport(f, tn.ID, d.ID, "", "fp-paged", minute)
					group = f.record(t, &r).ID
					return r.ID
				},
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.ErrorReport], error) {
					return f.s.ListErrorReports(ctx, tn.ID, group, "", o)
				},
				key: func(v store.ErrorReport) string { return v.ID },
			})
		}},
		{"AuditEvents", func(t *testing.T, f *fixture) {
			tn := f.tenant(t)
			checkPaging(t, f, paged[store.AuditEvent]{n: n, limit: limit,
				create: func(t *testing.T) string {
					e := fullAuditEvent(f, tn.ID, "alice", "device.update", "device", "d1")
					f.must(t, f.s.CreateAuditEvent(t.Context(), &e), "CreateAuditEvent")
					return e.ID
				},
				list: func(ctx context.Context, o store.ListOptions) (store.Page[store.AuditEvent], error) {
					return f.s.ListAuditEvents(ctx, tn.ID, store.AuditFilter{ActorUserID: "alice"}, o)
				},
				key: func(v store.AuditEvent) string { return v.ID },
			})
		}},
	})
}
