package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/mail"
	"github.com/espadmin/espadmin/store"
)

// mailTimeout bounds sending one mail after the response has gone out.
const mailTimeout = time.Minute

// signup creates an account when sign-up is open, and logs it in.
func (s *Server) signup(c echo.Context) error {
	var req signupRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, err := s.accounts.Signup(c.Request().Context(), accountSignup(req))
	if err != nil {
		return fail(c, err)
	}
	s.sendVerification(c, u)
	return s.startSession(c, u, http.StatusCreated)
}

// login checks email and password and starts a session.
func (s *Server) login(c echo.Context) error {
	var req loginRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, err := s.accounts.Login(c.Request().Context(), req.Email, req.Password, c.RealIP())
	if err != nil {
		return fail(c, err)
	}
	return s.startSession(c, u, http.StatusOK)
}

// startSession creates a session for u, sets the cookie and answers like GET /auth/me.
func (s *Server) startSession(c echo.Context, u store.User, status int) error {
	ns, err := s.accounts.CreateSession(c.Request().Context(), u.ID, c.Request().UserAgent(), c.RealIP())
	if err != nil {
		return err
	}
	s.setSessionCookie(c, ns.Token, ns.Session.ExpiresAt)
	resp, err := s.meFor(c.Request().Context(), u, "session")
	if err != nil {
		return err
	}
	resp.CSRFToken = ns.Session.CSRFToken
	return c.JSON(status, resp)
}

// logout ends the caller's session everywhere at once.
func (s *Server) logout(c echo.Context) error {
	p, _ := principalFrom(c)
	if p.SessionID == "" {
		return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "logout ends a browser session; API tokens are revoked by deleting them"}
	}
	if err := s.accounts.Logout(c.Request().Context(), p.SessionID); err != nil {
		return err
	}
	s.clearSessionCookie(c)
	return c.NoContent(http.StatusNoContent)
}

// me describes the caller: user, memberships and (for sessions) the CSRF token.
func (s *Server) me(c echo.Context) error {
	p, _ := principalFrom(c)
	u, err := s.deps.Store.User(c.Request().Context(), p.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "the account no longer exists"}
	}
	if err != nil {
		return err
	}
	via := "token"
	if p.SessionID != "" {
		via = "session"
	}
	resp, err := s.meFor(c.Request().Context(), u, via)
	if err != nil {
		return err
	}
	if p.SessionID != "" {
		resp.CSRFToken, _ = c.Get(sessionCSRFKey).(string)
	}
	return c.JSON(http.StatusOK, resp)
}

func (s *Server) meFor(ctx context.Context, u store.User, via string) (meResponse, error) {
	ms, err := s.deps.Store.UserMemberships(ctx, u.ID)
	if err != nil {
		return meResponse{}, err
	}
	out := meResponse{User: toUserResponse(u), Memberships: make([]membershipResponse, 0, len(ms)), Via: via}
	for _, m := range ms {
		t, err := s.deps.Store.Tenant(ctx, m.TenantID)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted between the two reads
		}
		if err != nil {
			return meResponse{}, err
		}
		out.Memberships = append(out.Memberships, membershipResponse{
			TenantID: t.ID, TenantSlug: t.Slug, TenantName: t.Name, Role: string(m.Role),
		})
	}
	return out, nil
}

// changePassword sets a new password after checking the current one. Every session of the
// user ends; the caller gets a fresh one (new cookie and CSRF token) in the response.
func (s *Server) changePassword(c echo.Context) error {
	p, _ := principalFrom(c)
	if p.SessionID == "" {
		return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "change your password from a browser session, not with an API token"}
	}
	var req changePasswordRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := s.accounts.ChangePassword(ctx, p.UserID, req.CurrentPassword, req.NewPassword); err != nil {
		return fail(c, err)
	}
	u, err := s.deps.Store.User(ctx, p.UserID)
	if err != nil {
		return err
	}
	return s.startSession(c, u, http.StatusOK)
}

// setupStatus tells the UI whether the install still needs its first owner.
func (s *Server) setupStatus(c echo.Context) error {
	needed, err := s.accounts.SetupNeeded(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, setupStatusResponse{Needed: needed})
}

// setup spends the one-time setup token printed by `espadmin serve`, creates the first owner
// and tenant and logs the owner in.
func (s *Server) setup(c echo.Context) error {
	var req setupRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, _, err := s.accounts.CompleteSetup(c.Request().Context(), accountSetup(req))
	if err != nil {
		return fail(c, err)
	}
	s.log.Info("first owner created", "user_id", u.ID)
	return s.startSession(c, u, http.StatusCreated)
}

// sendMail sends m after the response, so how long sending takes (or whether anything is
// sent at all) does not reveal whether an account exists.
func (s *Server) sendMail(m mail.Message, kind string) {
	if s.deps.Mailer == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), mailTimeout)
		defer cancel()
		if err := s.deps.Mailer.Send(ctx, m); err != nil {
			s.log.Error("send mail", "kind", kind, "error", err)
		}
	}()
}

// sendVerification mails a verification link to a new, unverified account.
func (s *Server) sendVerification(c echo.Context, u store.User) {
	if s.deps.Mailer == nil || u.EmailVerified {
		return
	}
	secret, err := s.accounts.EmailVerificationToken(c.Request().Context(), u.ID)
	if err != nil {
		s.log.Error("create verification link", "user_id", u.ID, "error", err)
		return
	}
	s.sendMail(mail.Verification(u.Email, s.publicURL+"/verify-email?token="+secret), "verification")
}
