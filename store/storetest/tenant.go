package storetest

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
)

// hash returns a distinct 32-byte value, standing in for the SHA-256 of a secret.
func (f *fixture) hash() []byte {
	h := sha256.Sum256([]byte(f.id()))
	return h[:]
}

func fullTenant(f *fixture) store.Tenant {
	return store.Tenant{
		ID:        f.id(),
		Slug:      f.name("t"),
		Name:      "Tenant Ünïcode ✓",
		CreatedAt: at(0),
		UpdatedAt: at(1),
	}
}

// tenant creates a tenant with every field set.
func (f *fixture) tenant(t *testing.T) store.Tenant {
	t.Helper()
	tn := fullTenant(f)
	f.must(t, f.s.CreateTenant(t.Context(), &tn), "CreateTenant")
	return tn
}

func testTenant(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"RoundTrip", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			in := fullTenant(f)
			want := in
			f.must(t, f.s.CreateTenant(ctx, &in), "CreateTenant")
			got, err := f.s.Tenant(ctx, want.ID)
			f.must(t, err, "Tenant")
			f.equal(t, "Tenant after CreateTenant", got, want)
			got, err = f.s.TenantBySlug(ctx, want.Slug)
			f.must(t, err, "TenantBySlug")
			f.equal(t, "TenantBySlug after CreateTenant", got, want)
		}},
		{"AssignsIDAndTimes", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			in := store.Tenant{Slug: f.name("t"), Name: "n"}
			f.must(t, f.s.CreateTenant(ctx, &in), "CreateTenant")
			if len(in.ID) != 26 || in.CreatedAt.IsZero() || !in.UpdatedAt.Equal(in.CreatedAt) {
				t.Fatalf("%s: CreateTenant left ID %q CreatedAt %v UpdatedAt %v; want a 26-character ID and equal, non-zero times",
					f.s.Backend(), in.ID, in.CreatedAt, in.UpdatedAt)
			}
			got, err := f.s.Tenant(ctx, in.ID)
			f.must(t, err, "Tenant")
			f.equal(t, "Tenant after CreateTenant with assigned ID", got, in)
		}},
		{"TimestampTruncatedToMillisecond", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			in := fullTenant(f)
			in.CreatedAt = at(0).Add(456789 * time.Nanosecond) // 417.456789 ms
			in.UpdatedAt = at(1).Add(999999 * time.Nanosecond)
			f.must(t, f.s.CreateTenant(ctx, &in), "CreateTenant")
			want := in
			want.CreatedAt = at(0)
			want.UpdatedAt = at(1)
			f.equal(t, "tenant passed to CreateTenant", in, want)
			got, err := f.s.Tenant(ctx, in.ID)
			f.must(t, err, "Tenant")
			f.equal(t, "Tenant created with sub-millisecond times", got, want)
		}},
		{"SlugConflict", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			a := f.tenant(t)
			dup := fullTenant(f)
			dup.Slug = a.Slug
			f.wantErr(t, f.s.CreateTenant(ctx, &dup), store.ErrConflict, "CreateTenant with a taken slug")
			b := f.tenant(t)
			changed := b
			changed.Slug = a.Slug
			f.wantErr(t, f.s.UpdateTenant(ctx, &changed), store.ErrConflict, "UpdateTenant to a taken slug")
			got, err := f.s.Tenant(ctx, b.ID)
			f.must(t, err, "Tenant")
			f.equal(t, "tenant after a refused update", got, b)
		}},
		{"Update", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			created := tn.CreatedAt
			tn.Slug = f.name("renamed")
			tn.Name = "Renamed"
			f.must(t, f.s.UpdateTenant(ctx, &tn), "UpdateTenant")
			if tn.UpdatedAt.IsZero() {
				t.Errorf("%s: UpdateTenant left UpdatedAt zero", f.s.Backend())
			}
			got, err := f.s.Tenant(ctx, tn.ID)
			f.must(t, err, "Tenant")
			f.equal(t, "Tenant after UpdateTenant", got, tn)
			if !got.CreatedAt.Equal(created) {
				t.Errorf("%s: UpdateTenant changed CreatedAt to %v", f.s.Backend(), got.CreatedAt)
			}
			got, err = f.s.TenantBySlug(ctx, tn.Slug)
			f.must(t, err, "TenantBySlug with the new slug")
			f.equal(t, "TenantBySlug after UpdateTenant", got, tn)
		}},
		{"Missing", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			id := f.id()
			_, err := f.s.Tenant(ctx, id)
			f.wantErr(t, err, store.ErrNotFound, "Tenant of a missing ID")
			_, err = f.s.TenantBySlug(ctx, f.name("nobody"))
			f.wantErr(t, err, store.ErrNotFound, "TenantBySlug of a missing slug")
			tn := fullTenant(f)
			f.wantErr(t, f.s.UpdateTenant(ctx, &tn), store.ErrNotFound, "UpdateTenant of a missing tenant")
			f.wantErr(t, f.s.DeleteTenant(ctx, id), store.ErrNotFound, "DeleteTenant of a missing tenant")
		}},
		{"Delete", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			a, b := f.tenant(t), f.tenant(t)
			f.must(t, f.s.DeleteTenant(ctx, a.ID), "DeleteTenant")
			_, err := f.s.Tenant(ctx, a.ID)
			f.wantErr(t, err, store.ErrNotFound, "Tenant after DeleteTenant")
			_, err = f.s.TenantBySlug(ctx, a.Slug)
			f.wantErr(t, err, store.ErrNotFound, "TenantBySlug after DeleteTenant")
			got, err := f.s.Tenant(ctx, b.ID)
			f.must(t, err, "Tenant of another tenant")
			f.equal(t, "other tenant after DeleteTenant", got, b)
			// The slug is free again.
			again := fullTenant(f)
			again.Slug = a.Slug
			f.must(t, f.s.CreateTenant(ctx, &again), "CreateTenant with the slug of a deleted tenant")
		}},
		{"DeleteCascades", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			a, b := f.graph(t), f.graph(t)
			f.must(t, f.s.DeleteTenant(ctx, a.tenant.ID), "DeleteTenant")
			a.checkGone(t, f)
			b.check(t, f)
			// Users are global: the member stays, without the membership.
			_, err := f.s.User(ctx, a.user.ID)
			f.must(t, err, "User of a deleted tenant's member")
			ms, err := f.s.UserMemberships(ctx, a.user.ID)
			f.must(t, err, "UserMemberships")
			if len(ms) != 0 {
				t.Errorf("%s: UserMemberships after DeleteTenant = %+v, want none", f.s.Backend(), ms)
			}
		}},
	})
}
