package server

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/store"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite generated documentation (docs/roles.md) from the code")

// rolesMarkdown renders docs/roles.md from the permission tables.
func rolesMarkdown() string {
	var b strings.Builder
	b.WriteString("# Roles, permissions and token scopes\n\n")
	b.WriteString("<!-- Generated from server/permissions.go by `go test ./server -run TestRolesDocInSync -update-docs`; do not edit by hand. -->\n\n")
	b.WriteString("A user belongs to any number of tenants with one role in each. Every route under\n")
	b.WriteString("`/api/v1/tenants/{tenant}/` needs one permission; a role either holds it or not.\n\n")
	b.WriteString("## What each role may do\n\n")
	b.WriteString("| permission | what it allows |")
	for _, r := range roleOrder {
		b.WriteString(" " + string(r) + " |")
	}
	b.WriteString("\n|---|---|")
	for range roleOrder {
		b.WriteString(":---:|")
	}
	b.WriteString("\n")
	for _, p := range permissions {
		b.WriteString("| `" + string(p.Perm) + "` | " + p.Description + " |")
		for _, r := range roleOrder {
			if roleAllows(r, p.Perm) {
				b.WriteString(" yes |")
			} else {
				b.WriteString(" — |")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\nIn short: a viewer reads; a developer also manages devices, projects, releases, commands\n")
	b.WriteString("and configuration; an admin also manages members, API tokens, tenant settings and reads the\n")
	b.WriteString("audit log; an owner also deletes the tenant and transfers ownership. Only an owner may make\n")
	b.WriteString("someone an owner, change or remove an owner, and a tenant always keeps at least one owner:\n")
	b.WriteString("demoting, removing or leaving as the last owner is `409 last_owner`, and when two owners\n")
	b.WriteString("demote each other at the same moment (on one replica or two), the change that would leave\n")
	b.WriteString("none is undone and answered the same way.\n\n")

	b.WriteString("## API token scopes\n\n")
	b.WriteString("Known scopes: " + "`" + strings.Join(account.Scopes, "`, `") + "`.\n\n")
	b.WriteString("| permission | scope a token needs |\n|---|---|\n")
	for _, p := range permissions {
		sc := "any token of the tenant"
		if p.Scope != "" {
			sc = "`" + p.Scope + "`"
		}
		b.WriteString("| `" + string(p.Perm) + "` | " + sc + " |\n")
	}
	b.WriteString("\nThe `admin` scope covers every permission; other scopes cover exactly their own\n")
	b.WriteString("(`devices:write` does not include `devices:read`).\n\n")
	b.WriteString("- A **personal token** acts as the member who created it and is limited by BOTH its scopes\n")
	b.WriteString("  and that member's current role: a viewer's token with the `admin` scope still cannot\n")
	b.WriteString("  manage members, and demoting or removing a member narrows or ends their tokens at once.\n")
	b.WriteString("- A **tenant token** belongs to the tenant, not to a person. It acts with at most the\n")
	b.WriteString("  `" + string(tenantTokenRole) + "` role, narrowed by its scopes; owner-only permissions always need a person.\n")
	b.WriteString("  Creating one needs `tokens:manage`.\n")
	b.WriteString("- A token cannot create a token with a scope it lacks itself (unless it has `admin`).\n")
	b.WriteString("- Creating tenants and accepting invitations need a browser session: a token belongs to\n")
	b.WriteString("  one tenant and cannot reach beyond it.\n\n")

	b.WriteString("## Answers\n\n")
	b.WriteString("- not signed in: **401**;\n")
	b.WriteString("- a tenant that does not exist, or that the caller does not belong to (including a token of\n")
	b.WriteString("  another tenant): **404**, the same answer, so tenants and their resources cannot be probed;\n")
	b.WriteString("- a member whose role lacks the permission, or a token without the scope: **403**.\n")
	return b.String()
}

func TestRolesDocInSync(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "docs", "roles.md")
	want := rolesMarkdown()
	if *updateDocs {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./server -run TestRolesDocInSync -update-docs)", err)
	}
	if string(got) != want {
		t.Errorf("docs/roles.md is out of date with server/permissions.go; run go test ./server -run TestRolesDocInSync -update-docs")
	}
}

// TestRoleTable pins the rules the issue states, so an edit of the table that breaks them
// fails here, not in production.
func TestRoleTable(t *testing.T) {
	t.Parallel()
	all := make([]Permission, len(permissions))
	for i, p := range permissions {
		all[i] = p.Perm
	}
	want := map[store.Role][]Permission{
		store.RoleViewer:    {PermTenantRead, PermDevicesRead},
		store.RoleDeveloper: {PermTenantRead, PermDevicesRead, PermDevicesWrite, PermCommandsWrite, PermConfigWrite, PermReleasesWrite},
		store.RoleAdmin: {PermTenantRead, PermDevicesRead, PermDevicesWrite, PermCommandsWrite, PermConfigWrite, PermReleasesWrite,
			PermMembersManage, PermTokensManage, PermSettingsManage, PermAuditRead},
		store.RoleOwner: all,
	}
	for _, role := range roleOrder {
		for _, p := range all {
			if got, exp := roleAllows(role, p), slices.Contains(want[role], p); got != exp {
				t.Errorf("role %s, permission %s: allowed %v, want %v", role, p, got, exp)
			}
		}
	}
	// Each role holds everything the role below it holds.
	for i := 0; i+1 < len(roleOrder); i++ {
		for _, p := range rolePermissions[roleOrder[i+1]] {
			if !roleAllows(roleOrder[i], p) {
				t.Errorf("%s lacks %s which %s has", roleOrder[i], p, roleOrder[i+1])
			}
		}
	}
	if roleAllows("", PermTenantRead) || roleAllows("superuser", PermDevicesRead) {
		t.Error("an unknown role holds a permission")
	}
	if len(rolePermissions) != len(roleOrder) {
		t.Errorf("role table has %d roles, want %d", len(rolePermissions), len(roleOrder))
	}
	for _, r := range roleOrder {
		if !r.Valid() {
			t.Errorf("role %q not valid in the store", r)
		}
	}
}

func TestScopeTable(t *testing.T) {
	t.Parallel()
	for _, p := range permissions {
		if p.Scope != "" && !validScope(p.Scope) {
			t.Errorf("permission %s needs unknown scope %q", p.Perm, p.Scope)
		}
	}
	tests := []struct {
		scopes []string
		perm   Permission
		want   bool
	}{
		{[]string{store.ScopeDevicesRead}, PermDevicesRead, true},
		{[]string{store.ScopeDevicesRead}, PermDevicesWrite, false},
		{[]string{store.ScopeDevicesWrite}, PermDevicesRead, false},
		{[]string{store.ScopeCommandsWrite}, PermCommandsWrite, true},
		{[]string{store.ScopeConfigWrite}, PermConfigWrite, true},
		{[]string{store.ScopeReleasesWrite}, PermReleasesWrite, true},
		{[]string{store.ScopeReleasesWrite}, PermMembersManage, false},
		{[]string{store.ScopeAdmin}, PermMembersManage, true},
		{[]string{store.ScopeAdmin}, PermDevicesWrite, true},
		{[]string{}, PermTenantRead, true},
		{[]string{store.ScopeDevicesRead}, PermAuditRead, false},
		{[]string{store.ScopeAdmin}, Permission("made:up"), true},
		{[]string{store.ScopeDevicesRead}, Permission("made:up"), false},
	}
	for _, tt := range tests {
		if got := scopesAllow(tt.scopes, tt.perm); got != tt.want {
			t.Errorf("scopes %v, permission %s: %v, want %v", tt.scopes, tt.perm, got, tt.want)
		}
	}
	if requiredScope(Permission("made:up")) != store.ScopeAdmin {
		t.Error("an unknown permission does not fail closed")
	}
	if roleAllows(tenantTokenRole, PermTenantDelete) || roleAllows(tenantTokenRole, PermOwnershipTransfer) {
		t.Error("tenant tokens may do owner-only things")
	}
}
