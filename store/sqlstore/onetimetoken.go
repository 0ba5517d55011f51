package sqlstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// oneTimeTokenRow is a row of one_time_tokens. user_id is NULL for setup tokens.
type oneTimeTokenRow struct {
	bun.BaseModel `bun:"table:one_time_tokens"`

	ID        string     `bun:"id"`
	Kind      string     `bun:"kind"`
	Hash      []byte     `bun:"hash"`
	UserID    string     `bun:"user_id,nullzero"`
	ExpiresAt time.Time  `bun:"expires_at,nullzero"`
	UsedAt    *time.Time `bun:"used_at"`
	CreatedAt time.Time  `bun:"created_at"`
}

func (r oneTimeTokenRow) domain() store.OneTimeToken {
	return store.OneTimeToken{
		ID: r.ID, Kind: store.OneTimeTokenKind(r.Kind), Hash: r.Hash, UserID: r.UserID,
		ExpiresAt: utc(r.ExpiresAt), UsedAt: utcPtr(r.UsedAt), CreatedAt: utc(r.CreatedAt),
	}
}

// CreateOneTimeToken inserts t; a duplicate hash is store.ErrConflict.
func (s *Store) CreateOneTimeToken(ctx context.Context, t *store.OneTimeToken) error {
	c := *t
	store.PrepareCreate(&c.ID, &c.CreatedAt, nil)
	c.ExpiresAt, c.UsedAt = ts(c.ExpiresAt), tsPtr(c.UsedAt)
	row := oneTimeTokenRow{
		ID: c.ID, Kind: string(c.Kind), Hash: c.Hash, UserID: c.UserID,
		ExpiresAt: c.ExpiresAt, UsedAt: c.UsedAt, CreatedAt: c.CreatedAt,
	}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create %s token", c.Kind)
	}
	*t = c
	return nil
}

// ConsumeOneTimeToken marks the token used with one conditional UPDATE (unused, of this kind,
// not expired at now), so it works exactly once even when two requests race, then reads it
// back in the same transaction.
func (s *Store) ConsumeOneTimeToken(ctx context.Context, kind store.OneTimeTokenKind, hash []byte, now time.Time) (store.OneTimeToken, error) {
	now = nowOr(now)
	var row oneTimeTokenRow
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Table("one_time_tokens").
			Set("used_at = ?", now).
			Where("kind = ?", string(kind)).
			Where("hash = ?", hash).
			Where("used_at IS NULL").
			Where("expires_at > ?", now).
			Exec(ctx)
		if err := affected(res, err); err != nil {
			return err
		}
		return tx.NewSelect().Model(&row).Where("hash = ?", hash).Scan(ctx)
	})
	if err != nil {
		return store.OneTimeToken{}, wrap(err, "consume %s token", kind)
	}
	return row.domain(), nil
}

// DeleteOneTimeTokens removes a user's unused tokens of one kind ("" user: setup tokens).
func (s *Store) DeleteOneTimeTokens(ctx context.Context, kind store.OneTimeTokenKind, userID string) error {
	q := s.w.NewDelete().Table("one_time_tokens").
		Where("kind = ?", string(kind)).
		Where("used_at IS NULL")
	if userID == "" {
		q = q.Where("user_id IS NULL")
	} else {
		q = q.Where("user_id = ?", userID)
	}
	if _, err := q.Exec(ctx); err != nil {
		return wrap(err, "delete %s tokens of user %q", kind, userID)
	}
	return nil
}
