package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/markbates/goth"
	"github.com/markbates/goth/providers/github"
	"github.com/markbates/goth/providers/gitlab"
	"github.com/markbates/goth/providers/openidConnect"

	"github.com/espadmin/espadmin/server/account"
)

// OAuth login goes through goth's providers, but not through gothic: its session store keeps
// state in a cookie store with process-local defaults. Here the state (and goth's session)
// travels in one short-lived cookie signed with HMAC-SHA256 under a key derived from the
// master key, so any replica can finish a login another replica started.
const (
	oauthCookie   = "espadmin_oauth"
	oauthStateTTL = 10 * time.Minute
	oauthPath     = "/api/v1/auth/oauth/"
)

// oauthProvider is one configured provider. build makes the goth provider; the OIDC one
// reads the discovery document, so it is built on first use and kept once it succeeds.
type oauthProvider struct {
	id, name string
	build    func() (goth.Provider, *oidcVerifier, error)

	mu       sync.Mutex
	provider goth.Provider
	verifier *oidcVerifier
}

func (p *oauthProvider) get() (goth.Provider, *oidcVerifier, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.provider != nil {
		return p.provider, p.verifier, nil
	}
	gp, v, err := p.build()
	if err != nil {
		return nil, nil, err
	}
	p.provider, p.verifier = gp, v
	return gp, v, nil
}

type oauthProviders struct {
	list []*oauthProvider
}

func (o *oauthProviders) find(id string) *oauthProvider {
	for _, p := range o.list {
		if p.id == id {
			return p
		}
	}
	return nil
}

func newOAuthProviders(s *Server) *oauthProviders {
	cfg := s.deps.OAuth
	client := s.deps.HTTPClient
	callback := func(id string) string { return s.publicURL + oauthPath + id + "/callback" }
	o := &oauthProviders{}
	if cfg.GitHub.ClientID != "" {
		o.list = append(o.list, &oauthProvider{id: "github", name: "GitHub", build: func() (goth.Provider, *oidcVerifier, error) {
			p := github.New(cfg.GitHub.ClientID, cfg.GitHub.ClientSecret, callback("github"), "read:user", "user:email")
			p.HTTPClient = client
			return p, nil, nil
		}})
	}
	if cfg.Google.ClientID != "" {
		// Google is an OpenID Connect provider: going through discovery gives the verified
		// email_verified claim and a signed ID token (goth's google provider would also pull
		// in Google Cloud client libraries).
		o.list = append(o.list, &oauthProvider{id: "google", name: "Google", build: func() (goth.Provider, *oidcVerifier, error) {
			return buildOIDC(client, "google", googleDiscoveryURL, cfg.Google.ClientID, cfg.Google.ClientSecret, callback("google"))
		}})
	}
	if cfg.GitLab.ClientID != "" {
		o.list = append(o.list, &oauthProvider{id: "gitlab", name: "GitLab", build: func() (goth.Provider, *oidcVerifier, error) {
			p := gitlab.New(cfg.GitLab.ClientID, cfg.GitLab.ClientSecret, callback("gitlab"), "read_user")
			p.HTTPClient = client
			return p, nil, nil
		}})
	}
	if cfg.OIDC.ClientID != "" && cfg.OIDC.DiscoveryURL != "" {
		name := cfg.OIDC.Name
		if name == "" {
			name = "OpenID Connect"
		}
		o.list = append(o.list, &oauthProvider{id: "oidc", name: name, build: func() (goth.Provider, *oidcVerifier, error) {
			return buildOIDC(client, "oidc", cfg.OIDC.DiscoveryURL, cfg.OIDC.ClientID, cfg.OIDC.ClientSecret, callback("oidc"))
		}})
	}
	return o
}

// googleDiscoveryURL is Google's OpenID Connect discovery document.
const googleDiscoveryURL = "https://accounts.google.com/.well-known/openid-configuration"

// buildOIDC reads the discovery document once and builds goth's provider from it.
func buildOIDC(client *http.Client, id, discoveryURL, clientID, secret, callback string) (goth.Provider, *oidcVerifier, error) {
	v, err := newOIDCVerifier(client, discoveryURL, clientID)
	if err != nil {
		return nil, nil, err
	}
	p, err := openidConnect.NewCustomisedURL(clientID, secret, callback,
		v.cfg.AuthEndpoint, v.cfg.TokenEndpoint, v.cfg.Issuer, v.cfg.UserInfoEndpoint, "", "openid", "email", "profile")
	if err != nil {
		return nil, nil, err
	}
	p.HTTPClient = client
	p.SetName(id)
	return p, v, nil
}

// listProviders answers which external logins are enabled, for the login page.
func (s *Server) listProviders(c echo.Context) error {
	out := providersResponse{Providers: []providerResponse{}, Signup: s.deps.Accounts.SignupOpen()}
	for _, p := range s.oauth.list {
		out.Providers = append(out.Providers, providerResponse{ID: p.id, Name: p.name, LoginURL: oauthPath + p.id})
	}
	return c.JSON(http.StatusOK, out)
}

// oauthState is what the state cookie carries.
type oauthState struct {
	Provider string `json:"p"`
	State    string `json:"s"`
	Session  string `json:"g"` // goth's marshalled session
	Expires  int64  `json:"e"`
}

func (s *Server) signState(st oauthState) string {
	b, _ := json.Marshal(st)
	payload := base64.RawURLEncoding.EncodeToString(b)
	mac := hmac.New(sha256.New, s.deps.StateKey)
	mac.Write([]byte(payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (s *Server) readState(v string) (oauthState, bool) {
	payload, sig, ok := strings.Cut(v, ".")
	if !ok || len(s.deps.StateKey) == 0 {
		return oauthState{}, false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return oauthState{}, false
	}
	mac := hmac.New(sha256.New, s.deps.StateKey)
	mac.Write([]byte(payload))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return oauthState{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return oauthState{}, false
	}
	var st oauthState
	if json.Unmarshal(b, &st) != nil || s.now().Unix() >= st.Expires {
		return oauthState{}, false
	}
	return st, true
}

func oauthError(status int, code, msg string) error {
	return &Error{Status: status, Code: code, Message: msg}
}

// oauthBegin redirects the browser to the provider.
func (s *Server) oauthBegin(c echo.Context) error {
	p := s.oauth.find(c.Param("provider"))
	if p == nil {
		return oauthError(http.StatusNotFound, "not_found", "this login provider is not enabled")
	}
	if len(s.deps.StateKey) == 0 {
		return errors.New("oauth: no state signing key configured")
	}
	gp, _, err := p.get()
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "provider_unavailable", Message: "the login provider cannot be reached", Err: err}
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	state := base64.RawURLEncoding.EncodeToString(b)
	sess, err := gp.BeginAuth(state)
	if err != nil {
		return fmt.Errorf("oauth: begin %s: %w", p.id, err)
	}
	authURL, err := sess.GetAuthURL()
	if err != nil {
		return fmt.Errorf("oauth: auth URL of %s: %w", p.id, err)
	}
	c.SetCookie(&http.Cookie{
		Name: oauthCookie, Value: s.signState(oauthState{Provider: p.id, State: state, Session: sess.Marshal(),
			Expires: s.now().Add(oauthStateTTL).Unix()}),
		Path: oauthPath, MaxAge: int(oauthStateTTL / time.Second), HttpOnly: true,
		// Lax: the provider's redirect back is a top-level GET, which carries Lax cookies.
		SameSite: http.SameSiteLaxMode, Secure: s.secureCookies(),
	})
	return c.Redirect(http.StatusFound, authURL)
}

// oauthCallback finishes the login: checks the signed state, exchanges the code, reads the
// identity, finds or creates the user (account.LoginExternal) and starts a session.
func (s *Server) oauthCallback(c echo.Context) error {
	p := s.oauth.find(c.Param("provider"))
	if p == nil {
		return oauthError(http.StatusNotFound, "not_found", "this login provider is not enabled")
	}
	c.SetCookie(&http.Cookie{Name: oauthCookie, Value: "", Path: oauthPath, MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: s.secureCookies()})
	if e := c.QueryParam("error"); e != "" {
		return oauthError(http.StatusUnauthorized, "oauth_denied", "the provider did not sign you in: "+truncateText(e, 100))
	}
	ck, err := c.Cookie(oauthCookie)
	if err != nil {
		return oauthError(http.StatusBadRequest, "oauth_state", "login state missing or expired; start the login again")
	}
	st, ok := s.readState(ck.Value)
	q := c.QueryParam("state")
	if !ok || st.Provider != p.id || q == "" || subtle.ConstantTimeCompare([]byte(q), []byte(st.State)) != 1 {
		return oauthError(http.StatusBadRequest, "oauth_state", "login state missing, forged or expired; start the login again")
	}
	gp, verifier, err := p.get()
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "provider_unavailable", Message: "the login provider cannot be reached", Err: err}
	}
	sess, err := gp.UnmarshalSession(st.Session)
	if err != nil {
		return oauthError(http.StatusBadRequest, "oauth_state", "login state unreadable; start the login again")
	}
	// Only the code is passed on: goth would also honour redirect_uri and code_verifier
	// from these parameters, which must not come from the query string.
	if _, err := sess.Authorize(gp, url.Values{"code": {c.QueryParam("code")}}); err != nil {
		return &Error{Status: http.StatusUnauthorized, Code: "oauth_failed", Message: "the provider refused the login code", Err: err}
	}
	user, err := gp.FetchUser(sess)
	if err != nil {
		return &Error{Status: http.StatusUnauthorized, Code: "oauth_failed", Message: "could not read your account from the provider", Err: err}
	}
	if verifier != nil { // ID tokens carry the provider's real time, not the server's clock
		if err := verifier.verify(user.IDToken, time.Now()); err != nil {
			return &Error{Status: http.StatusUnauthorized, Code: "oauth_failed", Message: "the provider's ID token did not verify", Err: err}
		}
	}
	ext := account.ExternalIdentity{
		Provider: p.id, Subject: user.UserID, Email: user.Email, Name: user.Name,
		EmailVerified: emailVerified(p.id, user),
	}
	if ext.Subject == "" {
		return oauthError(http.StatusUnauthorized, "oauth_failed", "the provider returned no user ID")
	}
	u, err := s.accounts.LoginExternal(c.Request().Context(), ext)
	if err != nil {
		return fail(c, err)
	}
	s.log.Info("oauth login", "provider", p.id, "user_id", u.ID)
	return s.startSession(c, u, http.StatusOK)
}

// emailVerified decides whether a provider vouches for the email (docs/accounts.md):
//   - OpenID Connect and Google: the email_verified claim (Google's older userinfo calls it
//     verified_email) must be true;
//   - GitHub: yes — a public profile email can only be one of the account's verified
//     addresses, and otherwise goth takes the primary verified address from /user/emails;
//   - GitLab: only when the profile has confirmed_at set.
func emailVerified(provider string, u goth.User) bool {
	switch provider {
	case "github":
		return u.Email != ""
	case "gitlab":
		v, ok := u.RawData["confirmed_at"].(string)
		return ok && v != ""
	}
	for _, k := range []string{"email_verified", "verified_email"} {
		switch v := u.RawData[k].(type) {
		case bool:
			if v {
				return true
			}
		case string:
			if v == "true" {
				return true
			}
		}
	}
	return false
}

func truncateText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n]
	}
	return s
}
