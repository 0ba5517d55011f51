package sqlstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// sessionRow is a row of sessions.
type sessionRow struct {
	bun.BaseModel `bun:"table:sessions"`

	ID            string    `bun:"id"`
	TokenHash     []byte    `bun:"token_hash"`
	UserID        string    `bun:"user_id"`
	CSRFToken     string    `bun:"csrf_token"`
	UserAgent     string    `bun:"user_agent"`
	RemoteAddr    string    `bun:"remote_addr"`
	CreatedAt     time.Time `bun:"created_at"`
	LastSeenAt    time.Time `bun:"last_seen_at,nullzero"`
	IdleExpiresAt time.Time `bun:"idle_expires_at,nullzero"`
	ExpiresAt     time.Time `bun:"expires_at,nullzero"`
}

func (r sessionRow) domain() store.Session {
	return store.Session{
		ID: r.ID, TokenHash: r.TokenHash, UserID: r.UserID, CSRFToken: r.CSRFToken,
		UserAgent: r.UserAgent, RemoteAddr: r.RemoteAddr, CreatedAt: utc(r.CreatedAt),
		LastSeenAt: utc(r.LastSeenAt), IdleExpiresAt: utc(r.IdleExpiresAt), ExpiresAt: utc(r.ExpiresAt),
	}
}

// CreateSession inserts a session; a duplicate token hash is store.ErrConflict.
func (s *Store) CreateSession(ctx context.Context, se *store.Session) error {
	c := *se
	store.PrepareCreate(&c.ID, &c.CreatedAt, nil)
	c.LastSeenAt, c.IdleExpiresAt, c.ExpiresAt = ts(c.LastSeenAt), ts(c.IdleExpiresAt), ts(c.ExpiresAt)
	row := sessionRow{
		ID: c.ID, TokenHash: c.TokenHash, UserID: c.UserID, CSRFToken: c.CSRFToken,
		UserAgent: c.UserAgent, RemoteAddr: c.RemoteAddr, CreatedAt: c.CreatedAt,
		LastSeenAt: c.LastSeenAt, IdleExpiresAt: c.IdleExpiresAt, ExpiresAt: c.ExpiresAt,
	}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create session of user %q", c.UserID)
	}
	*se = c
	return nil
}

// SessionByTokenHash returns the session a cookie's token hash names. Expiry is the caller's
// check (it has the clock); DeleteExpiredSessions removes them.
func (s *Store) SessionByTokenHash(ctx context.Context, hash []byte) (store.Session, error) {
	var row sessionRow
	if err := s.r.NewSelect().Model(&row).Where("token_hash = ?", hash).Scan(ctx); err != nil {
		return store.Session{}, wrap(err, "get session by token hash")
	}
	return row.domain(), nil
}

// TouchSession records activity and pushes the idle expiry forward.
func (s *Store) TouchSession(ctx context.Context, id string, lastSeen, idleExpiresAt time.Time) error {
	res, err := s.w.NewUpdate().Table("sessions").
		Set("last_seen_at = ?", nullTime(lastSeen)).
		Set("idle_expires_at = ?", nullTime(idleExpiresAt)).
		Where("id = ?", id).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "touch session %q", id)
	}
	return nil
}

// DeleteSession ends one session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	res, err := s.w.NewDelete().Table("sessions").Where("id = ?", id).Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "delete session %q", id)
	}
	return nil
}

// DeleteUserSessions ends every session of a user (none is not an error).
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) error {
	if _, err := s.w.NewDelete().Table("sessions").Where("user_id = ?", userID).Exec(ctx); err != nil {
		return wrap(err, "delete sessions of user %q", userID)
	}
	return nil
}

// DeleteExpiredSessions removes sessions past either expiry at now.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	now = ts(now)
	res, err := s.w.NewDelete().Table("sessions").
		WhereOr("expires_at <= ?", now).
		WhereOr("idle_expires_at <= ?", now).
		Exec(ctx)
	if err != nil {
		return 0, wrap(err, "delete expired sessions")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrap(err, "delete expired sessions")
	}
	return n, nil
}
