package store

import (
	"context"
	"time"
)

// User is a person who signs in. Users are global: one account may belong to several tenants
// through memberships. Email is stored as given; callers normalise it (lower case, trimmed)
// before every write and lookup, and it is unique.
type User struct {
	ID            string
	Email         string
	Name          string
	PasswordHash  string // argon2id or bcrypt in their standard encodings; empty for OAuth-only users
	EmailVerified bool
	Disabled      bool
	LastLoginAt   *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// UserStore manages user accounts.
type UserStore interface {
	// CreateUser inserts u; a taken email is ErrConflict.
	CreateUser(ctx context.Context, u *User) error
	User(ctx context.Context, id string) (User, error)
	UserByEmail(ctx context.Context, email string) (User, error)
	ListUsers(ctx context.Context, opts ListOptions) (Page[User], error)
	// CountUsers tells whether the install still needs its first owner.
	CountUsers(ctx context.Context) (int64, error)
	// UpdateUser saves every field but ID and CreatedAt and sets UpdatedAt.
	UpdateUser(ctx context.Context, u *User) error
	// DeleteUser removes the user with their memberships, identities, sessions and tokens.
	DeleteUser(ctx context.Context, id string) error
}

// Role is what a member may do in a tenant. The permission table lives in the server.
type Role string

// Roles, from most to least privileged.
const (
	RoleOwner     Role = "owner"
	RoleAdmin     Role = "admin"
	RoleDeveloper Role = "developer"
	RoleViewer    Role = "viewer"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleOwner, RoleAdmin, RoleDeveloper, RoleViewer:
		return true
	}
	return false
}

// Membership gives a user one role in one tenant; (TenantID, UserID) is unique.
type Membership struct {
	ID        string
	TenantID  string
	UserID    string
	Role      Role
	CreatedAt time.Time
	UpdatedAt time.Time
}

// MembershipStore manages who belongs to which tenant.
type MembershipStore interface {
	// CreateMembership inserts m; a user already in the tenant is ErrConflict.
	CreateMembership(ctx context.Context, m *Membership) error
	Membership(ctx context.Context, tenantID, userID string) (Membership, error)
	ListMemberships(ctx context.Context, tenantID string, opts ListOptions) (Page[Membership], error)
	// UserMemberships lists every tenant membership of a user (a user belongs to few tenants).
	UserMemberships(ctx context.Context, userID string) ([]Membership, error)
	UpdateMembershipRole(ctx context.Context, tenantID, userID string, role Role) error
	DeleteMembership(ctx context.Context, tenantID, userID string) error
}

// Identity links an OAuth or OpenID Connect account to a user. (Provider, Subject) is unique.
type Identity struct {
	ID        string
	UserID    string
	Provider  string // "github", "google", "gitlab", "oidc"
	Subject   string // the provider's stable user ID
	Email     string
	CreatedAt time.Time
}

// IdentityStore manages OAuth identities.
type IdentityStore interface {
	CreateIdentity(ctx context.Context, i *Identity) error
	IdentityBySubject(ctx context.Context, provider, subject string) (Identity, error)
	UserIdentities(ctx context.Context, userID string) ([]Identity, error)
	DeleteIdentity(ctx context.Context, userID, id string) error
}

// Session is a browser session. Only the SHA-256 of the cookie's random token is stored, so a
// database leak yields no usable cookie and any replica can check a cookie. A session ends at
// IdleExpiresAt (pushed forward by TouchSession) or ExpiresAt, whichever comes first.
type Session struct {
	ID            string
	TokenHash     []byte
	UserID        string
	CSRFToken     string
	UserAgent     string
	RemoteAddr    string
	CreatedAt     time.Time
	LastSeenAt    time.Time
	IdleExpiresAt time.Time
	ExpiresAt     time.Time
}

// SessionStore manages browser sessions.
type SessionStore interface {
	CreateSession(ctx context.Context, s *Session) error
	// SessionByTokenHash is an entry point: it is how a request proves who it is.
	SessionByTokenHash(ctx context.Context, hash []byte) (Session, error)
	TouchSession(ctx context.Context, id string, lastSeen, idleExpiresAt time.Time) error
	DeleteSession(ctx context.Context, id string) error
	DeleteUserSessions(ctx context.Context, userID string) error
	// DeleteExpiredSessions removes sessions past either expiry and returns how many.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)
}

// Token scopes.
const (
	ScopeDevicesRead   = "devices:read"
	ScopeDevicesWrite  = "devices:write"
	ScopeCommandsWrite = "commands:write"
	ScopeConfigWrite   = "config:write"
	ScopeReleasesWrite = "releases:write"
	ScopeAdmin         = "admin"
)

// APIToken authenticates scripts and CI pipelines in one tenant. A personal token acts as its
// UserID (limited by that member's role and the scopes); a tenant token has no UserID. Only
// the SHA-256 of the token is stored.
type APIToken struct {
	ID         string
	TenantID   string
	UserID     string // empty for a tenant token
	Name       string
	Prefix     string // the first characters of the token, shown so people can tell tokens apart
	Hash       []byte
	Scopes     []string
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	CreatedBy  string
	CreatedAt  time.Time
}

// APITokenStore manages API tokens.
type APITokenStore interface {
	// CreateAPIToken inserts t; a duplicate hash is ErrConflict.
	CreateAPIToken(ctx context.Context, t *APIToken) error
	// APITokenByHash is an entry point: it returns the token with its tenant.
	APITokenByHash(ctx context.Context, hash []byte) (APIToken, error)
	APIToken(ctx context.Context, tenantID, id string) (APIToken, error)
	ListAPITokens(ctx context.Context, tenantID string, opts ListOptions) (Page[APIToken], error)
	TouchAPIToken(ctx context.Context, tenantID, id string, at time.Time) error
	DeleteAPIToken(ctx context.Context, tenantID, id string) error
}

// Invitation asks an email address to join a tenant with a role. The link's token is stored
// as a SHA-256 hash; the link is single-use and expires.
type Invitation struct {
	ID         string
	TenantID   string
	Email      string
	Role       Role
	TokenHash  []byte
	InvitedBy  string
	ExpiresAt  time.Time
	AcceptedAt *time.Time
	AcceptedBy string
	CreatedAt  time.Time
}

// InvitationStore manages invitations.
type InvitationStore interface {
	CreateInvitation(ctx context.Context, inv *Invitation) error
	// InvitationByTokenHash is an entry point: the invitee is not yet a member.
	InvitationByTokenHash(ctx context.Context, hash []byte) (Invitation, error)
	Invitation(ctx context.Context, tenantID, id string) (Invitation, error)
	ListInvitations(ctx context.Context, tenantID string, opts ListOptions) (Page[Invitation], error)
	// AcceptInvitation marks it used, atomically: a second accept is ErrConflict.
	AcceptInvitation(ctx context.Context, tenantID, id, userID string, at time.Time) error
	DeleteInvitation(ctx context.Context, tenantID, id string) error
}

// OneTimeTokenKind says what a one-time token unlocks.
type OneTimeTokenKind string

// One-time token kinds.
const (
	TokenSetup         OneTimeTokenKind = "setup"          // creates the install's first owner
	TokenPasswordReset OneTimeTokenKind = "password_reset" // sets a new password for UserID
	TokenEmailVerify   OneTimeTokenKind = "email_verify"   // marks UserID's email verified
)

// OneTimeToken is a random secret sent in a link, stored as its SHA-256, usable once before
// ExpiresAt.
type OneTimeToken struct {
	ID        string
	Kind      OneTimeTokenKind
	Hash      []byte
	UserID    string // empty for setup tokens
	ExpiresAt time.Time
	UsedAt    *time.Time
	CreatedAt time.Time
}

// OneTimeTokenStore manages one-time tokens.
type OneTimeTokenStore interface {
	CreateOneTimeToken(ctx context.Context, t *OneTimeToken) error
	// ConsumeOneTimeToken marks the token used and returns it, atomically. A token that is
	// missing, of another kind, already used or expired at now is ErrNotFound, so it works
	// exactly once even when two requests race.
	ConsumeOneTimeToken(ctx context.Context, kind OneTimeTokenKind, hash []byte, now time.Time) (OneTimeToken, error)
	// DeleteOneTimeTokens removes the unused tokens of one kind for a user ("" for setup).
	DeleteOneTimeTokens(ctx context.Context, kind OneTimeTokenKind, userID string) error
}
