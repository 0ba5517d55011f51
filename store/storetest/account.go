package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/espadmin/espadmin/store"
)

func fullUser(f *fixture) store.User {
	return store.User{
		ID:            f.id(),
		Email:         f.name("user") + "@example.com",
		Name:          "Ada Lovelace",
		PasswordHash:  "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
		EmailVerified: true,
		Disabled:      true,
		LastLoginAt:   ptr(at(2)),
		CreatedAt:     at(0),
		UpdatedAt:     at(1),
	}
}

func (f *fixture) user(t *testing.T) store.User {
	t.Helper()
	u := fullUser(f)
	f.must(t, f.s.CreateUser(t.Context(), &u), "CreateUser")
	return u
}

func fullMembership(f *fixture, tenantID, userID string) store.Membership {
	return store.Membership{ID: f.id(), TenantID: tenantID, UserID: userID, Role: store.RoleDeveloper, CreatedAt: at(3), UpdatedAt: at(4)}
}

func fullIdentity(f *fixture, userID string) store.Identity {
	return store.Identity{ID: f.id(), UserID: userID, Provider: "github", Subject: f.name("sub"), Email: "ada@example.org", CreatedAt: at(5)}
}

func fullSession(f *fixture, userID string) store.Session {
	return store.Session{
		ID:            f.id(),
		TokenHash:     f.hash(),
		UserID:        userID,
		CSRFToken:     "csrf-" + f.id(),
		UserAgent:     "Mozilla/5.0 (X11; Linux x86_64)",
		RemoteAddr:    "192.0.2.7:51234",
		CreatedAt:     at(10),
		LastSeenAt:    at(11),
		IdleExpiresAt: at(40),
		ExpiresAt:     at(60 * 24),
	}
}

func fullAPIToken(f *fixture, tenantID, userID string) store.APIToken {
	return store.APIToken{
		ID:         f.id(),
		TenantID:   tenantID,
		UserID:     userID,
		Name:       "ci pipeline",
		Prefix:     "esp_ab12",
		Hash:       f.hash(),
		Scopes:     []string{store.ScopeReleasesWrite, store.ScopeDevicesRead, store.ScopeAdmin},
		ExpiresAt:  ptr(at(60 * 24 * 30)),
		LastUsedAt: ptr(at(12)),
		CreatedBy:  userID,
		CreatedAt:  at(6),
	}
}

func fullInvitation(f *fixture, tenantID, invitedBy string) store.Invitation {
	return store.Invitation{
		ID:         f.id(),
		TenantID:   tenantID,
		Email:      f.name("invitee") + "@example.com",
		Role:       store.RoleAdmin,
		TokenHash:  f.hash(),
		InvitedBy:  invitedBy,
		ExpiresAt:  at(60 * 24 * 7),
		AcceptedAt: nil,
		CreatedAt:  at(7),
	}
}

func fullOneTimeToken(f *fixture, kind store.OneTimeTokenKind, userID string) store.OneTimeToken {
	return store.OneTimeToken{ID: f.id(), Kind: kind, Hash: f.hash(), UserID: userID, ExpiresAt: at(100), CreatedAt: at(8)}
}

func testAccount(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"User", testUser},
		{"UserEmailConflict", func(t *testing.T, f *fixture) {
			u := f.user(t)
			dup := fullUser(f)
			dup.Email = u.Email
			f.wantErr(t, f.s.CreateUser(t.Context(), &dup), store.ErrConflict, "CreateUser with a taken email")
			other := f.user(t)
			other.Email = u.Email
			f.wantErr(t, f.s.UpdateUser(t.Context(), &other), store.ErrConflict, "UpdateUser to a taken email")
		}},
		{"UserMissing", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			_, err := f.s.User(ctx, f.id())
			f.wantErr(t, err, store.ErrNotFound, "User of a missing ID")
			_, err = f.s.UserByEmail(ctx, f.name("nobody")+"@example.com")
			f.wantErr(t, err, store.ErrNotFound, "UserByEmail of a missing email")
			u := fullUser(f)
			f.wantErr(t, f.s.UpdateUser(ctx, &u), store.ErrNotFound, "UpdateUser of a missing user")
			f.wantErr(t, f.s.DeleteUser(ctx, f.id()), store.ErrNotFound, "DeleteUser of a missing user")
		}},
		{"CountUsers", func(t *testing.T, f *fixture) {
			f = f.fresh(t)
			ctx := t.Context()
			n, err := f.s.CountUsers(ctx)
			f.must(t, err, "CountUsers")
			if n != 0 {
				t.Errorf("%s: CountUsers on an empty store = %d, want 0", f.s.Backend(), n)
			}
			u := f.user(t)
			f.user(t)
			f.user(t)
			n, err = f.s.CountUsers(ctx)
			f.must(t, err, "CountUsers")
			if n != 3 {
				t.Errorf("%s: CountUsers after 3 creates = %d, want 3", f.s.Backend(), n)
			}
			f.must(t, f.s.DeleteUser(ctx, u.ID), "DeleteUser")
			n, err = f.s.CountUsers(ctx)
			f.must(t, err, "CountUsers")
			if n != 2 {
				t.Errorf("%s: CountUsers after a delete = %d, want 2", f.s.Backend(), n)
			}
		}},
		{"DeleteUserCascades", testDeleteUserCascades},
		{"Membership", testMembership},
		{"Identity", testIdentity},
		{"Session", testSession},
		{"DeleteExpiredSessions", testDeleteExpiredSessions},
		{"APIToken", testAPIToken},
		{"Invitation", testInvitation},
		{"OneTimeToken", testOneTimeToken},
		{"OneTimeTokenConcurrentConsume", testOneTimeTokenRace},
	})
}

func testUser(t *testing.T, f *fixture) {
	ctx := t.Context()
	in := fullUser(f)
	want := in
	f.must(t, f.s.CreateUser(ctx, &in), "CreateUser")
	got, err := f.s.User(ctx, want.ID)
	f.must(t, err, "User")
	f.equal(t, "User after CreateUser", got, want)
	got, err = f.s.UserByEmail(ctx, want.Email)
	f.must(t, err, "UserByEmail")
	f.equal(t, "UserByEmail after CreateUser", got, want)

	// Every field but ID and CreatedAt is saved, including clearing LastLoginAt.
	upd := in
	upd.Email = f.name("changed") + "@example.com"
	upd.Name = "Grace Hopper"
	upd.PasswordHash = ""
	upd.EmailVerified = false
	upd.Disabled = false
	upd.LastLoginAt = nil
	upd.CreatedAt = at(-1000) // ignored
	f.must(t, f.s.UpdateUser(ctx, &upd), "UpdateUser")
	got, err = f.s.User(ctx, want.ID)
	f.must(t, err, "User")
	wantUpd := upd
	wantUpd.CreatedAt = want.CreatedAt
	f.equal(t, "User after UpdateUser", got, wantUpd)
	_, err = f.s.UserByEmail(ctx, want.Email)
	f.wantErr(t, err, store.ErrNotFound, "UserByEmail of the old email after UpdateUser")

	// And set again.
	upd.LastLoginAt = ptr(at(77))
	upd.CreatedAt = want.CreatedAt
	f.must(t, f.s.UpdateUser(ctx, &upd), "UpdateUser")
	got, err = f.s.UserByEmail(ctx, upd.Email)
	f.must(t, err, "UserByEmail")
	f.equal(t, "User after UpdateUser setting LastLoginAt", got, upd)

	f.must(t, f.s.DeleteUser(ctx, want.ID), "DeleteUser")
	_, err = f.s.User(ctx, want.ID)
	f.wantErr(t, err, store.ErrNotFound, "User after DeleteUser")
}

func testDeleteUserCascades(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	u, keep := f.user(t), f.user(t)
	for _, uid := range []string{u.ID, keep.ID} {
		m := fullMembership(f, tn.ID, uid)
		f.must(t, f.s.CreateMembership(ctx, &m), "CreateMembership")
	}
	id := fullIdentity(f, u.ID)
	f.must(t, f.s.CreateIdentity(ctx, &id), "CreateIdentity")
	sess := fullSession(f, u.ID)
	f.must(t, f.s.CreateSession(ctx, &sess), "CreateSession")
	keepSess := fullSession(f, keep.ID)
	f.must(t, f.s.CreateSession(ctx, &keepSess), "CreateSession")
	personal := fullAPIToken(f, tn.ID, u.ID)
	f.must(t, f.s.CreateAPIToken(ctx, &personal), "CreateAPIToken")
	tenantTok := fullAPIToken(f, tn.ID, "")
	tenantTok.CreatedBy = keep.ID
	f.must(t, f.s.CreateAPIToken(ctx, &tenantTok), "CreateAPIToken")

	f.must(t, f.s.DeleteUser(ctx, u.ID), "DeleteUser")

	_, err := f.s.Membership(ctx, tn.ID, u.ID)
	f.wantErr(t, err, store.ErrNotFound, "Membership of a deleted user")
	ms, err := f.s.UserMemberships(ctx, u.ID)
	f.must(t, err, "UserMemberships")
	if len(ms) != 0 {
		t.Errorf("%s: UserMemberships of a deleted user = %+v, want none", f.s.Backend(), ms)
	}
	_, err = f.s.IdentityBySubject(ctx, id.Provider, id.Subject)
	f.wantErr(t, err, store.ErrNotFound, "IdentityBySubject of a deleted user")
	_, err = f.s.SessionByTokenHash(ctx, sess.TokenHash)
	f.wantErr(t, err, store.ErrNotFound, "SessionByTokenHash of a deleted user")
	_, err = f.s.APITokenByHash(ctx, personal.Hash)
	f.wantErr(t, err, store.ErrNotFound, "APITokenByHash of a deleted user's personal token")

	// Other users and tenant tokens stay.
	_, err = f.s.Membership(ctx, tn.ID, keep.ID)
	f.must(t, err, "Membership of another user")
	_, err = f.s.SessionByTokenHash(ctx, keepSess.TokenHash)
	f.must(t, err, "SessionByTokenHash of another user")
	_, err = f.s.APITokenByHash(ctx, tenantTok.Hash)
	f.must(t, err, "APITokenByHash of a tenant token")
}

func testMembership(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn, tn2 := f.tenant(t), f.tenant(t)
	u := f.user(t)
	in := fullMembership(f, tn.ID, u.ID)
	want := in
	f.must(t, f.s.CreateMembership(ctx, &in), "CreateMembership")
	got, err := f.s.Membership(ctx, tn.ID, u.ID)
	f.must(t, err, "Membership")
	f.equal(t, "Membership after CreateMembership", got, want)

	dup := fullMembership(f, tn.ID, u.ID)
	dup.Role = store.RoleViewer
	f.wantErr(t, f.s.CreateMembership(ctx, &dup), store.ErrConflict, "CreateMembership of a user already in the tenant")

	second := fullMembership(f, tn2.ID, u.ID)
	second.Role = store.RoleOwner
	f.must(t, f.s.CreateMembership(ctx, &second), "CreateMembership in a second tenant")
	all, err := f.s.UserMemberships(ctx, u.ID)
	f.must(t, err, "UserMemberships")
	f.sameKeys(t, "UserMemberships", keys(all, func(m store.Membership) string { return m.TenantID }), []string{tn.ID, tn2.ID})
	for _, m := range all {
		if m.TenantID == tn2.ID {
			f.equal(t, "UserMemberships item", m, second)
		}
	}

	f.must(t, f.s.UpdateMembershipRole(ctx, tn.ID, u.ID, store.RoleAdmin), "UpdateMembershipRole")
	got, err = f.s.Membership(ctx, tn.ID, u.ID)
	f.must(t, err, "Membership")
	if got.Role != store.RoleAdmin {
		t.Errorf("%s: Role after UpdateMembershipRole = %q, want admin", f.s.Backend(), got.Role)
	}
	if got.ID != want.ID || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s: UpdateMembershipRole changed ID or CreatedAt: %+v", f.s.Backend(), got)
	}

	page, err := f.s.ListMemberships(ctx, tn.ID, store.ListOptions{})
	f.must(t, err, "ListMemberships")
	f.equalKeys(t, "ListMemberships", keys(page.Items, func(m store.Membership) string { return m.ID }), []string{want.ID})

	f.must(t, f.s.DeleteMembership(ctx, tn.ID, u.ID), "DeleteMembership")
	_, err = f.s.Membership(ctx, tn.ID, u.ID)
	f.wantErr(t, err, store.ErrNotFound, "Membership after DeleteMembership")
	_, err = f.s.Membership(ctx, tn2.ID, u.ID)
	f.must(t, err, "Membership in the other tenant after DeleteMembership")

	missing := f.id()
	_, err = f.s.Membership(ctx, tn.ID, missing)
	f.wantErr(t, err, store.ErrNotFound, "Membership of a missing user")
	f.wantErr(t, f.s.UpdateMembershipRole(ctx, tn.ID, missing, store.RoleViewer), store.ErrNotFound, "UpdateMembershipRole of a missing membership")
	f.wantErr(t, f.s.DeleteMembership(ctx, tn.ID, u.ID), store.ErrNotFound, "DeleteMembership twice")
}

func testIdentity(t *testing.T, f *fixture) {
	ctx := t.Context()
	u, other := f.user(t), f.user(t)
	in := fullIdentity(f, u.ID)
	want := in
	f.must(t, f.s.CreateIdentity(ctx, &in), "CreateIdentity")
	got, err := f.s.IdentityBySubject(ctx, want.Provider, want.Subject)
	f.must(t, err, "IdentityBySubject")
	f.equal(t, "Identity after CreateIdentity", got, want)

	dup := fullIdentity(f, other.ID)
	dup.Subject = want.Subject
	f.wantErr(t, f.s.CreateIdentity(ctx, &dup), store.ErrConflict, "CreateIdentity with a taken (provider, subject)")

	google := fullIdentity(f, u.ID)
	google.Provider = "google"
	google.Subject = want.Subject // same subject, other provider: allowed
	f.must(t, f.s.CreateIdentity(ctx, &google), "CreateIdentity with the same subject at another provider")

	list, err := f.s.UserIdentities(ctx, u.ID)
	f.must(t, err, "UserIdentities")
	f.sameKeys(t, "UserIdentities", keys(list, func(i store.Identity) string { return i.ID }), []string{want.ID, google.ID})

	_, err = f.s.IdentityBySubject(ctx, "gitlab", want.Subject)
	f.wantErr(t, err, store.ErrNotFound, "IdentityBySubject of another provider")
	f.wantErr(t, f.s.DeleteIdentity(ctx, other.ID, want.ID), store.ErrNotFound, "DeleteIdentity under another user")
	_, err = f.s.IdentityBySubject(ctx, want.Provider, want.Subject)
	f.must(t, err, "IdentityBySubject after DeleteIdentity under another user")
	f.must(t, f.s.DeleteIdentity(ctx, u.ID, want.ID), "DeleteIdentity")
	_, err = f.s.IdentityBySubject(ctx, want.Provider, want.Subject)
	f.wantErr(t, err, store.ErrNotFound, "IdentityBySubject after DeleteIdentity")
	f.wantErr(t, f.s.DeleteIdentity(ctx, u.ID, want.ID), store.ErrNotFound, "DeleteIdentity twice")
}

func testSession(t *testing.T, f *fixture) {
	ctx := t.Context()
	u := f.user(t)
	in := fullSession(f, u.ID)
	want := in
	f.must(t, f.s.CreateSession(ctx, &in), "CreateSession")
	got, err := f.s.SessionByTokenHash(ctx, want.TokenHash)
	f.must(t, err, "SessionByTokenHash")
	f.equal(t, "Session after CreateSession", got, want)

	dup := fullSession(f, u.ID)
	dup.TokenHash = want.TokenHash
	f.wantErr(t, f.s.CreateSession(ctx, &dup), store.ErrConflict, "CreateSession with a taken token hash")

	f.must(t, f.s.TouchSession(ctx, want.ID, at(20), at(50)), "TouchSession")
	got, err = f.s.SessionByTokenHash(ctx, want.TokenHash)
	f.must(t, err, "SessionByTokenHash")
	touched := want
	touched.LastSeenAt, touched.IdleExpiresAt = at(20), at(50)
	f.equal(t, "Session after TouchSession", got, touched)

	_, err = f.s.SessionByTokenHash(ctx, f.hash())
	f.wantErr(t, err, store.ErrNotFound, "SessionByTokenHash of an unknown hash")
	f.wantErr(t, f.s.TouchSession(ctx, f.id(), at(20), at(50)), store.ErrNotFound, "TouchSession of a missing session")

	f.must(t, f.s.DeleteSession(ctx, want.ID), "DeleteSession")
	_, err = f.s.SessionByTokenHash(ctx, want.TokenHash)
	f.wantErr(t, err, store.ErrNotFound, "SessionByTokenHash after DeleteSession")
	f.wantErr(t, f.s.DeleteSession(ctx, want.ID), store.ErrNotFound, "DeleteSession twice")

	// DeleteUserSessions removes every session of one user and no other.
	a1, a2, b1 := fullSession(f, u.ID), fullSession(f, u.ID), fullSession(f, f.user(t).ID)
	for _, s := range []*store.Session{&a1, &a2, &b1} {
		f.must(t, f.s.CreateSession(ctx, s), "CreateSession")
	}
	f.must(t, f.s.DeleteUserSessions(ctx, u.ID), "DeleteUserSessions")
	for _, s := range []store.Session{a1, a2} {
		_, err = f.s.SessionByTokenHash(ctx, s.TokenHash)
		f.wantErr(t, err, store.ErrNotFound, "SessionByTokenHash after DeleteUserSessions")
	}
	_, err = f.s.SessionByTokenHash(ctx, b1.TokenHash)
	f.must(t, err, "SessionByTokenHash of another user after DeleteUserSessions")
}

func testDeleteExpiredSessions(t *testing.T, f *fixture) {
	f = f.fresh(t) // the count must not include other cases' sessions
	ctx := t.Context()
	u := f.user(t)
	now := at(1000)
	mk := func(idle, abs int) store.Session {
		s := fullSession(f, u.ID)
		s.CreatedAt, s.LastSeenAt = at(0), at(1)
		s.IdleExpiresAt, s.ExpiresAt = now.Add(minutes(idle)), now.Add(minutes(abs))
		f.must(t, f.s.CreateSession(ctx, &s), "CreateSession")
		return s
	}
	idle := mk(-1, 100)     // idle expiry passed
	absolute := mk(100, -1) // absolute expiry passed
	both := mk(-5, -5)
	live := mk(1, 100)
	n, err := f.s.DeleteExpiredSessions(ctx, now)
	f.must(t, err, "DeleteExpiredSessions")
	if n != 3 {
		t.Errorf("%s: DeleteExpiredSessions = %d, want 3", f.s.Backend(), n)
	}
	for _, s := range []store.Session{idle, absolute, both} {
		_, err = f.s.SessionByTokenHash(ctx, s.TokenHash)
		f.wantErr(t, err, store.ErrNotFound, "SessionByTokenHash of an expired session after DeleteExpiredSessions")
	}
	got, err := f.s.SessionByTokenHash(ctx, live.TokenHash)
	f.must(t, err, "SessionByTokenHash of a live session")
	f.equal(t, "live session after DeleteExpiredSessions", got, live)
	n, err = f.s.DeleteExpiredSessions(ctx, now)
	f.must(t, err, "DeleteExpiredSessions")
	if n != 0 {
		t.Errorf("%s: second DeleteExpiredSessions = %d, want 0", f.s.Backend(), n)
	}
}

func testAPIToken(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	u := f.user(t)
	in := fullAPIToken(f, tn.ID, u.ID)
	want := in
	f.must(t, f.s.CreateAPIToken(ctx, &in), "CreateAPIToken")
	got, err := f.s.APIToken(ctx, tn.ID, want.ID)
	f.must(t, err, "APIToken")
	f.equal(t, "APIToken after CreateAPIToken", got, want)
	got, err = f.s.APITokenByHash(ctx, want.Hash)
	f.must(t, err, "APITokenByHash")
	f.equal(t, "APITokenByHash after CreateAPIToken", got, want)

	// A tenant token: no user, no expiry, never used, no scopes.
	bare := fullAPIToken(f, tn.ID, "")
	bare.ExpiresAt, bare.LastUsedAt, bare.Scopes = nil, nil, nil
	wantBare := bare
	f.must(t, f.s.CreateAPIToken(ctx, &bare), "CreateAPIToken (tenant token)")
	got, err = f.s.APIToken(ctx, tn.ID, wantBare.ID)
	f.must(t, err, "APIToken")
	f.equal(t, "tenant APIToken after CreateAPIToken", got, wantBare)

	dup := fullAPIToken(f, tn.ID, u.ID)
	dup.Hash = want.Hash
	f.wantErr(t, f.s.CreateAPIToken(ctx, &dup), store.ErrConflict, "CreateAPIToken with a taken hash")

	f.must(t, f.s.TouchAPIToken(ctx, tn.ID, want.ID, at(30)), "TouchAPIToken")
	got, err = f.s.APIToken(ctx, tn.ID, want.ID)
	f.must(t, err, "APIToken")
	touched := want
	touched.LastUsedAt = ptr(at(30))
	f.equal(t, "APIToken after TouchAPIToken", got, touched)

	page, err := f.s.ListAPITokens(ctx, tn.ID, store.ListOptions{})
	f.must(t, err, "ListAPITokens")
	f.equalKeys(t, "ListAPITokens", keys(page.Items, func(a store.APIToken) string { return a.ID }), []string{want.ID, wantBare.ID})
	if len(page.Items) == 2 {
		f.equal(t, "ListAPITokens item", page.Items[0], touched)
	}

	_, err = f.s.APITokenByHash(ctx, f.hash())
	f.wantErr(t, err, store.ErrNotFound, "APITokenByHash of an unknown hash")
	missing := f.id()
	_, err = f.s.APIToken(ctx, tn.ID, missing)
	f.wantErr(t, err, store.ErrNotFound, "APIToken of a missing ID")
	f.wantErr(t, f.s.TouchAPIToken(ctx, tn.ID, missing, at(30)), store.ErrNotFound, "TouchAPIToken of a missing token")

	f.must(t, f.s.DeleteAPIToken(ctx, tn.ID, want.ID), "DeleteAPIToken")
	_, err = f.s.APITokenByHash(ctx, want.Hash)
	f.wantErr(t, err, store.ErrNotFound, "APITokenByHash after DeleteAPIToken")
	f.wantErr(t, f.s.DeleteAPIToken(ctx, tn.ID, want.ID), store.ErrNotFound, "DeleteAPIToken twice")
}

func testInvitation(t *testing.T, f *fixture) {
	ctx := t.Context()
	tn := f.tenant(t)
	inviter, invitee := f.user(t), f.user(t)
	in := fullInvitation(f, tn.ID, inviter.ID)
	want := in
	f.must(t, f.s.CreateInvitation(ctx, &in), "CreateInvitation")
	got, err := f.s.Invitation(ctx, tn.ID, want.ID)
	f.must(t, err, "Invitation")
	f.equal(t, "Invitation after CreateInvitation", got, want)
	got, err = f.s.InvitationByTokenHash(ctx, want.TokenHash)
	f.must(t, err, "InvitationByTokenHash")
	f.equal(t, "InvitationByTokenHash after CreateInvitation", got, want)

	dup := fullInvitation(f, tn.ID, inviter.ID)
	dup.TokenHash = want.TokenHash
	f.wantErr(t, f.s.CreateInvitation(ctx, &dup), store.ErrConflict, "CreateInvitation with a taken token hash")

	f.must(t, f.s.AcceptInvitation(ctx, tn.ID, want.ID, invitee.ID, at(9)), "AcceptInvitation")
	got, err = f.s.Invitation(ctx, tn.ID, want.ID)
	f.must(t, err, "Invitation")
	accepted := want
	accepted.AcceptedAt, accepted.AcceptedBy = ptr(at(9)), invitee.ID
	f.equal(t, "Invitation after AcceptInvitation", got, accepted)
	f.wantErr(t, f.s.AcceptInvitation(ctx, tn.ID, want.ID, inviter.ID, at(10)), store.ErrConflict, "second AcceptInvitation")
	got, err = f.s.Invitation(ctx, tn.ID, want.ID)
	f.must(t, err, "Invitation")
	f.equal(t, "Invitation after a refused second accept", got, accepted)

	page, err := f.s.ListInvitations(ctx, tn.ID, store.ListOptions{})
	f.must(t, err, "ListInvitations")
	f.equalKeys(t, "ListInvitations", keys(page.Items, func(i store.Invitation) string { return i.ID }), []string{want.ID})

	// Two accepts racing: exactly one wins.
	if f.isolated(t) {
		race := fullInvitation(f, tn.ID, inviter.ID)
		f.must(t, f.s.CreateInvitation(ctx, &race), "CreateInvitation")
		errs := concurrently(2, func(i int) error {
			return f.s.AcceptInvitation(ctx, tn.ID, race.ID, invitee.ID, at(11+i))
		})
		f.exactlyOne(t, "concurrent AcceptInvitation", errs, store.ErrConflict)
	}

	missing := f.id()
	_, err = f.s.Invitation(ctx, tn.ID, missing)
	f.wantErr(t, err, store.ErrNotFound, "Invitation of a missing ID")
	_, err = f.s.InvitationByTokenHash(ctx, f.hash())
	f.wantErr(t, err, store.ErrNotFound, "InvitationByTokenHash of an unknown hash")
	f.wantErr(t, f.s.AcceptInvitation(ctx, tn.ID, missing, invitee.ID, at(9)), store.ErrNotFound, "AcceptInvitation of a missing invitation")

	f.must(t, f.s.DeleteInvitation(ctx, tn.ID, want.ID), "DeleteInvitation")
	_, err = f.s.Invitation(ctx, tn.ID, want.ID)
	f.wantErr(t, err, store.ErrNotFound, "Invitation after DeleteInvitation")
	f.wantErr(t, f.s.DeleteInvitation(ctx, tn.ID, want.ID), store.ErrNotFound, "DeleteInvitation twice")
}

func testOneTimeToken(t *testing.T, f *fixture) {
	ctx := t.Context()
	u := f.user(t)
	in := fullOneTimeToken(f, store.TokenPasswordReset, u.ID)
	want := in
	f.must(t, f.s.CreateOneTimeToken(ctx, &in), "CreateOneTimeToken")

	dup := fullOneTimeToken(f, store.TokenPasswordReset, u.ID)
	dup.Hash = want.Hash
	f.wantErr(t, f.s.CreateOneTimeToken(ctx, &dup), store.ErrConflict, "CreateOneTimeToken with a taken hash")

	_, err := f.s.ConsumeOneTimeToken(ctx, store.TokenEmailVerify, want.Hash, at(50))
	f.wantErr(t, err, store.ErrNotFound, "ConsumeOneTimeToken of another kind")
	_, err = f.s.ConsumeOneTimeToken(ctx, store.TokenPasswordReset, f.hash(), at(50))
	f.wantErr(t, err, store.ErrNotFound, "ConsumeOneTimeToken of an unknown hash")

	got, err := f.s.ConsumeOneTimeToken(ctx, store.TokenPasswordReset, want.Hash, at(50))
	f.must(t, err, "ConsumeOneTimeToken")
	used := want
	used.UsedAt = ptr(at(50))
	f.equal(t, "ConsumeOneTimeToken result", got, used)
	_, err = f.s.ConsumeOneTimeToken(ctx, store.TokenPasswordReset, want.Hash, at(51))
	f.wantErr(t, err, store.ErrNotFound, "second ConsumeOneTimeToken")

	expired := fullOneTimeToken(f, store.TokenEmailVerify, u.ID)
	f.must(t, f.s.CreateOneTimeToken(ctx, &expired), "CreateOneTimeToken")
	_, err = f.s.ConsumeOneTimeToken(ctx, store.TokenEmailVerify, expired.Hash, expired.ExpiresAt.Add(minutes(1)))
	f.wantErr(t, err, store.ErrNotFound, "ConsumeOneTimeToken after ExpiresAt")
	got, err = f.s.ConsumeOneTimeToken(ctx, store.TokenEmailVerify, expired.Hash, expired.ExpiresAt.Add(-minutes(1)))
	f.must(t, err, "ConsumeOneTimeToken before ExpiresAt (an expired attempt must not use it up)")
	if got.UserID != u.ID || got.Kind != store.TokenEmailVerify {
		t.Errorf("%s: ConsumeOneTimeToken returned %+v", f.s.Backend(), got)
	}

	// A setup token has no user.
	setup := fullOneTimeToken(f, store.TokenSetup, "")
	f.must(t, f.s.CreateOneTimeToken(ctx, &setup), "CreateOneTimeToken (setup)")
	got, err = f.s.ConsumeOneTimeToken(ctx, store.TokenSetup, setup.Hash, at(1))
	f.must(t, err, "ConsumeOneTimeToken (setup)")
	usedSetup := setup
	usedSetup.UsedAt = ptr(at(1))
	f.equal(t, "setup token after ConsumeOneTimeToken", got, usedSetup)

	// DeleteOneTimeTokens removes one kind of one user's unused tokens only.
	other := f.user(t)
	r1, r2 := fullOneTimeToken(f, store.TokenPasswordReset, u.ID), fullOneTimeToken(f, store.TokenPasswordReset, u.ID)
	keepKind := fullOneTimeToken(f, store.TokenEmailVerify, u.ID)
	keepUser := fullOneTimeToken(f, store.TokenPasswordReset, other.ID)
	for _, tok := range []*store.OneTimeToken{&r1, &r2, &keepKind, &keepUser} {
		f.must(t, f.s.CreateOneTimeToken(ctx, tok), "CreateOneTimeToken")
	}
	f.must(t, f.s.DeleteOneTimeTokens(ctx, store.TokenPasswordReset, u.ID), "DeleteOneTimeTokens")
	for _, tok := range []store.OneTimeToken{r1, r2} {
		_, err = f.s.ConsumeOneTimeToken(ctx, tok.Kind, tok.Hash, at(50))
		f.wantErr(t, err, store.ErrNotFound, "ConsumeOneTimeToken after DeleteOneTimeTokens")
	}
	for _, tok := range []store.OneTimeToken{keepKind, keepUser} {
		_, err = f.s.ConsumeOneTimeToken(ctx, tok.Kind, tok.Hash, at(50))
		f.must(t, err, "ConsumeOneTimeToken of a %s token of user %s after DeleteOneTimeTokens(password_reset, %s)", tok.Kind, tok.UserID, u.ID)
	}
	setup2 := fullOneTimeToken(f, store.TokenSetup, "")
	f.must(t, f.s.CreateOneTimeToken(ctx, &setup2), "CreateOneTimeToken (setup)")
	f.must(t, f.s.DeleteOneTimeTokens(ctx, store.TokenSetup, ""), "DeleteOneTimeTokens (setup)")
	_, err = f.s.ConsumeOneTimeToken(ctx, store.TokenSetup, setup2.Hash, at(50))
	f.wantErr(t, err, store.ErrNotFound, "ConsumeOneTimeToken of a setup token after DeleteOneTimeTokens(setup)")
}

func testOneTimeTokenRace(t *testing.T, f *fixture) {
	if !f.isolated(t) {
		return
	}
	ctx := t.Context()
	u := f.user(t)
	for round := range 5 {
		tok := fullOneTimeToken(f, store.TokenPasswordReset, u.ID)
		f.must(t, f.s.CreateOneTimeToken(ctx, &tok), "CreateOneTimeToken")
		errs := concurrently(2, func(int) error {
			_, err := f.s.ConsumeOneTimeToken(ctx, tok.Kind, tok.Hash, at(50))
			return err
		})
		f.exactlyOne(t, fmt.Sprintf("concurrent ConsumeOneTimeToken, round %d", round), errs, store.ErrNotFound)
	}
}

// concurrently runs fn(0..n-1) at once, each on its own goroutine, started together as far as
// the runtime allows, and returns their errors by index.
func concurrently(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// exactlyOne checks that one call succeeded and every other failed with loser.
func (f *fixture) exactlyOne(t *testing.T, what string, errs []error, loser error) {
	t.Helper()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, loser):
			t.Errorf("%s: %s: got error %v, want nil or %v", f.s.Backend(), what, err, loser)
		}
	}
	if ok != 1 {
		t.Errorf("%s: %s: %d calls succeeded, want exactly 1 (errors %v)", f.s.Backend(), what, ok, errs)
	}
}
