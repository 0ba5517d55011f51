package server

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/account"
)

// Names of the cookies and the header of authentication.
const (
	sessionCookie = "espadmin_session"
	csrfHeader    = "X-CSRF-Token"
)

// authenticate identifies the caller of every /api/v1 route, by `Authorization: Bearer` API
// token or by the session cookie, and stores the Principal. Anonymous requests pass through;
// routes decide with requireUser or their own checks.
//
// An invalid or expired credential is 401, except on routes registered as public (login,
// sign-up, setup, password reset, OAuth): there a stale session cookie is cleared and the
// request continues anonymously, so a browser with an old cookie can still log in.
//
// Cookies are sent by browsers automatically, so a cookie-authenticated request that changes
// state (POST, PUT, PATCH, DELETE) must also carry the session's CSRF token in X-CSRF-Token;
// a script from another site cannot read it. Bearer tokens are never sent automatically and
// need no CSRF token.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		public := s.publicRoutes[req.Method+" "+c.Path()]
		if h := req.Header.Get(echo.HeaderAuthorization); h != "" {
			scheme, secret, ok := strings.Cut(strings.TrimSpace(h), " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") {
				return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "Authorization header must be: Bearer <API token>"}
			}
			if s.accounts == nil {
				return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "invalid or expired API token"}
			}
			t, err := s.accounts.VerifyAPIToken(req.Context(), strings.TrimSpace(secret))
			if errors.Is(err, account.ErrUnauthenticated) {
				return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "invalid or expired API token"}
			}
			if err != nil {
				return err
			}
			scopes := t.Scopes
			if scopes == nil {
				scopes = []string{}
			}
			setPrincipal(c, Principal{UserID: t.UserID, TokenID: t.ID, TokenTenantID: t.TenantID, Scopes: scopes})
			return next(c)
		}

		ck, err := req.Cookie(sessionCookie)
		if err != nil || ck.Value == "" || s.accounts == nil {
			return next(c)
		}
		sess, err := s.accounts.Session(req.Context(), ck.Value)
		if errors.Is(err, account.ErrUnauthenticated) {
			s.clearSessionCookie(c)
			if public {
				return next(c)
			}
			return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "session expired; log in again"}
		}
		if err != nil {
			return err
		}
		if unsafeMethod(req.Method) {
			got := req.Header.Get(csrfHeader)
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRFToken)) != 1 {
				if public {
					// Logging in again from a logged-in browser needs no token; the
					// request simply does not count as that session.
					return next(c)
				}
				return &Error{Status: http.StatusForbidden, Code: "csrf", Message: "missing or wrong " + csrfHeader + " header; read the token from GET /api/v1/auth/me"}
			}
		}
		setPrincipal(c, Principal{UserID: sess.UserID, SessionID: sess.ID})
		c.Set(sessionCSRFKey, sess.CSRFToken)
		return next(c)
	}
}

const sessionCSRFKey = "session_csrf"

func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// requireUser refuses anonymous callers (401) and tenant tokens, which act for no user (403).
func (s *Server) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, ok := principalFrom(c)
		if !ok {
			return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "log in or send an API token"}
		}
		if p.UserID == "" {
			return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "this route needs a user; a tenant token acts for no user"}
		}
		return next(c)
	}
}

// public marks a route as usable anonymously even with a stale session cookie (see
// authenticate). It returns the route so registrations stay one line.
func (s *Server) public(r *echo.Route) *echo.Route {
	s.publicRoutes[r.Method+" "+r.Path] = true
	return r
}

// secureCookies reports whether cookies must be Secure: the public URL is https.
func (s *Server) secureCookies() bool {
	u, err := url.Parse(s.publicURL)
	return err == nil && u.Scheme == "https"
}

func (s *Server) setSessionCookie(c echo.Context, token string, expires time.Time) {
	c.SetCookie(&http.Cookie{
		Name: sessionCookie, Value: token, Path: "/", Expires: expires,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secureCookies(),
	})
}

func (s *Server) clearSessionCookie(c echo.Context) {
	c.SetCookie(&http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secureCookies(),
	})
}
