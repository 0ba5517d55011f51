package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/server/mail"
	"github.com/espadmin/espadmin/store"
)

// forgotPassword always answers 202, whether the email has an account or not; when it has
// and mail is configured, a reset link is mailed. The work happens after the response, so
// the answer time reveals nothing either.
func (s *Server) forgotPassword(c echo.Context) error {
	var req forgotRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if _, err := account.NormalizeEmail(req.Email); err != nil {
		return store.Invalid("email", err.Error())
	}
	if s.deps.Mailer == nil {
		s.log.Warn("password reset requested but mail is not configured; an admin can run: espadmin user reset-link --email …")
		return c.JSON(http.StatusAccepted, acceptedResponse{Status: "accepted"})
	}
	// The count is kept per address, account or not, so an error here says nothing about the
	// account either; without the count no mail goes out.
	allow, err := s.accounts.AllowResetMail(c.Request().Context(), req.Email)
	if err != nil {
		return err
	}
	if allow {
		go s.mailResetLink(req.Email)
	}
	return c.JSON(http.StatusAccepted, acceptedResponse{Status: "accepted"})
}

func (s *Server) mailResetLink(email string) {
	ctx, cancel := context.WithTimeout(context.Background(), mailTimeout)
	defer cancel()
	secret, u, err := s.accounts.PasswordResetToken(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		s.log.Error("create reset link", "error", err)
		return
	}
	m := mail.PasswordReset(u.Email, s.ResetURL(secret), s.deps.Accounts.ResetLinkTTL.String())
	if err := s.deps.Mailer.Send(ctx, m); err != nil {
		s.log.Error("send mail", "kind", "password_reset", "user_id", u.ID, "error", err)
	}
}

// ResetURL is the link a reset secret is sent in; `espadmin user reset-link` prints it too.
func (s *Server) ResetURL(secret string) string {
	return s.publicURL + "/reset-password?token=" + secret
}

// resetPassword spends a reset link and sets the new password; every session of the user
// ends.
func (s *Server) resetPassword(c echo.Context) error {
	var req resetRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, err := s.accounts.ResetPassword(c.Request().Context(), req.Token, req.Password)
	if err != nil {
		return fail(c, err)
	}
	s.log.Info("password reset", "user_id", u.ID)
	return c.NoContent(http.StatusNoContent)
}

// verifyEmail spends a verification link.
func (s *Server) verifyEmail(c echo.Context) error {
	var req verifyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, err := s.accounts.VerifyEmail(c.Request().Context(), req.Token)
	if err != nil {
		return fail(c, err)
	}
	return c.JSON(http.StatusOK, toUserResponse(u))
}

func accountSignup(r signupRequest) account.SignupInput {
	return account.SignupInput{Email: r.Email, Password: r.Password, Name: r.Name}
}

func accountSetup(r setupRequest) account.SetupInput {
	return account.SetupInput{
		Token: r.Token, Email: r.Email, Password: r.Password, Name: r.Name,
		TenantName: r.TenantName, TenantSlug: r.TenantSlug,
	}
}
