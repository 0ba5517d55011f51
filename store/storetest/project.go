package storetest

import (
	"testing"

	"github.com/espadmin/espadmin/store"
)

func fullProject(f *fixture, tenantID string) store.Project {
	return store.Project{
		ID:                  f.id(),
		TenantID:            tenantID,
		Name:                f.name("Weather Station"),
		Description:         "Outdoor sensors, solar powered",
		RepositoryURL:       "https://git.example.com/acme/weather.git",
		SigningEnabled:      true,
		SigningPublicKey:    []byte{0x01, 0x02, 0x03, 0xfe, 0xff},
		SigningKeySealed:    []byte{0x00, 0x10, 0x20, 0x30},
		PublicDownloads:     true,
		VersionMismatch:     store.MismatchRefuse,
		BugsnagAPIKeySealed: []byte{0xde, 0xad, 0xbe, 0xef},
		BugsnagReleaseStage: "production",
		CreatedAt:           at(20),
		UpdatedAt:           at(21),
	}
}

func (f *fixture) project(t *testing.T, tenantID string) store.Project {
	t.Helper()
	p := fullProject(f, tenantID)
	f.must(t, f.s.CreateProject(t.Context(), &p), "CreateProject")
	return p
}

func fullRelease(f *fixture, tenantID, projectID, version string) store.Release {
	return store.Release{
		ID:        f.id(),
		TenantID:  tenantID,
		ProjectID: projectID,
		Version:   version,
		Notes:     "Fixes the watchdog reset.\nSecond line.",
		BlobKey:   "releases/" + f.id() + ".bin",
		Size:      1_572_864,
		SHA256:    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Image: store.ImageInfo{
			Chip:        "esp32s3",
			ProjectName: "weather",
			AppVersion:  version,
			IDFVersion:  "v5.2.1",
			BuildDate:   "Jun 15 2030",
			BuildTime:   "08:30:00",
			ELFSHA256:   "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
		},
		Warnings:  []string{"the image's own version is \"v-0.9.0\"", "second warning"},
		CreatedBy: "user-" + f.id(),
		CreatedAt: at(22),
	}
}

func (f *fixture) release(t *testing.T, tenantID, projectID, version string) store.Release {
	t.Helper()
	r := fullRelease(f, tenantID, projectID, version)
	f.must(t, f.s.CreateRelease(t.Context(), &r), "CreateRelease")
	return r
}

func testProject(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"RoundTrip", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			in := fullProject(f, tn.ID)
			want := in
			f.must(t, f.s.CreateProject(ctx, &in), "CreateProject")
			got, err := f.s.Project(ctx, tn.ID, want.ID)
			f.must(t, err, "Project")
			f.equal(t, "Project after CreateProject", got, want)

			// Every field but the IDs and CreatedAt is saved, including clearing.
			upd := in
			upd.Name = f.name("Renamed")
			upd.Description = ""
			upd.RepositoryURL = "https://example.org/x.git"
			upd.SigningEnabled = false
			upd.SigningPublicKey = []byte{9}
			upd.SigningKeySealed = nil
			upd.PublicDownloads = false
			upd.VersionMismatch = store.MismatchWarn
			upd.BugsnagAPIKeySealed = nil
			upd.BugsnagReleaseStage = "staging"
			upd.CreatedAt = at(-500) // ignored
			f.must(t, f.s.UpdateProject(ctx, &upd), "UpdateProject")
			got, err = f.s.Project(ctx, tn.ID, want.ID)
			f.must(t, err, "Project")
			wantUpd := upd
			wantUpd.CreatedAt = want.CreatedAt
			f.equal(t, "Project after UpdateProject", got, wantUpd)
		}},
		{"NameConflict", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn, other := f.tenant(t), f.tenant(t)
			p := f.project(t, tn.ID)
			dup := fullProject(f, tn.ID)
			dup.Name = p.Name
			f.wantErr(t, f.s.CreateProject(ctx, &dup), store.ErrConflict, "CreateProject with a name taken in the tenant")
			elsewhere := fullProject(f, other.ID)
			elsewhere.Name = p.Name
			f.must(t, f.s.CreateProject(ctx, &elsewhere), "CreateProject with a name taken in another tenant")
			second := f.project(t, tn.ID)
			second.Name = p.Name
			f.wantErr(t, f.s.UpdateProject(ctx, &second), store.ErrConflict, "UpdateProject to a name taken in the tenant")
		}},
		{"Missing", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			_, err := f.s.Project(ctx, tn.ID, f.id())
			f.wantErr(t, err, store.ErrNotFound, "Project of a missing ID")
			p := fullProject(f, tn.ID)
			f.wantErr(t, f.s.UpdateProject(ctx, &p), store.ErrNotFound, "UpdateProject of a missing project")
			f.wantErr(t, f.s.DeleteProject(ctx, tn.ID, p.ID), store.ErrNotFound, "DeleteProject of a missing project")
		}},
		{"DeleteUnlinksDevicesAndRemovesReleases", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			tn := f.tenant(t)
			p, keep := f.project(t, tn.ID), f.project(t, tn.ID)
			rel := f.release(t, tn.ID, p.ID, "v-1.0.0")
			keepRel := f.release(t, tn.ID, keep.ID, "v-1.0.0")
			d := f.device(t, tn.ID, p.ID)
			keepDev := f.device(t, tn.ID, keep.ID)
			ro := f.rollout(t, tn.ID, p.ID, rel.ID, []string{d.ID})

			f.must(t, f.s.DeleteProject(ctx, tn.ID, p.ID), "DeleteProject")
			_, err := f.s.Project(ctx, tn.ID, p.ID)
			f.wantErr(t, err, store.ErrNotFound, "Project after DeleteProject")
			_, err = f.s.Release(ctx, tn.ID, rel.ID)
			f.wantErr(t, err, store.ErrNotFound, "Release of a deleted project")
			_, err = f.s.ReleaseByVersion(ctx, tn.ID, p.ID, rel.Version)
			f.wantErr(t, err, store.ErrNotFound, "ReleaseByVersion of a deleted project")
			_, err = f.s.Rollout(ctx, tn.ID, ro.ID)
			f.wantErr(t, err, store.ErrNotFound, "Rollout of a deleted project")

			got, err := f.s.Device(ctx, tn.ID, d.ID)
			f.must(t, err, "Device of a deleted project (it must stay)")
			unlinked := d
			unlinked.ProjectID = ""
			unlinked.UpdatedAt = got.UpdatedAt // unlinking may count as an update
			f.equal(t, "Device after its project was deleted", got, unlinked)

			gotKeep, err := f.s.Device(ctx, tn.ID, keepDev.ID)
			f.must(t, err, "Device of another project")
			f.equal(t, "Device of another project after DeleteProject", gotKeep, keepDev)
			gotRel, err := f.s.Release(ctx, tn.ID, keepRel.ID)
			f.must(t, err, "Release of another project")
			f.equal(t, "Release of another project after DeleteProject", gotRel, keepRel)
		}},
		{"Release", testRelease},
	})
}

func testRelease(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	p, p2 := f.project(t, tn.ID), f.project(t, tn.ID)
	in := fullRelease(f, tn.ID, p.ID, "v-1.4.0")
	want := in
	f.must(t, f.s.CreateRelease(ctx, &in), "CreateRelease")
	got, err := f.s.Release(ctx, tn.ID, want.ID)
	f.must(t, err, "Release")
	f.equal(t, "Release after CreateRelease", got, want)
	got, err = f.s.ReleaseByVersion(ctx, tn.ID, p.ID, want.Version)
	f.must(t, err, "ReleaseByVersion")
	f.equal(t, "ReleaseByVersion after CreateRelease", got, want)

	dup := fullRelease(f, tn.ID, p.ID, want.Version)
	f.wantErr(t, f.s.CreateRelease(ctx, &dup), store.ErrConflict, "CreateRelease with a version taken in the project")
	f.release(t, tn.ID, p2.ID, want.Version) // the same version in another project is fine
	_, err = f.s.ReleaseByVersion(ctx, tn.ID, p.ID, "v-9.9.9")
	f.wantErr(t, err, store.ErrNotFound, "ReleaseByVersion of a missing version")

	f.must(t, f.s.UpdateReleaseNotes(ctx, tn.ID, want.ID, "New notes ✓"), "UpdateReleaseNotes")
	got, err = f.s.Release(ctx, tn.ID, want.ID)
	f.must(t, err, "Release")
	noted := want
	noted.Notes = "New notes ✓"
	f.equal(t, "Release after UpdateReleaseNotes", got, noted)

	later := f.release(t, tn.ID, p.ID, "v-1.5.0")
	page, err := f.s.ListReleases(ctx, tn.ID, p.ID, store.ListOptions{})
	f.must(t, err, "ListReleases")
	f.equalKeys(t, "ListReleases of the project", keys(page.Items, func(r store.Release) string { return r.ID }), []string{want.ID, later.ID})

	missing := f.id()
	_, err = f.s.Release(ctx, tn.ID, missing)
	f.wantErr(t, err, store.ErrNotFound, "Release of a missing ID")
	f.wantErr(t, f.s.UpdateReleaseNotes(ctx, tn.ID, missing, "x"), store.ErrNotFound, "UpdateReleaseNotes of a missing release")
	f.must(t, f.s.DeleteRelease(ctx, tn.ID, want.ID), "DeleteRelease")
	_, err = f.s.Release(ctx, tn.ID, want.ID)
	f.wantErr(t, err, store.ErrNotFound, "Release after DeleteRelease")
	f.wantErr(t, f.s.DeleteRelease(ctx, tn.ID, want.ID), store.ErrNotFound, "DeleteRelease twice")
	f.release(t, tn.ID, p.ID, want.Version) // the version is free again
}
