package server

import "time"

// HTTPConfig configures the management server's listener (REST API, web UI, health and
// metrics). The process builds it from its settings (http.*).
type HTTPConfig struct {
	// Addr is the listen address, host:port; an empty host listens on every interface.
	Addr string
	// PublicURL is the base URL users open and devices download from. It appears in links and
	// signed download URLs, so behind a reverse proxy it must be the proxy's URL. The process
	// derives it from Addr when it is not set, with the real port once it listens on port 0.
	PublicURL string
	// ShutdownTimeout bounds how long in-flight requests may take to finish at shutdown.
	ShutdownTimeout time.Duration
}

// DefaultHTTPConfig returns the listener defaults: port 8080 on every interface, and ten
// seconds for in-flight requests at shutdown.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{Addr: ":8080", ShutdownTimeout: 10 * time.Second}
}

// Sign-up modes of AccountsConfig.Signup.
const (
	SignupOpen   = "open"
	SignupClosed = "closed"
)

// AccountsConfig configures sign-in: who may create an account and how long sessions live
// (settings accounts.*).
type AccountsConfig struct {
	// Signup is "closed" (accounts come from the first-run setup, the CLI and invitations)
	// or "open" (anyone who reaches the server may create an account, by email or OAuth).
	Signup string
	// SessionIdleTimeout ends a session nobody used for this long.
	SessionIdleTimeout time.Duration
	// SessionMaxAge ends every session this long after login, used or not.
	SessionMaxAge time.Duration
	// ResetLinkTTL is how long a password-reset link stays valid.
	ResetLinkTTL time.Duration
}

// DefaultAccountsConfig returns the sign-in defaults: sign-up closed, sessions that end after
// a day unused or a month in any case, and reset links valid for an hour.
func DefaultAccountsConfig() AccountsConfig {
	return AccountsConfig{
		Signup:             SignupClosed,
		SessionIdleTimeout: 24 * time.Hour,
		SessionMaxAge:      720 * time.Hour,
		ResetLinkTTL:       time.Hour,
	}
}

// SignupOpen reports whether anyone may create an account.
func (a AccountsConfig) SignupOpen() bool { return a.Signup == SignupOpen }

// OAuthConfig enables sign-in through external identity providers (settings oauth.*). A
// provider is enabled when its client ID is set.
type OAuthConfig struct {
	GitHub OAuthProvider
	Google OAuthProvider
	GitLab OAuthProvider
	OIDC   OIDCProvider
}

// DefaultOAuthConfig returns no provider enabled; a generic OpenID Connect provider, once
// configured, is called "OpenID Connect" on the login page unless named.
func DefaultOAuthConfig() OAuthConfig {
	return OAuthConfig{OIDC: OIDCProvider{Name: "OpenID Connect"}}
}

// OAuthProvider holds one OAuth application's credentials.
type OAuthProvider struct {
	ClientID     string
	ClientSecret string
}

// OIDCProvider is a generic OpenID Connect provider found through its discovery document.
type OIDCProvider struct {
	// DiscoveryURL is the provider's .well-known/openid-configuration URL.
	DiscoveryURL string
	ClientID     string
	ClientSecret string
	// Name is what the login page shows, e.g. "Company SSO".
	Name string
}
