package server

import (
	"github.com/labstack/echo/v4"
)

// Principal is who is calling: a user through a browser session, or an API token (personal,
// acting as its user, or a tenant token with no user).
type Principal struct {
	UserID        string   // empty for a tenant token
	SessionID     string   // set when authenticated by session cookie
	TokenID       string   // set when authenticated by an API token
	TokenTenantID string   // tokens belong to one tenant
	Scopes        []string // token scopes; nil for sessions (role decides)
}

const principalKey = "principal"

// principalFrom returns the authenticated caller; false means anonymous.
func principalFrom(c echo.Context) (Principal, bool) {
	p, ok := c.Get(principalKey).(Principal)
	return p, ok
}

func setPrincipal(c echo.Context, p Principal) { c.Set(principalKey, p) }
