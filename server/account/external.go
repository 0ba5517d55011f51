package account

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/espadmin/espadmin/store"
)

// ExternalIdentity is what an OAuth or OpenID Connect provider told us about who signed in.
type ExternalIdentity struct {
	Provider string
	Subject  string
	Email    string
	// EmailVerified is true only when the provider vouches that the person controls Email
	// (see docs/accounts.md for what counts as verified per provider).
	EmailVerified bool
	Name          string
}

// LoginExternal finds or creates the user for an external identity:
//
//  1. a known (provider, subject) is that user;
//  2. else, when the provider verified the email, the existing user with that email, to
//     whom the identity is then linked;
//  3. else a new user, when sign-up is open (ErrSignupClosed otherwise). An unverified email
//     that belongs to an existing account is refused with ErrUnverifiedEmail: emails are
//     unique, and linking would let anyone who types a victim's address at a lax provider take
//     over the victim's account.
func (s *Service) LoginExternal(ctx context.Context, ext ExternalIdentity) (store.User, error) {
	if ext.Provider == "" || ext.Subject == "" {
		return store.User{}, errors.New("account: external identity without provider or subject")
	}
	id, err := s.st.IdentityBySubject(ctx, ext.Provider, ext.Subject)
	switch {
	case err == nil:
		u, err := s.st.User(ctx, id.UserID)
		if err != nil {
			return store.User{}, fmt.Errorf("account: load linked user: %w", err)
		}
		if u.Disabled {
			return store.User{}, ErrInvalidCredentials
		}
		return s.recordLogin(ctx, u)
	case !errors.Is(err, store.ErrNotFound):
		return store.User{}, fmt.Errorf("account: look up identity: %w", err)
	}

	email, emailErr := NormalizeEmail(ext.Email)
	if emailErr != nil {
		return store.User{}, ErrNoEmail
	}
	existing, err := s.st.UserByEmail(ctx, email)
	switch {
	case err == nil:
		if !ext.EmailVerified {
			return store.User{}, ErrUnverifiedEmail
		}
		if existing.Disabled {
			return store.User{}, ErrInvalidCredentials
		}
		if err := s.link(ctx, existing.ID, ext, email); err != nil {
			return store.User{}, err
		}
		if !existing.EmailVerified {
			existing.EmailVerified = true
		}
		return s.recordLogin(ctx, existing)
	case !errors.Is(err, store.ErrNotFound):
		return store.User{}, fmt.Errorf("account: look up user: %w", err)
	}

	if !s.opts.SignupOpen {
		return store.User{}, ErrSignupClosed
	}
	name := strings.TrimSpace(ext.Name)
	if checkName(name, 100) != nil {
		name = ""
	}
	u := store.User{Email: email, Name: name, EmailVerified: ext.EmailVerified}
	if err := s.st.CreateUser(ctx, &u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.User{}, ErrEmailTaken
		}
		return store.User{}, fmt.Errorf("account: create user: %w", err)
	}
	if err := s.link(ctx, u.ID, ext, email); err != nil {
		_ = s.st.DeleteUser(context.WithoutCancel(ctx), u.ID)
		return store.User{}, err
	}
	return s.recordLogin(ctx, u)
}

func (s *Service) link(ctx context.Context, userID string, ext ExternalIdentity, email string) error {
	id := store.Identity{UserID: userID, Provider: ext.Provider, Subject: ext.Subject, Email: email}
	if err := s.st.CreateIdentity(ctx, &id); err != nil {
		return fmt.Errorf("account: link identity: %w", err)
	}
	return nil
}

func (s *Service) recordLogin(ctx context.Context, u store.User) (store.User, error) {
	at := store.Timestamp(s.now())
	u.LastLoginAt = &at
	if err := s.st.UpdateUser(ctx, &u); err != nil {
		return store.User{}, fmt.Errorf("account: record login: %w", err)
	}
	return u, nil
}
