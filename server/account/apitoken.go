package account

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/espadmin/espadmin/store"
)

// APITokenPrefix starts every API token, so secret scanners and people recognise one.
const APITokenPrefix = "esp_"

// apiTokenShownPrefix is how many characters of a token are stored in clear, to tell tokens
// apart in lists: "esp_" and 8 random characters (48 bits, useless for guessing the rest).
const apiTokenShownPrefix = len(APITokenPrefix) + 8

// Scopes lists every API token scope.
var Scopes = []string{
	store.ScopeDevicesRead, store.ScopeDevicesWrite, store.ScopeCommandsWrite,
	store.ScopeConfigWrite, store.ScopeReleasesWrite, store.ScopeAdmin,
}

// NewAPIToken describes a token to create.
type NewAPIToken struct {
	TenantID string
	// UserID makes a personal token acting as that member; empty makes a tenant token.
	UserID    string
	Name      string
	Scopes    []string
	ExpiresAt *time.Time
	// CreatedBy is the user ID of whoever created it.
	CreatedBy string
}

// CreatedAPIToken is a new token with its secret, which is shown only now.
type CreatedAPIToken struct {
	Token    string
	APIToken store.APIToken
}

// CreateAPIToken validates and stores a new API token, returning its secret once.
func (s *Service) CreateAPIToken(ctx context.Context, in NewAPIToken) (CreatedAPIToken, error) {
	fields := map[string]string{}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" {
		fields["name"] = "must not be empty"
	} else if err := checkName(in.Name, 100); err != nil {
		fields["name"] = err.Error()
	}
	if len(in.Scopes) == 0 {
		fields["scopes"] = "must name at least one scope"
	}
	scopes := make([]string, 0, len(in.Scopes))
	for _, sc := range in.Scopes {
		if !slices.Contains(Scopes, sc) {
			fields["scopes"] = fmt.Sprintf("unknown scope %q (known: %s)", sc, strings.Join(Scopes, ", "))
			break
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	now := store.Timestamp(s.now())
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		fields["expires_at"] = "must be in the future"
	}
	if in.TenantID == "" {
		fields["tenant"] = "must not be empty"
	}
	if len(fields) > 0 {
		return CreatedAPIToken{}, &store.InvalidError{Fields: fields}
	}
	secret := APITokenPrefix + newSecret()
	t := store.APIToken{
		TenantID:  in.TenantID,
		UserID:    in.UserID,
		Name:      in.Name,
		Prefix:    secret[:apiTokenShownPrefix],
		Hash:      HashSecret(secret),
		Scopes:    scopes,
		ExpiresAt: store.TimestampPtr(in.ExpiresAt),
		CreatedBy: in.CreatedBy,
		CreatedAt: now,
	}
	if err := s.st.CreateAPIToken(ctx, &t); err != nil {
		return CreatedAPIToken{}, fmt.Errorf("account: create API token: %w", err)
	}
	return CreatedAPIToken{Token: secret, APIToken: t}, nil
}

// VerifyAPIToken returns the live token for a bearer secret and records its use (at most
// once a minute). Unknown and expired tokens are ErrUnauthenticated.
func (s *Service) VerifyAPIToken(ctx context.Context, secret string) (store.APIToken, error) {
	if !strings.HasPrefix(secret, APITokenPrefix) || len(secret) > 128 {
		return store.APIToken{}, ErrUnauthenticated
	}
	hash := HashSecret(secret)
	t, err := s.st.APITokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return store.APIToken{}, ErrUnauthenticated
	}
	if err != nil {
		return store.APIToken{}, fmt.Errorf("account: look up API token: %w", err)
	}
	if subtle.ConstantTimeCompare(t.Hash, hash) != 1 {
		return store.APIToken{}, ErrUnauthenticated
	}
	now := store.Timestamp(s.now())
	if t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) {
		return store.APIToken{}, ErrUnauthenticated
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= touchEvery {
		if err := s.st.TouchAPIToken(ctx, t.TenantID, t.ID, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.APIToken{}, fmt.Errorf("account: touch API token: %w", err)
		}
		t.LastUsedAt = &now
	}
	return t, nil
}
