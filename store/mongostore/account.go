package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/espadmin/espadmin/store"
)

// Users.

type userDoc struct {
	ID            string     `bson:"_id"`
	Email         string     `bson:"email"`
	Name          string     `bson:"name"`
	PasswordHash  string     `bson:"password_hash"`
	EmailVerified bool       `bson:"email_verified"`
	Disabled      bool       `bson:"disabled"`
	LastLoginAt   *time.Time `bson:"last_login_at"`
	CreatedAt     time.Time  `bson:"created_at"`
	UpdatedAt     time.Time  `bson:"updated_at"`
}

func userToDoc(u *store.User) userDoc {
	return userDoc{
		ID: u.ID, Email: u.Email, Name: u.Name, PasswordHash: u.PasswordHash, EmailVerified: u.EmailVerified,
		Disabled: u.Disabled, LastLoginAt: store.TimestampPtr(u.LastLoginAt), CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
	}
}

func userFromDoc(d userDoc) store.User {
	return store.User{
		ID: d.ID, Email: d.Email, Name: d.Name, PasswordHash: d.PasswordHash, EmailVerified: d.EmailVerified,
		Disabled: d.Disabled, LastLoginAt: utcPtr(d.LastLoginAt), CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt),
	}
}

// CreateUser inserts u; a taken email is store.ErrConflict.
func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	store.PrepareCreate(&u.ID, &u.CreatedAt, &u.UpdatedAt)
	u.LastLoginAt = store.TimestampPtr(u.LastLoginAt)
	_, err := s.col(colUsers).InsertOne(ctx, userToDoc(u))
	return wrap(err, "create user %q", u.Email)
}

// User returns the user with id.
func (s *Store) User(ctx context.Context, id string) (store.User, error) {
	u, err := findOne(ctx, s.col(colUsers), bson.D{{Key: "_id", Value: id}}, userFromDoc)
	return u, wrap(err, "get user %q", id)
}

// UserByEmail returns the user with email, as stored (callers normalise).
func (s *Store) UserByEmail(ctx context.Context, email string) (store.User, error) {
	u, err := findOne(ctx, s.col(colUsers), bson.D{{Key: "email", Value: email}}, userFromDoc)
	return u, wrap(err, "get user by email %q", email)
}

// ListUsers pages through every user by ID.
func (s *Store) ListUsers(ctx context.Context, opts store.ListOptions) (store.Page[store.User], error) {
	p, err := listPage(ctx, s.col(colUsers), pageQuery{field: "_id", listOpts: opts}, userFromDoc,
		func(u store.User) string { return u.ID })
	return p, wrap(err, "list users")
}

// CountUsers counts every user.
func (s *Store) CountUsers(ctx context.Context) (int64, error) {
	n, err := s.col(colUsers).CountDocuments(ctx, bson.D{})
	return n, wrap(err, "count users")
}

// UpdateUser saves every field but ID and CreatedAt and sets UpdatedAt.
func (s *Store) UpdateUser(ctx context.Context, u *store.User) error {
	now := store.Now()
	u.LastLoginAt = store.TimestampPtr(u.LastLoginAt)
	res, err := s.col(colUsers).UpdateOne(ctx, bson.D{{Key: "_id", Value: u.ID}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "email", Value: u.Email},
		{Key: "name", Value: u.Name},
		{Key: "password_hash", Value: u.PasswordHash},
		{Key: "email_verified", Value: u.EmailVerified},
		{Key: "disabled", Value: u.Disabled},
		{Key: "last_login_at", Value: u.LastLoginAt},
		{Key: "updated_at", Value: now},
	}}})
	if err != nil {
		return wrap(err, "update user %q", u.ID)
	}
	if res.MatchedCount == 0 {
		return notFound("update user %q", u.ID)
	}
	u.UpdatedAt = now
	return nil
}

// DeleteUser removes the user's memberships, identities, sessions, API tokens and one-time
// tokens, then the user. The user document goes last so an interrupted deletion can be
// retried.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	ok, err := exists(ctx, s.col(colUsers), bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return wrap(err, "delete user %q", id)
	}
	if !ok {
		return notFound("delete user %q", id)
	}
	for _, name := range []string{colMemberships, colIdentities, colSessions, colAPITokens, colOneTimeTokens} {
		if _, err := s.col(name).DeleteMany(ctx, bson.D{{Key: "user_id", Value: id}}); err != nil {
			return wrap(err, "delete user %q: %s", id, name)
		}
	}
	res, err := s.col(colUsers).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return wrap(err, "delete user %q", id)
	}
	if res.DeletedCount == 0 {
		return notFound("delete user %q", id)
	}
	return nil
}

// Memberships.

type membershipDoc struct {
	ID        string    `bson:"_id"`
	TenantID  string    `bson:"tenant_id"`
	UserID    string    `bson:"user_id"`
	Role      string    `bson:"role"`
	CreatedAt time.Time `bson:"created_at"`
	UpdatedAt time.Time `bson:"updated_at"`
}

func membershipFromDoc(d membershipDoc) store.Membership {
	return store.Membership{
		ID: d.ID, TenantID: d.TenantID, UserID: d.UserID, Role: store.Role(d.Role),
		CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt),
	}
}

func membershipKey(tenantID, userID string) bson.D {
	return bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "user_id", Value: userID}}
}

// CreateMembership inserts m; a user already in the tenant is store.ErrConflict.
func (s *Store) CreateMembership(ctx context.Context, m *store.Membership) error {
	store.PrepareCreate(&m.ID, &m.CreatedAt, &m.UpdatedAt)
	_, err := s.col(colMemberships).InsertOne(ctx, membershipDoc{
		ID: m.ID, TenantID: m.TenantID, UserID: m.UserID, Role: string(m.Role), CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	})
	return wrap(err, "create membership of user %q in tenant %q", m.UserID, m.TenantID)
}

// Membership returns userID's membership in tenantID.
func (s *Store) Membership(ctx context.Context, tenantID, userID string) (store.Membership, error) {
	m, err := findOne(ctx, s.col(colMemberships), membershipKey(tenantID, userID), membershipFromDoc)
	return m, wrap(err, "get membership of user %q in tenant %q", userID, tenantID)
}

// ListMemberships pages through a tenant's memberships by ID.
func (s *Store) ListMemberships(ctx context.Context, tenantID string, opts store.ListOptions) (store.Page[store.Membership], error) {
	p, err := listPage(ctx, s.col(colMemberships),
		pageQuery{filter: bson.D{{Key: "tenant_id", Value: tenantID}}, field: "_id", listOpts: opts},
		membershipFromDoc, func(m store.Membership) string { return m.ID })
	return p, wrap(err, "list memberships of tenant %q", tenantID)
}

// UserMemberships lists every membership of a user, oldest first.
func (s *Store) UserMemberships(ctx context.Context, userID string) ([]store.Membership, error) {
	ms, err := findAll(ctx, s.col(colMemberships), bson.D{{Key: "user_id", Value: userID}}, membershipFromDoc,
		options.Find().SetSort(asc("_id")))
	return ms, wrap(err, "list memberships of user %q", userID)
}

// UpdateMembershipRole changes the member's role.
func (s *Store) UpdateMembershipRole(ctx context.Context, tenantID, userID string, role store.Role) error {
	res, err := s.col(colMemberships).UpdateOne(ctx, membershipKey(tenantID, userID), bson.D{{Key: "$set", Value: bson.D{
		{Key: "role", Value: string(role)},
		{Key: "updated_at", Value: store.Now()},
	}}})
	if err != nil {
		return wrap(err, "update role of user %q in tenant %q", userID, tenantID)
	}
	if res.MatchedCount == 0 {
		return notFound("update role of user %q in tenant %q", userID, tenantID)
	}
	return nil
}

// DeleteMembership removes userID from tenantID.
func (s *Store) DeleteMembership(ctx context.Context, tenantID, userID string) error {
	res, err := s.col(colMemberships).DeleteOne(ctx, membershipKey(tenantID, userID))
	if err != nil {
		return wrap(err, "delete membership of user %q in tenant %q", userID, tenantID)
	}
	if res.DeletedCount == 0 {
		return notFound("delete membership of user %q in tenant %q", userID, tenantID)
	}
	return nil
}

// Identities.

type identityDoc struct {
	ID        string    `bson:"_id"`
	UserID    string    `bson:"user_id"`
	Provider  string    `bson:"provider"`
	Subject   string    `bson:"subject"`
	Email     string    `bson:"email"`
	CreatedAt time.Time `bson:"created_at"`
}

func identityFromDoc(d identityDoc) store.Identity {
	return store.Identity{ID: d.ID, UserID: d.UserID, Provider: d.Provider, Subject: d.Subject, Email: d.Email, CreatedAt: utc(d.CreatedAt)}
}

// CreateIdentity inserts i; a (Provider, Subject) already linked is store.ErrConflict.
func (s *Store) CreateIdentity(ctx context.Context, i *store.Identity) error {
	store.PrepareCreate(&i.ID, &i.CreatedAt, nil)
	_, err := s.col(colIdentities).InsertOne(ctx, identityDoc{
		ID: i.ID, UserID: i.UserID, Provider: i.Provider, Subject: i.Subject, Email: i.Email, CreatedAt: i.CreatedAt,
	})
	return wrap(err, "create %s identity %q", i.Provider, i.Subject)
}

// IdentityBySubject returns the identity a provider knows as subject.
func (s *Store) IdentityBySubject(ctx context.Context, provider, subject string) (store.Identity, error) {
	i, err := findOne(ctx, s.col(colIdentities),
		bson.D{{Key: "provider", Value: provider}, {Key: "subject", Value: subject}}, identityFromDoc)
	return i, wrap(err, "get %s identity %q", provider, subject)
}

// UserIdentities lists a user's identities, oldest first.
func (s *Store) UserIdentities(ctx context.Context, userID string) ([]store.Identity, error) {
	is, err := findAll(ctx, s.col(colIdentities), bson.D{{Key: "user_id", Value: userID}}, identityFromDoc,
		options.Find().SetSort(asc("_id")))
	return is, wrap(err, "list identities of user %q", userID)
}

// DeleteIdentity removes one of userID's identities.
func (s *Store) DeleteIdentity(ctx context.Context, userID, id string) error {
	res, err := s.col(colIdentities).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "user_id", Value: userID}})
	if err != nil {
		return wrap(err, "delete identity %q of user %q", id, userID)
	}
	if res.DeletedCount == 0 {
		return notFound("delete identity %q of user %q", id, userID)
	}
	return nil
}

// Sessions.

type sessionDoc struct {
	ID            string    `bson:"_id"`
	TokenHash     []byte    `bson:"token_hash"`
	UserID        string    `bson:"user_id"`
	CSRFToken     string    `bson:"csrf_token"`
	UserAgent     string    `bson:"user_agent"`
	RemoteAddr    string    `bson:"remote_addr"`
	CreatedAt     time.Time `bson:"created_at"`
	LastSeenAt    time.Time `bson:"last_seen_at"`
	IdleExpiresAt time.Time `bson:"idle_expires_at"`
	ExpiresAt     time.Time `bson:"expires_at"`
}

func sessionFromDoc(d sessionDoc) store.Session {
	return store.Session{
		ID: d.ID, TokenHash: d.TokenHash, UserID: d.UserID, CSRFToken: d.CSRFToken, UserAgent: d.UserAgent,
		RemoteAddr: d.RemoteAddr, CreatedAt: utc(d.CreatedAt), LastSeenAt: utc(d.LastSeenAt),
		IdleExpiresAt: utc(d.IdleExpiresAt), ExpiresAt: utc(d.ExpiresAt),
	}
}

// CreateSession inserts sess; a duplicate token hash is store.ErrConflict.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session) error {
	store.PrepareCreate(&sess.ID, &sess.CreatedAt, nil)
	sess.LastSeenAt = store.Timestamp(sess.LastSeenAt)
	sess.IdleExpiresAt = store.Timestamp(sess.IdleExpiresAt)
	sess.ExpiresAt = store.Timestamp(sess.ExpiresAt)
	_, err := s.col(colSessions).InsertOne(ctx, sessionDoc{
		ID: sess.ID, TokenHash: sess.TokenHash, UserID: sess.UserID, CSRFToken: sess.CSRFToken, UserAgent: sess.UserAgent,
		RemoteAddr: sess.RemoteAddr, CreatedAt: sess.CreatedAt, LastSeenAt: sess.LastSeenAt,
		IdleExpiresAt: sess.IdleExpiresAt, ExpiresAt: sess.ExpiresAt,
	})
	return wrap(err, "create session for user %q", sess.UserID)
}

// SessionByTokenHash returns the session whose token hashes to hash. It does not check
// expiry; the caller compares the times.
func (s *Store) SessionByTokenHash(ctx context.Context, hash []byte) (store.Session, error) {
	sess, err := findOne(ctx, s.col(colSessions), bson.D{{Key: "token_hash", Value: hash}}, sessionFromDoc)
	return sess, wrap(err, "get session by token")
}

// TouchSession records activity and pushes the idle expiry forward.
func (s *Store) TouchSession(ctx context.Context, id string, lastSeen, idleExpiresAt time.Time) error {
	res, err := s.col(colSessions).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "last_seen_at", Value: store.Timestamp(lastSeen)},
		{Key: "idle_expires_at", Value: store.Timestamp(idleExpiresAt)},
	}}})
	if err != nil {
		return wrap(err, "touch session %q", id)
	}
	if res.MatchedCount == 0 {
		return notFound("touch session %q", id)
	}
	return nil
}

// DeleteSession removes one session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	res, err := s.col(colSessions).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return wrap(err, "delete session %q", id)
	}
	if res.DeletedCount == 0 {
		return notFound("delete session %q", id)
	}
	return nil
}

// DeleteUserSessions removes every session of a user (sign out everywhere).
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) error {
	_, err := s.col(colSessions).DeleteMany(ctx, bson.D{{Key: "user_id", Value: userID}})
	return wrap(err, "delete sessions of user %q", userID)
}

// DeleteExpiredSessions removes the sessions that ended at or before now, by either expiry.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	now = store.Timestamp(now)
	res, err := s.col(colSessions).DeleteMany(ctx, bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lte", Value: now}}}},
		bson.D{{Key: "idle_expires_at", Value: bson.D{{Key: "$lte", Value: now}}}},
	}}})
	if err != nil {
		return 0, wrap(err, "delete expired sessions")
	}
	return res.DeletedCount, nil
}

// API tokens.

type apiTokenDoc struct {
	ID         string     `bson:"_id"`
	TenantID   string     `bson:"tenant_id"`
	UserID     string     `bson:"user_id"`
	Name       string     `bson:"name"`
	Prefix     string     `bson:"prefix"`
	Hash       []byte     `bson:"hash"`
	Scopes     []string   `bson:"scopes"`
	ExpiresAt  *time.Time `bson:"expires_at"`
	LastUsedAt *time.Time `bson:"last_used_at"`
	CreatedBy  string     `bson:"created_by"`
	CreatedAt  time.Time  `bson:"created_at"`
}

func apiTokenFromDoc(d apiTokenDoc) store.APIToken {
	return store.APIToken{
		ID: d.ID, TenantID: d.TenantID, UserID: d.UserID, Name: d.Name, Prefix: d.Prefix, Hash: d.Hash,
		Scopes: d.Scopes, ExpiresAt: utcPtr(d.ExpiresAt), LastUsedAt: utcPtr(d.LastUsedAt),
		CreatedBy: d.CreatedBy, CreatedAt: utc(d.CreatedAt),
	}
}

// CreateAPIToken inserts t; a duplicate hash is store.ErrConflict.
func (s *Store) CreateAPIToken(ctx context.Context, t *store.APIToken) error {
	store.PrepareCreate(&t.ID, &t.CreatedAt, nil)
	t.ExpiresAt = store.TimestampPtr(t.ExpiresAt)
	t.LastUsedAt = store.TimestampPtr(t.LastUsedAt)
	_, err := s.col(colAPITokens).InsertOne(ctx, apiTokenDoc{
		ID: t.ID, TenantID: t.TenantID, UserID: t.UserID, Name: t.Name, Prefix: t.Prefix, Hash: t.Hash,
		Scopes: t.Scopes, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt,
	})
	return wrap(err, "create API token %q in tenant %q", t.Name, t.TenantID)
}

// APITokenByHash returns the token whose secret hashes to hash, with its tenant.
func (s *Store) APITokenByHash(ctx context.Context, hash []byte) (store.APIToken, error) {
	t, err := findOne(ctx, s.col(colAPITokens), bson.D{{Key: "hash", Value: hash}}, apiTokenFromDoc)
	return t, wrap(err, "get API token by hash")
}

// APIToken returns one of a tenant's tokens.
func (s *Store) APIToken(ctx context.Context, tenantID, id string) (store.APIToken, error) {
	t, err := findOne(ctx, s.col(colAPITokens), bson.D{{Key: "_id", Value: id}, {Key: "tenant_id", Value: tenantID}}, apiTokenFromDoc)
	return t, wrap(err, "get API token %q", id)
}

// ListAPITokens pages through a tenant's tokens by ID.
func (s *Store) ListAPITokens(ctx context.Context, tenantID string, opts store.ListOptions) (store.Page[store.APIToken], error) {
	p, err := listPage(ctx, s.col(colAPITokens),
		pageQuery{filter: bson.D{{Key: "tenant_id", Value: tenantID}}, field: "_id", listOpts: opts},
		apiTokenFromDoc, func(t store.APIToken) string { return t.ID })
	return p, wrap(err, "list API tokens of tenant %q", tenantID)
}

// TouchAPIToken records when the token was last used.
func (s *Store) TouchAPIToken(ctx context.Context, tenantID, id string, at time.Time) error {
	res, err := s.col(colAPITokens).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "tenant_id", Value: tenantID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_used_at", Value: store.Timestamp(at)}}}})
	if err != nil {
		return wrap(err, "touch API token %q", id)
	}
	if res.MatchedCount == 0 {
		return notFound("touch API token %q", id)
	}
	return nil
}

// DeleteAPIToken removes one of a tenant's tokens.
func (s *Store) DeleteAPIToken(ctx context.Context, tenantID, id string) error {
	res, err := s.col(colAPITokens).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "tenant_id", Value: tenantID}})
	if err != nil {
		return wrap(err, "delete API token %q", id)
	}
	if res.DeletedCount == 0 {
		return notFound("delete API token %q", id)
	}
	return nil
}

// Invitations.

type invitationDoc struct {
	ID         string     `bson:"_id"`
	TenantID   string     `bson:"tenant_id"`
	Email      string     `bson:"email"`
	Role       string     `bson:"role"`
	TokenHash  []byte     `bson:"token_hash"`
	InvitedBy  string     `bson:"invited_by"`
	ExpiresAt  time.Time  `bson:"expires_at"`
	AcceptedAt *time.Time `bson:"accepted_at"`
	AcceptedBy string     `bson:"accepted_by"`
	CreatedAt  time.Time  `bson:"created_at"`
}

func invitationFromDoc(d invitationDoc) store.Invitation {
	return store.Invitation{
		ID: d.ID, TenantID: d.TenantID, Email: d.Email, Role: store.Role(d.Role), TokenHash: d.TokenHash,
		InvitedBy: d.InvitedBy, ExpiresAt: utc(d.ExpiresAt), AcceptedAt: utcPtr(d.AcceptedAt),
		AcceptedBy: d.AcceptedBy, CreatedAt: utc(d.CreatedAt),
	}
}

// CreateInvitation inserts inv; a duplicate token hash is store.ErrConflict.
func (s *Store) CreateInvitation(ctx context.Context, inv *store.Invitation) error {
	store.PrepareCreate(&inv.ID, &inv.CreatedAt, nil)
	inv.ExpiresAt = store.Timestamp(inv.ExpiresAt)
	inv.AcceptedAt = store.TimestampPtr(inv.AcceptedAt)
	_, err := s.col(colInvitations).InsertOne(ctx, invitationDoc{
		ID: inv.ID, TenantID: inv.TenantID, Email: inv.Email, Role: string(inv.Role), TokenHash: inv.TokenHash,
		InvitedBy: inv.InvitedBy, ExpiresAt: inv.ExpiresAt, AcceptedAt: inv.AcceptedAt, AcceptedBy: inv.AcceptedBy,
		CreatedAt: inv.CreatedAt,
	})
	return wrap(err, "create invitation of %q to tenant %q", inv.Email, inv.TenantID)
}

// InvitationByTokenHash returns the invitation whose link token hashes to hash.
func (s *Store) InvitationByTokenHash(ctx context.Context, hash []byte) (store.Invitation, error) {
	inv, err := findOne(ctx, s.col(colInvitations), bson.D{{Key: "token_hash", Value: hash}}, invitationFromDoc)
	return inv, wrap(err, "get invitation by token")
}

// Invitation returns one of a tenant's invitations.
func (s *Store) Invitation(ctx context.Context, tenantID, id string) (store.Invitation, error) {
	inv, err := findOne(ctx, s.col(colInvitations), bson.D{{Key: "_id", Value: id}, {Key: "tenant_id", Value: tenantID}}, invitationFromDoc)
	return inv, wrap(err, "get invitation %q", id)
}

// ListInvitations pages through a tenant's invitations by ID.
func (s *Store) ListInvitations(ctx context.Context, tenantID string, opts store.ListOptions) (store.Page[store.Invitation], error) {
	p, err := listPage(ctx, s.col(colInvitations),
		pageQuery{filter: bson.D{{Key: "tenant_id", Value: tenantID}}, field: "_id", listOpts: opts},
		invitationFromDoc, func(i store.Invitation) string { return i.ID })
	return p, wrap(err, "list invitations of tenant %q", tenantID)
}

// AcceptInvitation marks the invitation accepted by userID. The filter requires it to be
// unaccepted, so of two concurrent accepts one matches and the other gets store.ErrConflict.
func (s *Store) AcceptInvitation(ctx context.Context, tenantID, id, userID string, at time.Time) error {
	key := bson.D{{Key: "_id", Value: id}, {Key: "tenant_id", Value: tenantID}}
	filter := append(append(bson.D{}, key...), bson.E{Key: "accepted_at", Value: nil})
	res, err := s.col(colInvitations).UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
		{Key: "accepted_at", Value: orNow(at)},
		{Key: "accepted_by", Value: userID},
	}}})
	if err != nil {
		return wrap(err, "accept invitation %q", id)
	}
	if res.MatchedCount == 1 {
		return nil
	}
	ok, err := exists(ctx, s.col(colInvitations), key)
	if err != nil {
		return wrap(err, "accept invitation %q", id)
	}
	if ok {
		return conflict("accept invitation %q: already accepted", id)
	}
	return notFound("accept invitation %q", id)
}

// DeleteInvitation removes one of a tenant's invitations.
func (s *Store) DeleteInvitation(ctx context.Context, tenantID, id string) error {
	res, err := s.col(colInvitations).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "tenant_id", Value: tenantID}})
	if err != nil {
		return wrap(err, "delete invitation %q", id)
	}
	if res.DeletedCount == 0 {
		return notFound("delete invitation %q", id)
	}
	return nil
}

// One-time tokens.

type oneTimeTokenDoc struct {
	ID        string     `bson:"_id"`
	Kind      string     `bson:"kind"`
	Hash      []byte     `bson:"hash"`
	UserID    string     `bson:"user_id"`
	ExpiresAt time.Time  `bson:"expires_at"`
	UsedAt    *time.Time `bson:"used_at"`
	CreatedAt time.Time  `bson:"created_at"`
}

func oneTimeTokenFromDoc(d oneTimeTokenDoc) store.OneTimeToken {
	return store.OneTimeToken{
		ID: d.ID, Kind: store.OneTimeTokenKind(d.Kind), Hash: d.Hash, UserID: d.UserID,
		ExpiresAt: utc(d.ExpiresAt), UsedAt: utcPtr(d.UsedAt), CreatedAt: utc(d.CreatedAt),
	}
}

// CreateOneTimeToken inserts t; a duplicate hash is store.ErrConflict.
func (s *Store) CreateOneTimeToken(ctx context.Context, t *store.OneTimeToken) error {
	store.PrepareCreate(&t.ID, &t.CreatedAt, nil)
	t.ExpiresAt = store.Timestamp(t.ExpiresAt)
	t.UsedAt = store.TimestampPtr(t.UsedAt)
	_, err := s.col(colOneTimeTokens).InsertOne(ctx, oneTimeTokenDoc{
		ID: t.ID, Kind: string(t.Kind), Hash: t.Hash, UserID: t.UserID, ExpiresAt: t.ExpiresAt, UsedAt: t.UsedAt, CreatedAt: t.CreatedAt,
	})
	return wrap(err, "create %s token", t.Kind)
}

// ConsumeOneTimeToken marks the token used in one conditional update whose filter requires it
// to be of kind, unused and unexpired at now, so it works exactly once under any race.
func (s *Store) ConsumeOneTimeToken(ctx context.Context, kind store.OneTimeTokenKind, hash []byte, now time.Time) (store.OneTimeToken, error) {
	now = orNow(now)
	var doc oneTimeTokenDoc
	err := s.col(colOneTimeTokens).FindOneAndUpdate(ctx,
		bson.D{
			{Key: "hash", Value: hash},
			{Key: "kind", Value: string(kind)},
			{Key: "used_at", Value: nil},
			{Key: "expires_at", Value: bson.D{{Key: "$gt", Value: now}}},
		},
		bson.D{{Key: "$set", Value: bson.D{{Key: "used_at", Value: now}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After),
	).Decode(&doc)
	if err != nil {
		return store.OneTimeToken{}, wrap(err, "consume %s token", kind)
	}
	return oneTimeTokenFromDoc(doc), nil
}

// DeleteOneTimeTokens removes the unused tokens of one kind for a user ("" for setup tokens).
func (s *Store) DeleteOneTimeTokens(ctx context.Context, kind store.OneTimeTokenKind, userID string) error {
	_, err := s.col(colOneTimeTokens).DeleteMany(ctx, bson.D{
		{Key: "kind", Value: string(kind)},
		{Key: "user_id", Value: userID},
		{Key: "used_at", Value: nil},
	})
	return wrap(err, "delete %s tokens of user %q", kind, userID)
}
