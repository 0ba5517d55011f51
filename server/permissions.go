package server

import (
	"slices"

	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/store"
)

// Permission names one class of tenant route. Every route under /api/v1/tenants/{tenant}/ is
// registered with exactly one permission (the Perm of its apiRoute, or s.tenantScope(perm)); the
// tables below decide which roles hold it and which token scope it needs. docs/roles.md is
// generated from these tables (see TestRolesDocInSync), so the code and the documentation
// cannot disagree.
type Permission string

// Permissions, one per class of route.
const (
	// PermTenantRead lets a member see the tenant, its member list and their own API tokens,
	// and leave the tenant. Every role holds it; any valid token of the tenant may use it.
	PermTenantRead Permission = "tenant:read"
	// PermDevicesRead reads devices, projects, releases, rollouts, config and reports.
	PermDevicesRead Permission = "devices:read"
	// PermDevicesWrite creates, changes and deletes devices and their credentials.
	PermDevicesWrite Permission = "devices:write"
	// PermCommandsWrite sends commands (restart, config, update, debug) to devices.
	PermCommandsWrite Permission = "commands:write"
	// PermConfigWrite changes device and project configuration.
	PermConfigWrite Permission = "config:write"
	// PermReleasesWrite manages projects, releases and rollouts.
	PermReleasesWrite Permission = "releases:write"
	// PermMembersManage invites members, changes their roles and removes them.
	PermMembersManage Permission = "members:manage"
	// PermTokensManage creates tenant tokens and lists or revokes anyone's tokens.
	PermTokensManage Permission = "tokens:manage"
	// PermSettingsManage changes the tenant's name, slug and settings (broker, Bugsnag).
	PermSettingsManage Permission = "settings:manage"
	// PermAuditRead lists the audit log.
	PermAuditRead Permission = "audit:read"
	// PermTenantDelete deletes the tenant with everything it owns.
	PermTenantDelete Permission = "tenant:delete"
	// PermOwnershipTransfer makes another member an owner in the caller's place.
	PermOwnershipTransfer Permission = "ownership:transfer"
)

// permissionInfo describes one permission: what it covers (for docs/roles.md) and the token
// scope a token needs to use it ("" means any token of the tenant).
type permissionInfo struct {
	Perm        Permission
	Scope       string
	Description string
}

// permissions lists every permission in the order the documentation shows them.
var permissions = []permissionInfo{
	{PermTenantRead, "", "see the tenant and its members, manage one's own personal API tokens, leave the tenant"},
	{PermDevicesRead, store.ScopeDevicesRead, "read devices, projects, releases, rollouts, configuration, commands and reports"},
	{PermDevicesWrite, store.ScopeDevicesWrite, "create, change and delete devices and their credentials"},
	{PermCommandsWrite, store.ScopeCommandsWrite, "send commands (restart, config, update, debug) to devices"},
	{PermConfigWrite, store.ScopeConfigWrite, "change device and project configuration"},
	{PermReleasesWrite, store.ScopeReleasesWrite, "manage projects, releases and rollouts"},
	{PermMembersManage, store.ScopeAdmin, "invite members, change their roles, remove them"},
	{PermTokensManage, store.ScopeAdmin, "create tenant tokens; list and revoke every member's tokens"},
	{PermSettingsManage, store.ScopeAdmin, "change the tenant's name, slug and settings (broker, Bugsnag)"},
	{PermAuditRead, store.ScopeAdmin, "read the audit log"},
	{PermTenantDelete, store.ScopeAdmin, "delete the tenant and everything it owns"},
	{PermOwnershipTransfer, store.ScopeAdmin, "hand ownership to another member"},
}

// roleOrder lists the roles from most to least privileged, as the documentation shows them.
var roleOrder = []store.Role{store.RoleOwner, store.RoleAdmin, store.RoleDeveloper, store.RoleViewer}

// rolePermissions is THE role table: what each role may do in its tenant.
var rolePermissions = map[store.Role][]Permission{
	store.RoleViewer: {
		PermTenantRead, PermDevicesRead,
	},
	store.RoleDeveloper: {
		PermTenantRead, PermDevicesRead,
		PermDevicesWrite, PermCommandsWrite, PermConfigWrite, PermReleasesWrite,
	},
	store.RoleAdmin: {
		PermTenantRead, PermDevicesRead,
		PermDevicesWrite, PermCommandsWrite, PermConfigWrite, PermReleasesWrite,
		PermMembersManage, PermTokensManage, PermSettingsManage, PermAuditRead,
	},
	store.RoleOwner: {
		PermTenantRead, PermDevicesRead,
		PermDevicesWrite, PermCommandsWrite, PermConfigWrite, PermReleasesWrite,
		PermMembersManage, PermTokensManage, PermSettingsManage, PermAuditRead,
		PermTenantDelete, PermOwnershipTransfer,
	},
}

// validScope reports whether s is a scope a token may carry (account.Scopes lists them).
func validScope(s string) bool { return slices.Contains(account.Scopes, s) }

// roleAllows reports whether role holds perm.
func roleAllows(role store.Role, perm Permission) bool {
	return slices.Contains(rolePermissions[role], perm)
}

// requiredScope returns the token scope perm needs ("" for any token). Unknown permissions
// need the admin scope, so a permission added without a table entry fails closed.
func requiredScope(perm Permission) string {
	for _, p := range permissions {
		if p.Perm == perm {
			return p.Scope
		}
	}
	return store.ScopeAdmin
}

// scopesAllow reports whether a token carrying scopes may use perm. The admin scope covers
// every permission; otherwise the exact scope is needed (devices:write does not imply
// devices:read, so a CI token can be made write-only).
func scopesAllow(scopes []string, perm Permission) bool {
	need := requiredScope(perm)
	if need == "" || slices.Contains(scopes, store.ScopeAdmin) {
		return true
	}
	return slices.Contains(scopes, need)
}

// tenantTokenRole is the role a tenant token acts with: a tenant token has no person behind
// it, so it is never more than an admin (owner-only actions always need a person), and its
// scopes narrow it further.
const tenantTokenRole = store.RoleAdmin

// roleRank orders roles for comparisons (higher is more privileged).
func roleRank(r store.Role) int {
	switch r {
	case store.RoleOwner:
		return 4
	case store.RoleAdmin:
		return 3
	case store.RoleDeveloper:
		return 2
	case store.RoleViewer:
		return 1
	}
	return 0
}
