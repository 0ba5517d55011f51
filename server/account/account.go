// Package account is ESP Admin's identity logic, independent of HTTP: password hashing and
// policy, sign-up and login with rate limiting, browser sessions, API tokens, the first-run
// setup, password reset, email verification and linking OAuth identities to users.
//
// Secrets handed to people (session cookies, API tokens, one-time links) are 32 random bytes;
// only their SHA-256 is stored, so a copy of the database yields nothing usable, and any
// replica can check them.
package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/espadmin/espadmin/store"
)

// Errors the server maps to responses.
var (
	// ErrInvalidCredentials is the one answer to a wrong password, an unknown email or a
	// disabled account, so a login cannot reveal which emails have accounts.
	ErrInvalidCredentials = errors.New("invalid email or password")
	// ErrSignupClosed means accounts cannot be created by their owners (accounts.signup).
	ErrSignupClosed = errors.New("sign-up is closed on this server; ask an administrator for an invitation")
	// ErrEmailTaken means another account already uses the email.
	ErrEmailTaken = errors.New("an account with this email already exists")
	// ErrInvalidToken means a one-time link is wrong, used or expired.
	ErrInvalidToken = errors.New("this link is invalid, expired or already used")
	// ErrSetupDone means the install already has users.
	ErrSetupDone = errors.New("setup is already complete")
	// ErrUnauthenticated means a session or API token is unknown or expired.
	ErrUnauthenticated = errors.New("session or token invalid or expired")
	// ErrUnverifiedEmail means an OAuth provider did not vouch for an email that belongs to
	// an existing account, so the identity cannot be linked to it.
	ErrUnverifiedEmail = errors.New("an account with this email exists, but the provider has not verified the email; sign in with your password instead")
	// ErrNoEmail means an OAuth provider shared no email address for a new account.
	ErrNoEmail = errors.New("the provider did not share an email address")
	// ErrWrongPassword means the current password given to change it is wrong.
	ErrWrongPassword = errors.New("current password is wrong")
)

// RateLimitError means too many failed logins; the client may retry after RetryAfter.
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("too many failed attempts; retry in %s", e.RetryAfter.Round(time.Second))
}

// Options configure a Service.
type Options struct {
	// SignupOpen lets anyone create an account (by email or OAuth).
	SignupOpen bool
	// SessionIdle and SessionMaxAge bound sessions (defaults 24 h and 30 days).
	SessionIdle   time.Duration
	SessionMaxAge time.Duration
	// ResetTTL bounds password-reset links (default 1 h).
	ResetTTL time.Duration
	// Now is the clock; nil means time.Now. Tests inject one.
	Now func() time.Time
	// Hash are the argon2id parameters; zero means DefaultHashParams.
	Hash HashParams
}

// Lifetimes that have no setting.
const (
	verifyTTL = 72 * time.Hour
	setupTTL  = 365 * 24 * time.Hour // "valid until used": a new one is made at every start anyway
	// touchEvery limits writes: a session or token's last-use time is saved at most this often.
	touchEvery = time.Minute
)

// Login rate limits: per account, 5 free failures then 1 s doubling to 15 min; per client
// address, 20 free failures (offices share addresses) then the same backoff.
const (
	accountFreeFailures = 5
	ipFreeFailures      = 20
	backoffBase         = time.Second
	backoffMax          = 15 * time.Minute
)

// Kinds of rate-limit keys, the prefixes of the keys in the store.
const (
	limitLoginAccount   = "login-account"
	limitLoginAddr      = "login-addr"
	limitPasswordChange = "password-change"
	limitResetMail      = "reset-mail"
)

// Service implements the account operations on a store.
type Service struct {
	st   store.Store
	opts Options
	now  func() time.Time
	// Rate limits, counted in the store so that replicas share them: logins per account and
	// per client address, password changes per user, reset mails per address.
	accounts *limiter
	addrs    *limiter
	changes  *limiter
	resets   *limiter
	// dummyHash is compared when the email is unknown, so an unknown email takes as long as
	// a wrong password. It is made on first use: hashing allocates the full argon2 memory
	// (19 MiB by default), which an idle server should not carry from its start.
	dummyHash func() string
}

// New returns a Service.
func New(st store.Store, opts Options) *Service {
	if opts.SessionIdle <= 0 {
		opts.SessionIdle = 24 * time.Hour
	}
	if opts.SessionMaxAge <= 0 {
		opts.SessionMaxAge = 30 * 24 * time.Hour
	}
	if opts.ResetTTL <= 0 {
		opts.ResetTTL = time.Hour
	}
	if opts.Hash == (HashParams{}) {
		opts.Hash = DefaultHashParams
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	dummy := sync.OnceValue(func() string {
		h, err := HashPassword("dummy password for timing equalisation", opts.Hash)
		if err != nil {
			panic("account: " + err.Error()) // crypto/rand cannot fail on supported platforms
		}
		return h
	})
	return &Service{
		st: st, opts: opts, now: now, dummyHash: dummy,
		accounts: newLimiter(st, limitLoginAccount, accountFreeFailures, backoffBase, backoffMax),
		addrs:    newLimiter(st, limitLoginAddr, ipFreeFailures, backoffBase, backoffMax),
		changes:  newLimiter(st, limitPasswordChange, accountFreeFailures, backoffBase, backoffMax),
		resets:   newLimiter(st, limitResetMail, resetMailsFree, time.Minute, time.Hour),
	}
}

// SignupOpen reports whether anyone may create an account.
func (s *Service) SignupOpen() bool { return s.opts.SignupOpen }

// Now returns the service's clock reading, normalised like the store's timestamps.
func (s *Service) Now() time.Time { return store.Timestamp(s.now()) }

// NormalizeEmail trims and lower-cases an email and checks it is one bare address.
func NormalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	if e == "" {
		return "", errors.New("must not be empty")
	}
	if len(e) > 254 {
		return "", errors.New("must be at most 254 characters")
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" || !strings.Contains(e[strings.LastIndex(e, "@"):], ".") {
		return "", errors.New("is not a valid email address")
	}
	return e, nil
}

var slugPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckSlug validates a tenant slug: lower-case letters, digits and inner dashes, 1–63
// characters, so it is safe in URLs and topic names.
func CheckSlug(slug string) error {
	if !slugPattern.MatchString(slug) {
		return errors.New("must be 1–63 lower-case letters, digits or dashes, not starting or ending with a dash")
	}
	return nil
}

func checkName(name string, max int) error {
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > max {
		return fmt.Errorf("must be at most %d characters", max)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return errors.New("must not contain control characters")
		}
	}
	return nil
}

// newSecret returns 32 random bytes, base64url-encoded without padding (43 characters).
func newSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("account: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashSecret is the SHA-256 stored for a session, token or link secret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// SignupInput is what a person gives to create an account.
type SignupInput struct {
	Email    string
	Password string
	Name     string
}

func (in *SignupInput) validate() error {
	fields := map[string]string{}
	email, err := NormalizeEmail(in.Email)
	if err != nil {
		fields["email"] = err.Error()
	}
	in.Email = email
	if err := CheckPasswordPolicy(in.Password); err != nil {
		fields["password"] = err.Error()
	}
	in.Name = strings.TrimSpace(in.Name)
	if err := checkName(in.Name, 100); err != nil {
		fields["name"] = err.Error()
	}
	if len(fields) > 0 {
		return &store.InvalidError{Fields: fields}
	}
	return nil
}

// Signup creates an account when sign-up is open.
func (s *Service) Signup(ctx context.Context, in SignupInput) (store.User, error) {
	if !s.opts.SignupOpen {
		return store.User{}, ErrSignupClosed
	}
	return s.CreateUser(ctx, in)
}

// CreateUser creates an account regardless of the sign-up setting (setup, CLI, invitations).
func (s *Service) CreateUser(ctx context.Context, in SignupInput) (store.User, error) {
	if err := in.validate(); err != nil {
		return store.User{}, err
	}
	hash, err := HashPassword(in.Password, s.opts.Hash)
	if err != nil {
		return store.User{}, err
	}
	u := store.User{Email: in.Email, Name: in.Name, PasswordHash: hash}
	if err := s.st.CreateUser(ctx, &u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.User{}, ErrEmailTaken
		}
		return store.User{}, fmt.Errorf("account: create user: %w", err)
	}
	return u, nil
}

// Login checks an email and password. Unknown email, wrong password and disabled account all
// give ErrInvalidCredentials after the same amount of hashing work and the same store writes.
// Failures are counted per account and per client address, in the store, so every replica
// sees them; over the limit, Login returns *RateLimitError without checking the password. When
// the counts cannot be read or written, Login fails with that error rather than letting the
// attempt through uncounted.
func (s *Service) Login(ctx context.Context, email, password, remoteAddr string) (store.User, error) {
	now := s.now()
	norm, err := NormalizeEmail(email)
	if err != nil {
		norm = strings.ToLower(strings.TrimSpace(email))
	}
	acctWait, err := s.accounts.wait(ctx, norm, now)
	if err != nil {
		return store.User{}, err
	}
	addrWait, err := s.addrs.wait(ctx, remoteAddr, now)
	if err != nil {
		return store.User{}, err
	}
	if wait := max(acctWait, addrWait); wait > 0 {
		return store.User{}, &RateLimitError{RetryAfter: wait}
	}
	fail := func() (store.User, error) {
		if err := s.accounts.fail(ctx, norm, now); err != nil {
			return store.User{}, err
		}
		if err := s.addrs.fail(ctx, remoteAddr, now); err != nil {
			return store.User{}, err
		}
		return store.User{}, ErrInvalidCredentials
	}
	u, err := s.st.UserByEmail(ctx, norm)
	switch {
	case errors.Is(err, store.ErrNotFound):
		VerifyPassword(s.dummyHash(), password)
		return fail()
	case err != nil:
		return store.User{}, fmt.Errorf("account: look up user: %w", err)
	}
	hash := u.PasswordHash
	if hash == "" || u.Disabled {
		hash = s.dummyHash()
	}
	if !VerifyPassword(hash, password) || u.PasswordHash == "" || u.Disabled {
		return fail()
	}
	if err := s.accounts.reset(ctx, norm); err != nil {
		return store.User{}, err
	}
	at := store.Timestamp(now)
	u.LastLoginAt = &at
	if needsRehash(u.PasswordHash, s.opts.Hash) {
		if h, err := HashPassword(password, s.opts.Hash); err == nil {
			u.PasswordHash = h
		}
	}
	if err := s.st.UpdateUser(ctx, &u); err != nil {
		return store.User{}, fmt.Errorf("account: record login: %w", err)
	}
	return u, nil
}

// NewSession is a created session with the cookie value, which is shown only now.
type NewSession struct {
	Token   string
	Session store.Session
}

// CreateSession starts a browser session for userID.
func (s *Service) CreateSession(ctx context.Context, userID, userAgent, remoteAddr string) (NewSession, error) {
	now := store.Timestamp(s.now())
	token := newSecret()
	sess := store.Session{
		TokenHash:     HashSecret(token),
		UserID:        userID,
		CSRFToken:     newSecret(),
		UserAgent:     truncate(userAgent, 255),
		RemoteAddr:    truncate(remoteAddr, 64),
		CreatedAt:     now,
		LastSeenAt:    now,
		ExpiresAt:     now.Add(s.opts.SessionMaxAge),
		IdleExpiresAt: now.Add(min(s.opts.SessionIdle, s.opts.SessionMaxAge)),
	}
	if err := s.st.CreateSession(ctx, &sess); err != nil {
		return NewSession{}, fmt.Errorf("account: create session: %w", err)
	}
	return NewSession{Token: token, Session: sess}, nil
}

// Session returns the live session for a cookie value, pushing its idle expiry forward (at
// most once a minute, to spare the database a write per request). An unknown or expired
// session is ErrUnauthenticated; an expired one is deleted.
func (s *Service) Session(ctx context.Context, token string) (store.Session, error) {
	if token == "" || len(token) > 128 {
		return store.Session{}, ErrUnauthenticated
	}
	hash := HashSecret(token)
	sess, err := s.st.SessionByTokenHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return store.Session{}, ErrUnauthenticated
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("account: look up session: %w", err)
	}
	if subtle.ConstantTimeCompare(sess.TokenHash, hash) != 1 {
		return store.Session{}, ErrUnauthenticated
	}
	now := store.Timestamp(s.now())
	if !now.Before(sess.IdleExpiresAt) || !now.Before(sess.ExpiresAt) {
		if err := s.st.DeleteSession(ctx, sess.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Session{}, fmt.Errorf("account: delete expired session: %w", err)
		}
		return store.Session{}, ErrUnauthenticated
	}
	if now.Sub(sess.LastSeenAt) >= touchEvery {
		idle := now.Add(s.opts.SessionIdle)
		if idle.After(sess.ExpiresAt) {
			idle = sess.ExpiresAt
		}
		if err := s.st.TouchSession(ctx, sess.ID, now, idle); err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Session{}, fmt.Errorf("account: touch session: %w", err)
		}
		sess.LastSeenAt, sess.IdleExpiresAt = now, idle
	}
	return sess, nil
}

// Logout ends a session on every replica at once (the row is gone).
func (s *Service) Logout(ctx context.Context, sessionID string) error {
	if err := s.st.DeleteSession(ctx, sessionID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("account: delete session: %w", err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Reset mails per address: 3 free, then at most one per backoff period, so nobody can flood
// a mailbox through the "forgot password" form.
const resetMailsFree = 3

// AllowResetMail counts a reset-mail request for email and reports whether one may be sent.
// The count is kept per address whether or not it has an account, so the answer reveals
// nothing; an error means the count is unavailable, and no mail should be sent.
func (s *Service) AllowResetMail(ctx context.Context, email string) (bool, error) {
	now := s.now()
	subject := strings.ToLower(strings.TrimSpace(email))
	wait, err := s.resets.wait(ctx, subject, now)
	if err != nil || wait > 0 {
		return false, err
	}
	if err := s.resets.fail(ctx, subject, now); err != nil {
		return false, err
	}
	return true, nil
}

// SweepStats counts what one Sweep removed.
type SweepStats struct {
	Sessions    int64
	LoginLimits int64
}

// Sweep deletes expired sessions and rate-limit records that no longer limit anything (no
// failure and no lock for an hour: a new failure would start over anyway). The server runs it
// periodically on every replica; the deletes are idempotent, so replicas sweeping at once only
// repeat work. Both deletes are attempted even when one fails.
func (s *Service) Sweep(ctx context.Context) (SweepStats, error) {
	now := store.Timestamp(s.now())
	var stats SweepStats
	var errs []error
	n, err := s.st.DeleteExpiredSessions(ctx, now)
	if err != nil {
		errs = append(errs, fmt.Errorf("account: sweep sessions: %w", err))
	}
	stats.Sessions = n
	n, err = s.st.DeleteStaleLoginLimits(ctx, now.Add(-limitForget))
	if err != nil {
		errs = append(errs, fmt.Errorf("account: sweep login limits: %w", err))
	}
	stats.LoginLimits = n
	return stats, errors.Join(errs...)
}
