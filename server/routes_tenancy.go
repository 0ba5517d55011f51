package server

import (
	"net/http"
)

type (
	openAPIDoc     = map[string]any
	tenantPage     = pageResponse[tenantResponse]
	memberPage     = pageResponse[memberResponse]
	invitationPage = pageResponse[invitationResponse]
	tokenPage      = pageResponse[tokenResponse]
	auditPage      = pageResponse[auditEventResponse]
)

// tenancyRoutes describes the tenant, member, invitation, token, audit and OpenAPI routes.
func (s *Server) tenancyRoutes() []apiRoute {
	const (
		get, post, patch, del = http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete
		tenant                = "/api/v1/tenants/:tenant"
	)
	return []apiRoute{
		{Method: get, Path: "/api/v1/openapi.json", Handler: s.serveOpenAPI, Tag: "meta", Summary: "This OpenAPI document",
			Auth: authNone, Response: openAPIDoc{}},

		{Method: get, Path: "/api/v1/tenants", Handler: s.listTenants, Tag: "tenants", Summary: "List the caller's tenants",
			Description: "Every tenant the signed-in user belongs to, with their role in each; an API token sees its own tenant.",
			Auth:        authAny, Response: tenantPage{}},
		{Method: post, Path: "/api/v1/tenants", Handler: s.createTenant, Tag: "tenants", Summary: "Create a tenant",
			Description: "The caller becomes its owner. A taken slug is 422 on the slug field.",
			Auth:        authSession, Request: createTenantRequest{}, Status: http.StatusCreated, Response: tenantResponse{}},
		{Method: get, Path: tenant, Handler: s.getTenant, Tag: "tenants", Summary: "Show a tenant",
			Auth: authTenant, Perm: PermTenantRead, Response: tenantResponse{}},
		{Method: patch, Path: tenant, Handler: s.updateTenant, Tag: "tenants", Summary: "Rename a tenant or change its slug",
			Auth: authTenant, Perm: PermSettingsManage, Request: updateTenantRequest{}, Response: tenantResponse{}},
		{Method: del, Path: tenant, Handler: s.deleteTenant, Tag: "tenants", Summary: "Delete a tenant and everything it owns",
			Description: "The body must confirm the tenant's slug.",
			Auth:        authTenant, Perm: PermTenantDelete, Request: deleteTenantRequest{}, Status: http.StatusNoContent},
		{Method: post, Path: tenant + "/transfer-ownership", Handler: s.transferOwnership, Tag: "tenants", Summary: "Transfer ownership",
			Description: "The named member becomes an owner and the caller an admin.",
			Auth:        authTenant, Perm: PermOwnershipTransfer, Request: transferOwnershipRequest{}, Response: tenantResponse{}},

		{Method: get, Path: tenant + "/members", Handler: s.listMembers, Tag: "members", Summary: "List members",
			Auth: authTenant, Perm: PermTenantRead, Query: pageQuery{}, Response: memberPage{}},
		{Method: patch, Path: tenant + "/members/:user", Handler: s.updateMember, Tag: "members", Summary: "Change a member's role",
			Description: "Only owners grant the owner role or change an owner's role; the last owner cannot be demoted (409).",
			Auth:        authTenant, Perm: PermMembersManage, Request: updateMemberRequest{}, Response: memberResponse{},
			Errors: []int{http.StatusConflict}},
		{Method: del, Path: tenant + "/members/:user", Handler: s.removeMember, Tag: "members", Summary: "Remove a member",
			Description: "Their personal tokens in the tenant are deleted too. The last owner cannot be removed (409).",
			Auth:        authTenant, Perm: PermMembersManage, Status: http.StatusNoContent, Errors: []int{http.StatusConflict}},
		{Method: post, Path: tenant + "/leave", Handler: s.leaveTenant, Tag: "members", Summary: "Leave the tenant",
			Description: "The last owner cannot leave (409).",
			Auth:        authTenant, Perm: PermTenantRead, Status: http.StatusNoContent, Errors: []int{http.StatusConflict}},

		{Method: post, Path: tenant + "/invitations", Handler: s.createInvitation, Tag: "invitations", Summary: "Invite someone by email",
			Description: "Mails a single-use link valid for 7 days when mail is configured; the response carries the link either way. Only owners invite owners.",
			Auth:        authTenant, Perm: PermMembersManage, Request: createInvitationRequest{}, Status: http.StatusCreated,
			Response: invitationCreatedResponse{}, Errors: []int{http.StatusConflict}},
		{Method: get, Path: tenant + "/invitations", Handler: s.listInvitations, Tag: "invitations", Summary: "List invitations, newest first",
			Auth: authTenant, Perm: PermMembersManage, Query: pageQuery{}, Response: invitationPage{}},
		{Method: del, Path: tenant + "/invitations/:invitation", Handler: s.revokeInvitation, Tag: "invitations", Summary: "Revoke an invitation",
			Auth: authTenant, Perm: PermMembersManage, Status: http.StatusNoContent, Errors: []int{http.StatusConflict}},
		{Method: post, Path: "/api/v1/invitations/accept", Handler: s.acceptInvitation, Tag: "invitations", Summary: "Accept an invitation",
			Description: "The signed-in user's email must be the invited one. Unknown or revoked: 404; used: 409; expired: 410.",
			Auth:        authSession, Request: acceptInvitationRequest{}, Response: tenantResponse{},
			Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusGone}},

		{Method: get, Path: tenant + "/tokens", Handler: s.listTokens, Tag: "tokens", Summary: "List API tokens",
			Description: "Members with tokens:manage see every token; others see their own personal tokens.",
			Auth:        authTenant, Perm: PermTenantRead, Query: pageQuery{}, Response: tokenPage{}},
		{Method: post, Path: tenant + "/tokens", Handler: s.createToken, Tag: "tokens", Summary: "Create an API token",
			Description: "kind personal (default) acts as the caller, limited by both its scopes and the caller's role; kind tenant needs tokens:manage. The secret is in the response only.",
			Auth:        authTenant, Perm: PermTenantRead, Request: createTokenRequest{}, Status: http.StatusCreated,
			Response: tokenCreatedResponse{}},
		{Method: del, Path: tenant + "/tokens/:token", Handler: s.deleteToken, Tag: "tokens", Summary: "Revoke an API token",
			Description: "Members revoke their own personal tokens; tokens:manage revokes any.",
			Auth:        authTenant, Perm: PermTenantRead, Status: http.StatusNoContent},

		{Method: get, Path: tenant + "/audit", Handler: s.listAudit, Tag: "audit", Summary: "List the audit log, newest first",
			Auth: authTenant, Perm: PermAuditRead, Query: auditQuery{}, Response: auditPage{}},
	}
}
