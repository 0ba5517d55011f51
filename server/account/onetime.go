package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/espadmin/espadmin/store"
)

// newOneTimeToken replaces userID's unused tokens of kind with a new one and returns its
// secret.
func (s *Service) newOneTimeToken(ctx context.Context, kind store.OneTimeTokenKind, userID string, ttl time.Duration) (string, error) {
	if err := s.st.DeleteOneTimeTokens(ctx, kind, userID); err != nil {
		return "", fmt.Errorf("account: delete old %s tokens: %w", kind, err)
	}
	secret := newSecret()
	now := store.Timestamp(s.now())
	t := store.OneTimeToken{Kind: kind, Hash: HashSecret(secret), UserID: userID, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.st.CreateOneTimeToken(ctx, &t); err != nil {
		return "", fmt.Errorf("account: create %s token: %w", kind, err)
	}
	return secret, nil
}

func (s *Service) consume(ctx context.Context, kind store.OneTimeTokenKind, secret string) (store.OneTimeToken, error) {
	if secret == "" || len(secret) > 128 {
		return store.OneTimeToken{}, ErrInvalidToken
	}
	t, err := s.st.ConsumeOneTimeToken(ctx, kind, HashSecret(secret), store.Timestamp(s.now()))
	if errors.Is(err, store.ErrNotFound) {
		return store.OneTimeToken{}, ErrInvalidToken
	}
	if err != nil {
		return store.OneTimeToken{}, fmt.Errorf("account: consume %s token: %w", kind, err)
	}
	return t, nil
}

// SetupNeeded reports whether the install still has no user.
func (s *Service) SetupNeeded(ctx context.Context) (bool, error) {
	n, err := s.st.CountUsers(ctx)
	if err != nil {
		return false, fmt.Errorf("account: count users: %w", err)
	}
	return n == 0, nil
}

// PrepareSetup makes a new setup token when the install has no user, replacing older ones,
// and returns it; it returns "" when setup is done.
func (s *Service) PrepareSetup(ctx context.Context) (string, error) {
	needed, err := s.SetupNeeded(ctx)
	if err != nil || !needed {
		return "", err
	}
	return s.newOneTimeToken(ctx, store.TokenSetup, "", setupTTL)
}

// SetupInput creates the install's first owner and tenant.
type SetupInput struct {
	Token      string
	Email      string
	Password   string
	Name       string
	TenantName string
	TenantSlug string
}

// CompleteSetup spends the setup token and creates the first owner, their tenant and the
// owner membership. Input is validated before the token is spent; if a later write fails, the
// records already written are removed and a fresh token is not issued (restart the server
// for a new URL).
func (s *Service) CompleteSetup(ctx context.Context, in SetupInput) (store.User, store.Tenant, error) {
	signup := SignupInput{Email: in.Email, Password: in.Password, Name: in.Name}
	fields := map[string]string{}
	var verr *store.InvalidError
	if err := signup.validate(); errors.As(err, &verr) {
		fields = verr.Fields
	}
	in.TenantSlug = strings.TrimSpace(in.TenantSlug)
	if err := CheckSlug(in.TenantSlug); err != nil {
		fields["tenant_slug"] = err.Error()
	}
	in.TenantName = strings.TrimSpace(in.TenantName)
	if in.TenantName == "" {
		fields["tenant_name"] = "must not be empty"
	} else if err := checkName(in.TenantName, 100); err != nil {
		fields["tenant_name"] = err.Error()
	}
	if len(fields) > 0 {
		return store.User{}, store.Tenant{}, &store.InvalidError{Fields: fields}
	}
	needed, err := s.SetupNeeded(ctx)
	if err != nil {
		return store.User{}, store.Tenant{}, err
	}
	if !needed {
		return store.User{}, store.Tenant{}, ErrSetupDone
	}
	if _, err := s.consume(ctx, store.TokenSetup, in.Token); err != nil {
		return store.User{}, store.Tenant{}, err
	}
	u, t, _, err := s.AddToTenant(ctx, signup, in.TenantSlug, in.TenantName, store.RoleOwner)
	return u, t, err
}

// AddToTenant makes sure a user with the email exists (creating it with the password and
// name when new), that the tenant with the slug exists (creating it with the name when new),
// and that the user is a member with role. It serves the setup and `espadmin user create`.
// When it fails midway, what it created is removed again, so nothing is half-written.
func (s *Service) AddToTenant(ctx context.Context, in SignupInput, slug, tenantName string, role store.Role) (store.User, store.Tenant, bool, error) {
	if !role.Valid() {
		return store.User{}, store.Tenant{}, false, store.Invalid("role", "must be owner, admin, developer or viewer")
	}
	if err := CheckSlug(slug); err != nil {
		return store.User{}, store.Tenant{}, false, store.Invalid("tenant", err.Error())
	}
	var undo []func()
	rollback := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	// Compensation runs on a context that survives the caller's cancellation.
	cleanup := context.WithoutCancel(ctx)

	email, err := NormalizeEmail(in.Email)
	if err != nil {
		return store.User{}, store.Tenant{}, false, store.Invalid("email", err.Error())
	}
	u, err := s.st.UserByEmail(ctx, email)
	created := false
	switch {
	case errors.Is(err, store.ErrNotFound):
		u, err = s.CreateUser(ctx, in)
		if err != nil {
			return store.User{}, store.Tenant{}, false, err
		}
		created = true
		id := u.ID
		undo = append(undo, func() { _ = s.st.DeleteUser(cleanup, id) })
	case err != nil:
		return store.User{}, store.Tenant{}, false, fmt.Errorf("account: look up user: %w", err)
	}

	t, err := s.st.TenantBySlug(ctx, slug)
	if errors.Is(err, store.ErrNotFound) {
		if tenantName == "" {
			tenantName = slug
		}
		t = store.Tenant{Slug: slug, Name: tenantName}
		if err = s.st.CreateTenant(ctx, &t); err == nil {
			id := t.ID
			undo = append(undo, func() { _ = s.st.DeleteTenant(cleanup, id) })
		}
	}
	if err != nil {
		rollback()
		return store.User{}, store.Tenant{}, false, fmt.Errorf("account: tenant %q: %w", slug, err)
	}

	m := store.Membership{TenantID: t.ID, UserID: u.ID, Role: role}
	if err := s.st.CreateMembership(ctx, &m); err != nil {
		if errors.Is(err, store.ErrConflict) {
			if err := s.st.UpdateMembershipRole(ctx, t.ID, u.ID, role); err != nil {
				rollback()
				return store.User{}, store.Tenant{}, false, fmt.Errorf("account: update role: %w", err)
			}
			return u, t, created, nil
		}
		rollback()
		return store.User{}, store.Tenant{}, false, fmt.Errorf("account: add membership: %w", err)
	}
	return u, t, created, nil
}

// PasswordResetToken makes a reset link secret for the user with email; store.ErrNotFound
// when there is no such user (callers answer the same either way).
func (s *Service) PasswordResetToken(ctx context.Context, email string) (string, store.User, error) {
	norm, err := NormalizeEmail(email)
	if err != nil {
		return "", store.User{}, store.ErrNotFound
	}
	u, err := s.st.UserByEmail(ctx, norm)
	if err != nil {
		return "", store.User{}, err
	}
	if u.Disabled {
		return "", store.User{}, store.ErrNotFound
	}
	secret, err := s.newOneTimeToken(ctx, store.TokenPasswordReset, u.ID, s.opts.ResetTTL)
	return secret, u, err
}

// ResetPassword spends a reset link secret, sets the new password and ends every session of
// the user, so whoever knew the old password is logged out everywhere.
func (s *Service) ResetPassword(ctx context.Context, secret, newPassword string) (store.User, error) {
	if err := CheckPasswordPolicy(newPassword); err != nil {
		return store.User{}, store.Invalid("password", err.Error())
	}
	t, err := s.consume(ctx, store.TokenPasswordReset, secret)
	if err != nil {
		return store.User{}, err
	}
	u, err := s.st.User(ctx, t.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, ErrInvalidToken
	}
	if err != nil {
		return store.User{}, fmt.Errorf("account: load user: %w", err)
	}
	return u, s.setPassword(ctx, &u, newPassword)
}

func (s *Service) setPassword(ctx context.Context, u *store.User, password string) error {
	hash, err := HashPassword(password, s.opts.Hash)
	if err != nil {
		return err
	}
	u.PasswordHash = hash
	if err := s.st.UpdateUser(ctx, u); err != nil {
		return fmt.Errorf("account: save password: %w", err)
	}
	if err := s.st.DeleteUserSessions(ctx, u.ID); err != nil {
		return fmt.Errorf("account: end sessions: %w", err)
	}
	return nil
}

// ChangePassword sets a new password after checking the current one, and ends every session
// of the user; the caller starts a fresh session for the client that asked.
func (s *Service) ChangePassword(ctx context.Context, userID, current, newPassword string) error {
	if err := CheckPasswordPolicy(newPassword); err != nil {
		return store.Invalid("new_password", err.Error())
	}
	now := s.now()
	wait, err := s.changes.wait(ctx, userID, now)
	if err != nil {
		return err
	}
	if wait > 0 {
		return &RateLimitError{RetryAfter: wait}
	}
	u, err := s.st.User(ctx, userID)
	if err != nil {
		return fmt.Errorf("account: load user: %w", err)
	}
	if u.PasswordHash != "" || current != "" {
		if !VerifyPassword(u.PasswordHash, current) {
			if err := s.changes.fail(ctx, userID, now); err != nil {
				return err
			}
			return ErrWrongPassword
		}
	}
	if err := s.changes.reset(ctx, userID); err != nil {
		return err
	}
	return s.setPassword(ctx, &u, newPassword)
}

// EmailVerificationToken makes a verification link secret for userID.
func (s *Service) EmailVerificationToken(ctx context.Context, userID string) (string, error) {
	return s.newOneTimeToken(ctx, store.TokenEmailVerify, userID, verifyTTL)
}

// VerifyEmail spends a verification link secret and marks the email verified.
func (s *Service) VerifyEmail(ctx context.Context, secret string) (store.User, error) {
	t, err := s.consume(ctx, store.TokenEmailVerify, secret)
	if err != nil {
		return store.User{}, err
	}
	u, err := s.st.User(ctx, t.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, ErrInvalidToken
	}
	if err != nil {
		return store.User{}, fmt.Errorf("account: load user: %w", err)
	}
	u.EmailVerified = true
	if err := s.st.UpdateUser(ctx, &u); err != nil {
		return store.User{}, fmt.Errorf("account: save user: %w", err)
	}
	return u, nil
}
