package sqlstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// userRow is a row of users.
type userRow struct {
	bun.BaseModel `bun:"table:users"`

	ID            string     `bun:"id"`
	Email         string     `bun:"email"`
	Name          string     `bun:"name"`
	PasswordHash  string     `bun:"password_hash"`
	EmailVerified bool       `bun:"email_verified"`
	Disabled      bool       `bun:"disabled"`
	LastLoginAt   *time.Time `bun:"last_login_at"`
	CreatedAt     time.Time  `bun:"created_at"`
	UpdatedAt     time.Time  `bun:"updated_at"`
}

func (r userRow) domain() store.User {
	return store.User{
		ID: r.ID, Email: r.Email, Name: r.Name, PasswordHash: r.PasswordHash,
		EmailVerified: r.EmailVerified, Disabled: r.Disabled, LastLoginAt: utcPtr(r.LastLoginAt),
		CreatedAt: utc(r.CreatedAt), UpdatedAt: utc(r.UpdatedAt),
	}
}

// CreateUser inserts u; a taken email is store.ErrConflict.
func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	c := *u
	store.PrepareCreate(&c.ID, &c.CreatedAt, &c.UpdatedAt)
	c.LastLoginAt = tsPtr(c.LastLoginAt)
	row := userRow{
		ID: c.ID, Email: c.Email, Name: c.Name, PasswordHash: c.PasswordHash,
		EmailVerified: c.EmailVerified, Disabled: c.Disabled, LastLoginAt: c.LastLoginAt,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create user %q", c.Email)
	}
	*u = c
	return nil
}

// User returns a user by ID.
func (s *Store) User(ctx context.Context, id string) (store.User, error) {
	var row userRow
	if err := s.r.NewSelect().Model(&row).Where("id = ?", id).Scan(ctx); err != nil {
		return store.User{}, wrap(err, "get user %q", id)
	}
	return row.domain(), nil
}

// UserByEmail returns a user by (normalised) email.
func (s *Store) UserByEmail(ctx context.Context, email string) (store.User, error) {
	var row userRow
	if err := s.r.NewSelect().Model(&row).Where("email = ?", email).Scan(ctx); err != nil {
		return store.User{}, wrap(err, "get user by email %q", email)
	}
	return row.domain(), nil
}

// ListUsers pages through all users.
func (s *Store) ListUsers(ctx context.Context, opts store.ListOptions) (store.Page[store.User], error) {
	var rows []userRow
	if err := pageByID(s.r.NewSelect().Model(&rows), opts).Scan(ctx); err != nil {
		return store.Page[store.User]{}, wrap(err, "list users")
	}
	items := make([]store.User, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(u store.User) string { return u.ID }), nil
}

// CountUsers counts all users.
func (s *Store) CountUsers(ctx context.Context) (int64, error) {
	n, err := s.r.NewSelect().Table("users").Count(ctx)
	if err != nil {
		return 0, wrap(err, "count users")
	}
	return int64(n), nil
}

// UpdateUser saves every field but ID and CreatedAt and sets UpdatedAt.
func (s *Store) UpdateUser(ctx context.Context, u *store.User) error {
	now := store.Now()
	res, err := s.w.NewUpdate().Table("users").
		Set("email = ?", u.Email).
		Set("name = ?", u.Name).
		Set("password_hash = ?", u.PasswordHash).
		Set("email_verified = ?", u.EmailVerified).
		Set("disabled = ?", u.Disabled).
		Set("last_login_at = ?", tsPtr(u.LastLoginAt)).
		Set("updated_at = ?", now).
		Where("id = ?", u.ID).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "update user %q", u.ID)
	}
	u.LastLoginAt = tsPtr(u.LastLoginAt)
	u.UpdatedAt = now
	return nil
}

// DeleteUser removes the user; foreign keys cascade to their memberships, identities,
// sessions, personal API tokens and one-time tokens.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	res, err := s.w.NewDelete().Table("users").Where("id = ?", id).Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "delete user %q", id)
	}
	return nil
}
