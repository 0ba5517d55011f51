package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/espadmin/espadmin/cmd/espadmin/internal/config"
	"github.com/espadmin/espadmin/server"
	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/server/mail"
	"github.com/espadmin/espadmin/store"
)

// newMailer builds the SMTP sender, or nil when mail is not configured.
func newMailer(cfg config.Mail) (mail.Sender, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	return mail.NewSMTP(cfg.SMTPURL, cfg.From)
}

// announceSetup logs the one-time setup URL while the install has no user. Each start makes
// a new URL and invalidates older ones.
func announceSetup(ctx context.Context, srv *server.Server, publicURL string, log *slog.Logger) error {
	token, err := srv.Accounts().PrepareSetup(ctx)
	if err != nil {
		return fmt.Errorf("prepare first-run setup: %w", err)
	}
	if token != "" {
		log.Warn("no user exists yet: open the setup URL to create the first owner (valid until used; a restart makes a new one)",
			"setup_url", strings.TrimRight(publicURL, "/")+"/setup?token="+token)
	}
	return nil
}

// withAccounts opens and migrates the store and runs fn with an account service on it.
func withAccounts(ctx context.Context, cfg config.Config, stderr io.Writer, fn func(*account.Service, store.Store) error) error {
	log := newLogger(cfg.Log, stderr)
	if cfg.Database.URL == config.DefaultDatabaseURL(cfg.DataDir) {
		if err := ensureDataDir(cfg.DataDir); err != nil {
			return err
		}
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore(st, log)
	if _, err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	svc := account.New(st, account.Options{
		SignupOpen:    cfg.Accounts.SignupOpen(),
		SessionIdle:   cfg.Accounts.SessionIdleTimeout,
		SessionMaxAge: cfg.Accounts.SessionMaxAge,
		ResetTTL:      cfg.Accounts.ResetLinkTTL,
	})
	return fn(svc, st)
}

// describeError turns account validation errors into one readable line.
func describeError(err error) error {
	var verr *store.InvalidError
	if errors.As(err, &verr) {
		parts := make([]string, 0, len(verr.Fields))
		for k, v := range verr.Fields {
			parts = append(parts, k+" "+v)
		}
		return errors.New(strings.Join(parts, "; "))
	}
	return err
}

func trimNewline(s string) string { return strings.TrimRight(s, "\r\n") }

// readPassword reads the first line of stdin when it is not a terminal, and prompts without
// echo otherwise.
func readPassword(stdin io.Reader, prompt io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return promptPassword(f, prompt, "Password: ")
		}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	return trimNewline(line), nil
}

type userCreateCmd struct{ email, tenant, role, name string }

func (u *userCreateCmd) define(fs *flag.FlagSet) {
	fs.StringVar(&u.email, "email", "", "email of the user (required)")
	fs.StringVar(&u.tenant, "tenant", "", "slug of the tenant; created when new (required)")
	fs.StringVar(&u.role, "role", "owner", "role in the tenant: owner, admin, developer or viewer")
	fs.StringVar(&u.name, "name", "", "display name of a new user")
}

func (u *userCreateCmd) run(ctx context.Context, cfg config.Config, stdin io.Reader, stdout, stderr io.Writer) error {
	if u.email == "" || u.tenant == "" {
		return errors.New("user create: --email and --tenant are required")
	}
	return withAccounts(ctx, cfg, stderr, func(svc *account.Service, st store.Store) error {
		password := ""
		_, err := st.UserByEmail(ctx, strings.ToLower(strings.TrimSpace(u.email)))
		if errors.Is(err, store.ErrNotFound) {
			if password, err = readPassword(stdin, stderr); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		usr, tn, created, err := svc.AddToTenant(ctx, account.SignupInput{Email: u.email, Password: password, Name: u.name}, u.tenant, "", store.Role(u.role))
		if err != nil {
			return fmt.Errorf("user create: %w", describeError(err))
		}
		verb := "added existing user"
		if created {
			verb = "created user"
		}
		fmt.Fprintf(stdout, "%s %s (%s) to tenant %s as %s\n", verb, usr.Email, usr.ID, tn.Slug, u.role)
		return nil
	})
}

type userResetLinkCmd struct{ email string }

func (u *userResetLinkCmd) define(fs *flag.FlagSet) {
	fs.StringVar(&u.email, "email", "", "email of the user (required)")
}

func (u *userResetLinkCmd) run(ctx context.Context, cfg config.Config, _ io.Reader, stdout, stderr io.Writer) error {
	if u.email == "" {
		return errors.New("user reset-link: --email is required")
	}
	return withAccounts(ctx, cfg, stderr, func(svc *account.Service, _ store.Store) error {
		secret, _, err := svc.PasswordResetToken(ctx, u.email)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("user reset-link: no user with email %q", u.email)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "reset link for %s, valid for %s and usable once:\n", u.email, cfg.Accounts.ResetLinkTTL)
		if ws := (fleet.Endpoint{ServerURL: cfg.HTTP.PublicURL}).LoopbackWarnings(); len(ws) > 0 {
			fmt.Fprintf(stderr, "note: the link starts with %s, which only works on this machine; give the --public-url (or ESPADMIN_PUBLIC_URL, or --config file) serve uses\n", cfg.HTTP.PublicURL)
		}
		fmt.Fprintln(stdout, strings.TrimRight(cfg.HTTP.PublicURL, "/")+"/reset-password?token="+secret)
		return nil
	})
}

type tokenCreateCmd struct {
	email, tenant, name, scopes string
	expires                     time.Duration
}

func (c *tokenCreateCmd) define(fs *flag.FlagSet) {
	fs.StringVar(&c.email, "email", "", "the member the token acts as (required)")
	fs.StringVar(&c.tenant, "tenant", "", "slug of the tenant the token belongs to (required)")
	fs.StringVar(&c.name, "name", "", "name telling tokens apart, e.g. ci-deploy (required)")
	fs.StringVar(&c.scopes, "scopes", store.ScopeDevicesRead, "comma-separated scopes: "+strings.Join(account.Scopes, ","))
	fs.Func("expires", "lifetime such as 30d, 12h or 90m (as in the UI); 0 or empty never expires", func(s string) error {
		if s == "" || s == "0" {
			c.expires = 0
			return nil
		}
		d, err := server.ParseLifetime(s)
		if err != nil {
			return fmt.Errorf("%q %v", s, err)
		}
		c.expires = d
		return nil
	})
}

func (c *tokenCreateCmd) run(ctx context.Context, cfg config.Config, _ io.Reader, stdout, stderr io.Writer) error {
	if c.email == "" || c.tenant == "" || c.name == "" {
		return errors.New("token create: --email, --tenant and --name are required")
	}
	if c.expires < 0 {
		return errors.New("token create: --expires must not be negative")
	}
	return withAccounts(ctx, cfg, stderr, func(svc *account.Service, st store.Store) error {
		u, err := st.UserByEmail(ctx, strings.ToLower(strings.TrimSpace(c.email)))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("token create: no user with email %q", c.email)
		}
		if err != nil {
			return err
		}
		tn, err := st.TenantBySlug(ctx, c.tenant)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("token create: no tenant %q", c.tenant)
		}
		if err != nil {
			return err
		}
		if _, err := st.Membership(ctx, tn.ID, u.ID); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("token create: %s is not a member of %s", c.email, c.tenant)
		} else if err != nil {
			return err
		}
		var scopes []string
		for _, s := range strings.Split(c.scopes, ",") {
			if s = strings.TrimSpace(s); s != "" {
				scopes = append(scopes, s)
			}
		}
		in := account.NewAPIToken{TenantID: tn.ID, UserID: u.ID, Name: c.name, Scopes: scopes, CreatedBy: u.ID}
		if c.expires > 0 {
			at := svc.Now().Add(c.expires)
			in.ExpiresAt = &at
		}
		tok, err := svc.CreateAPIToken(ctx, in)
		if err != nil {
			return fmt.Errorf("token create: %w", describeError(err))
		}
		expiry := "never expires"
		if tok.APIToken.ExpiresAt != nil {
			expiry = "expires " + tok.APIToken.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "created token %q (%s) for %s in %s, scopes %s, %s; it is shown only once:\n",
			c.name, tok.APIToken.ID, u.Email, tn.Slug, strings.Join(tok.APIToken.Scopes, ","), expiry)
		fmt.Fprintln(stdout, tok.Token)
		return nil
	})
}
