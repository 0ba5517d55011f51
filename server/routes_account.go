package server

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// accountRoutes describes the identity routes (first-run setup, sign-up, login, sessions,
// passwords, email verification, OAuth). The wire types live in auth_wire.go.
func (s *Server) accountRoutes() []apiRoute {
	const get, post = http.MethodGet, http.MethodPost
	user := []echo.MiddlewareFunc{s.requireUser}
	return []apiRoute{
		{Method: get, Path: "/api/v1/setup", Handler: s.setupStatus, Tag: "auth", Summary: "Whether the install still needs its first owner",
			Auth: authNone, Response: setupStatusResponse{}},
		{Method: post, Path: "/api/v1/setup", Handler: s.setup, Tag: "auth", Summary: "Create the first owner and tenant with the one-time setup token",
			Description: "The token is printed by `espadmin serve` on a fresh install; it works once. Starts a session.",
			Auth:        authNone, Request: setupRequest{}, Status: http.StatusCreated, Response: meResponse{},
			Errors: []int{http.StatusForbidden}},
		{Method: post, Path: "/api/v1/auth/signup", Handler: s.signup, Tag: "auth", Summary: "Create an account and sign in",
			Description: "Only when sign-up is open. Sets the session cookie; the response carries the CSRF token.",
			Auth:        authNone, Request: signupRequest{}, Status: http.StatusCreated, Response: meResponse{},
			Errors: []int{http.StatusForbidden, http.StatusConflict}},
		{Method: post, Path: "/api/v1/auth/login", Handler: s.login, Tag: "auth", Summary: "Sign in with email and password",
			Description: "Sets the session cookie; the response carries the CSRF token. Repeated failures are rate-limited per account and per address (429 with Retry-After).",
			Auth:        authNone, Request: loginRequest{}, Response: meResponse{},
			Errors: []int{http.StatusUnauthorized, http.StatusTooManyRequests}},
		{Method: post, Path: "/api/v1/auth/logout", Handler: s.logout, Middleware: user, Tag: "auth", Summary: "End the browser session",
			Auth: authAny, Status: http.StatusNoContent, Errors: []int{http.StatusBadRequest}},
		{Method: get, Path: "/api/v1/auth/me", Handler: s.me, Middleware: user, Tag: "auth", Summary: "The signed-in user and their tenants",
			Auth: authAny, Response: meResponse{}},
		{Method: post, Path: "/api/v1/auth/password", Handler: s.changePassword, Middleware: user, Tag: "auth", Summary: "Change the password",
			Description: "Needs the current password; ends the other sessions and starts a new one.",
			Auth:        authSession, Request: changePasswordRequest{}, Response: meResponse{}},
		{Method: post, Path: "/api/v1/auth/password/forgot", Handler: s.forgotPassword, Tag: "auth", Summary: "Mail a password-reset link",
			Description: "Answers 202 whether or not the email has an account.",
			Auth:        authNone, Request: forgotRequest{}, Status: http.StatusAccepted, Response: acceptedResponse{}},
		{Method: post, Path: "/api/v1/auth/password/reset", Handler: s.resetPassword, Tag: "auth", Summary: "Set a new password with a reset link's token",
			Auth: authNone, Request: resetRequest{}, Status: http.StatusNoContent, Errors: []int{http.StatusForbidden}},
		{Method: post, Path: "/api/v1/auth/email/verify", Handler: s.verifyEmail, Tag: "auth", Summary: "Confirm an email address with a verification link's token",
			Auth: authNone, Request: verifyRequest{}, Response: userResponse{}, Errors: []int{http.StatusForbidden}},
		{Method: get, Path: "/api/v1/auth/providers", Handler: s.listProviders, Tag: "auth", Summary: "The enabled external login providers",
			Auth: authNone, Response: providersResponse{}},
		{Method: get, Path: "/api/v1/auth/oauth/:provider", Handler: s.oauthBegin, Tag: "auth", Summary: "Start an OAuth or OpenID Connect login",
			Description: "Redirects the browser to the provider.",
			Auth:        authNone, Status: http.StatusFound, Errors: []int{http.StatusNotFound, http.StatusServiceUnavailable}},
		{Method: get, Path: "/api/v1/auth/oauth/:provider/callback", Handler: s.oauthCallback, Tag: "auth", Summary: "Finish an OAuth or OpenID Connect login",
			Description: "The provider redirects the browser here. Links the identity to an account by verified email, or creates one when sign-up is open; starts a session.",
			Auth:        authNone, Response: meResponse{},
			Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict, http.StatusForbidden}},
	}
}
