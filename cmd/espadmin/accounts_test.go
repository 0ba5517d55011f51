package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/cmd/espadmin/internal/config"
	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/store/sqlstore"
)

func TestUserAndTokenCommands(t *testing.T) {
	t.Setenv("ESPADMIN_MASTER_KEY", "")
	dir := t.TempDir()
	base := []string{"--data-dir", dir}
	cli := func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		err := runIO(t.Context(), append(args, base...), strings.NewReader(stdin), &out, io.Discard)
		return out.String(), err
	}

	out, err := cli("a long password\nignored second line\n", "user", "create", "--email", "Ada@Example.com", "--tenant", "acme")
	if err != nil || !strings.Contains(out, "created user ada@example.com") {
		t.Fatalf("user create: %v %q", err, out)
	}
	if _, err := cli("short\n", "user", "create", "--email", "bob@example.com", "--tenant", "acme"); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("weak password accepted: %v", err)
	}
	out, err = cli("", "user", "create", "--email", "ada@example.com", "--tenant", "beta", "--role", "viewer")
	if err != nil || !strings.Contains(out, "added existing user") {
		t.Fatalf("add to second tenant: %v %q", err, out)
	}
	out, err = cli("", "token", "create", "--email", "ada@example.com", "--tenant", "acme", "--name", "ci",
		"--scopes", "devices:read,devices:write", "--expires", "720h")
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, account.APITokenPrefix) || strings.ContainsAny(token, " \t") {
		t.Fatalf("last line %q is not a token alone", token)
	}
	if _, err := cli("", "token", "create", "--email", "ada@example.com", "--tenant", "acme", "--name", "x", "--scopes", "root"); err == nil {
		t.Error("unknown scope accepted")
	}
	if _, err := cli("", "token", "create", "--email", "nobody@example.com", "--tenant", "acme", "--name", "x"); err == nil {
		t.Error("token for unknown user")
	}
	// Lifetimes read as in the UI: days too; bad ones are refused with the forms that work.
	out, err = cli("", "token", "create", "--email", "ada@example.com", "--tenant", "acme", "--name", "month", "--expires", "30d")
	if err != nil || !strings.Contains(out, "expires "+time.Now().AddDate(0, 0, 30).UTC().Format("2006-01-02")) {
		t.Errorf("token create --expires 30d: %v %q", err, out)
	}
	for _, bad := range []string{"30x", "-1d", "1d2h"} {
		_, err := cli("", "token", "create", "--email", "ada@example.com", "--tenant", "acme", "--name", "bad", "--expires", bad)
		if err == nil || !strings.Contains(err.Error(), "30d, 12h or 90m") && !strings.Contains(err.Error(), "must be positive") {
			t.Errorf("token create --expires %s: %v, want an error naming the accepted forms", bad, err)
		}
	}
	out, err = cli("", "user", "reset-link", "--email", "ada@example.com")
	if err != nil || !strings.Contains(out, "/reset-password?token=") {
		t.Errorf("reset-link: %v %q", err, out)
	}

	// The database holds what the commands said: the password logs in, the token verifies.
	st, err := sqlstore.Open(context.Background(), config.DefaultDatabaseURL(dir), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := account.New(st, account.Options{})
	u, err := svc.Login(t.Context(), "ada@example.com", "a long password", "127.0.0.1")
	if err != nil {
		t.Fatalf("login with the piped password: %v", err)
	}
	ms, _ := st.UserMemberships(t.Context(), u.ID)
	if len(ms) != 2 {
		t.Errorf("memberships %v", ms)
	}
	tok, err := svc.VerifyAPIToken(t.Context(), token)
	if err != nil || tok.UserID != u.ID || len(tok.Scopes) != 2 || tok.ExpiresAt == nil {
		t.Errorf("token %+v: %v", tok, err)
	}
}
