package server

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/store"
)

// Token kinds on the wire.
const (
	tokenKindPersonal = "personal"
	tokenKindTenant   = "tenant"
)

// maxTokenLifetime bounds expires_in; a token meant to live longer should have no expiry,
// which is then visible in the token list.
const maxTokenLifetime = 10 * 365 * 24 * time.Hour

// createTokenRequest creates an API token. A personal token acts as the caller (limited by
// both its scopes and the caller's role at the time of each request); a tenant token belongs
// to the tenant, outlives any member, acts as at most an admin and needs tokens:manage to
// create.
type createTokenRequest struct {
	Name      string   `json:"name" doc:"what the token is for, at most 100 characters"`
	Kind      string   `json:"kind,omitempty" enum:"personal,tenant" doc:"default personal"`
	Scopes    []string `json:"scopes" enum:"devices:read,devices:write,commands:write,config:write,releases:write,admin"`
	ExpiresIn string   `json:"expires_in,omitempty" doc:"lifetime such as 30d, 12h or 90m; absent means no expiry"`
}

// tokenResponse is an API token without its secret.
type tokenResponse struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Kind       string     `json:"kind" enum:"personal,tenant"`
	Prefix     string     `json:"prefix" doc:"the first characters of the token, to tell tokens apart"`
	Scopes     []string   `json:"scopes"`
	UserID     string     `json:"user_id,omitempty" doc:"the member a personal token acts as"`
	CreatedBy  string     `json:"created_by,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
}

// tokenCreatedResponse carries the token's secret, shown this once.
type tokenCreatedResponse struct {
	tokenResponse
	Token string `json:"token" doc:"the secret to send as Authorization: Bearer; shown only now"`
}

func tokenOf(t store.APIToken) tokenResponse {
	kind := tokenKindPersonal
	if t.UserID == "" {
		kind = tokenKindTenant
	}
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return tokenResponse{
		ID: t.ID, Name: t.Name, Kind: kind, Prefix: t.Prefix, Scopes: scopes, UserID: t.UserID,
		CreatedBy: t.CreatedBy, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, CreatedAt: t.CreatedAt,
	}
}

// ParseLifetime reads a token lifetime: a Go duration ("12h", "90m") or a number of days
// ("30d"). The API, the UI and `espadmin token create` accept the same forms.
func ParseLifetime(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, errors.New("must be a duration such as 30d, 12h or 90m")
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, errors.New("must be a duration such as 30d, 12h or 90m")
		}
	}
	if d <= 0 || d > maxTokenLifetime {
		return 0, fmt.Errorf("must be positive and at most %d days", int(maxTokenLifetime/(24*time.Hour)))
	}
	return d, nil
}

// canManageTokens reports whether the caller may see and revoke every token of the tenant
// and create tenant tokens.
func canManageTokens(tc tenantContext) bool {
	if !roleAllows(tc.Role, PermTokensManage) {
		return false
	}
	return tc.Principal.TokenID == "" || scopesAllow(tc.Principal.Scopes, PermTokensManage)
}

// createToken serves POST /api/v1/tenants/:tenant/tokens. A caller authenticated by a token
// cannot mint a token with scopes its own token lacks (unless it holds admin), so a
// narrowly scoped CI token cannot widen itself.
func (s *Server) createToken(c echo.Context) error {
	tc := tenantFrom(c)
	var req createTokenRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	fields := map[string]string{}
	switch req.Kind {
	case "", tokenKindPersonal:
		req.Kind = tokenKindPersonal
	case tokenKindTenant:
	default:
		fields["kind"] = "must be personal or tenant"
	}
	if strings.TrimSpace(req.Name) == "" {
		fields["name"] = "must not be empty"
	}
	if len(req.Scopes) == 0 {
		fields["scopes"] = "must name at least one scope"
	}
	for _, sc := range req.Scopes {
		if !validScope(sc) {
			fields["scopes"] = fmt.Sprintf("unknown scope %q (known: %s)", sc, strings.Join(account.Scopes, ", "))
			break
		}
	}
	var expiresAt *time.Time
	if req.ExpiresIn != "" {
		d, err := ParseLifetime(req.ExpiresIn)
		if err != nil {
			fields["expires_in"] = err.Error()
		} else {
			at := store.Timestamp(s.now().Add(d))
			expiresAt = &at
		}
	}
	if len(fields) > 0 {
		return &store.InvalidError{Fields: fields}
	}

	p := tc.Principal
	userID := p.UserID
	if req.Kind == tokenKindTenant {
		if !canManageTokens(tc) {
			return errForbidden("creating tenant tokens needs the tokens:manage permission")
		}
		userID = ""
	} else if p.UserID == "" {
		return errForbidden("a tenant token cannot create personal tokens; use kind tenant")
	}
	if p.TokenID != "" && !slices.Contains(p.Scopes, store.ScopeAdmin) {
		for _, sc := range req.Scopes {
			if !slices.Contains(p.Scopes, sc) {
				return errForbidden(fmt.Sprintf("this API token cannot grant the scope %s it lacks", sc))
			}
		}
	}
	created, err := s.accounts.CreateAPIToken(c.Request().Context(), account.NewAPIToken{
		TenantID:  tc.Tenant.ID,
		UserID:    userID,
		Name:      req.Name,
		Scopes:    req.Scopes,
		ExpiresAt: expiresAt,
		CreatedBy: p.UserID,
	})
	if err != nil {
		return err
	}
	t := created.APIToken
	details := map[string]any{"name": t.Name, "kind": req.Kind, "scopes": t.Scopes}
	if t.ExpiresAt != nil {
		details["expires_at"] = *t.ExpiresAt
	}
	s.audit(c, auditTokenCreate, "token", t.ID, details)
	return c.JSON(http.StatusCreated, tokenCreatedResponse{tokenResponse: tokenOf(t), Token: created.Token})
}

// listTokens serves GET /api/v1/tenants/:tenant/tokens. Those who manage tokens see all of
// them; other members see their own personal tokens, so a page may hold fewer items than
// the limit while next_cursor is still set.
func (s *Server) listTokens(c echo.Context) error {
	tc := tenantFrom(c)
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	page, err := s.deps.Store.ListAPITokens(c.Request().Context(), tc.Tenant.ID, opts)
	if err != nil {
		return err
	}
	all := canManageTokens(tc)
	out := pageResponse[tokenResponse]{Items: []tokenResponse{}, NextCursor: page.NextCursor}
	for _, t := range page.Items {
		if all || (t.UserID != "" && t.UserID == tc.Principal.UserID) {
			out.Items = append(out.Items, tokenOf(t))
		}
	}
	return c.JSON(http.StatusOK, out)
}

// deleteToken serves DELETE /api/v1/tenants/:tenant/tokens/:token. A member may revoke their
// own personal tokens; those who manage tokens may revoke any. Another member's token is
// 404 to everyone else, like a token that does not exist.
func (s *Server) deleteToken(c echo.Context) error {
	tc := tenantFrom(c)
	ctx := c.Request().Context()
	t, err := s.deps.Store.APIToken(ctx, tc.Tenant.ID, c.Param("token"))
	notFound := &Error{Status: http.StatusNotFound, Message: "token not found"}
	if errors.Is(err, store.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	own := t.UserID != "" && t.UserID == tc.Principal.UserID
	if !own && !canManageTokens(tc) {
		return notFound
	}
	if err := s.deps.Store.DeleteAPIToken(ctx, tc.Tenant.ID, t.ID); err != nil {
		return err
	}
	s.audit(c, auditTokenDelete, "token", t.ID, map[string]any{"name": t.Name, "owner_user_id": t.UserID})
	return c.NoContent(http.StatusNoContent)
}
