package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// loginLimitRow is a row of login_limits.
type loginLimitRow struct {
	bun.BaseModel `bun:"table:login_limits"`

	Key           string    `bun:"limit_key"`
	Failures      int       `bun:"failures"`
	LastFailureAt time.Time `bun:"last_failure_at"`
	LockedUntil   time.Time `bun:"locked_until,nullzero"`
}

func (r loginLimitRow) domain() store.LoginLimit {
	return store.LoginLimit{
		Key: r.Key, Failures: r.Failures, LastFailure: utc(r.LastFailureAt), LockedUntil: utc(r.LockedUntil),
	}
}

// Upserts that count one failure. The count is computed inside the database from the stored
// row, so concurrent failures on several replicas never lose one. The arguments are the key
// and now for the new row, then forgetBefore and now for the start-over condition: the count
// starts over at 1 when the last failure is older than forgetBefore and no lock is active.
const (
	addLoginFailureStandard = `INSERT INTO login_limits (limit_key, failures, last_failure_at, locked_until)
	VALUES (?, 1, ?, NULL)
	ON CONFLICT (limit_key) DO UPDATE SET
	failures = CASE
		WHEN login_limits.last_failure_at < ? AND (login_limits.locked_until IS NULL OR login_limits.locked_until <= ?) THEN 1
		ELSE login_limits.failures + 1 END,
	last_failure_at = %s`
	// MySQL applies the assignments left to right, each seeing the columns already assigned:
	// failures must come first, while last_failure_at still holds the previous failure.
	addLoginFailureMySQL = `INSERT INTO login_limits (limit_key, failures, last_failure_at, locked_until)
	VALUES (?, 1, ?, NULL)
	ON DUPLICATE KEY UPDATE
	failures = CASE
		WHEN last_failure_at < ? AND (locked_until IS NULL OR locked_until <= ?) THEN 1
		ELSE failures + 1 END,
	last_failure_at = GREATEST(last_failure_at, VALUES(last_failure_at))`
)

// addLoginFailureSQL returns the dialect's form of the failure upsert.
func (s *Store) addLoginFailureSQL() string {
	switch s.backend {
	case BackendMySQL:
		return addLoginFailureMySQL
	case BackendPostgres:
		return fmt.Sprintf(addLoginFailureStandard, "GREATEST(login_limits.last_failure_at, EXCLUDED.last_failure_at)")
	}
	// SQLite's two-argument max() is its GREATEST; the times are UTC text, ordered as text.
	return fmt.Sprintf(addLoginFailureStandard, "max(login_limits.last_failure_at, excluded.last_failure_at)")
}

// LoginLimit returns the record of key; store.ErrNotFound when there is none.
func (s *Store) LoginLimit(ctx context.Context, key string) (store.LoginLimit, error) {
	var row loginLimitRow
	if err := s.r.NewSelect().Model(&row).Where("limit_key = ?", key).Scan(ctx); err != nil {
		return store.LoginLimit{}, wrap(err, "get login limit %q", key)
	}
	return row.domain(), nil
}

// AddLoginFailure counts a failure of key in one upsert and reads the row back in the same
// transaction, where the upsert's row lock keeps other writers out until the commit.
func (s *Store) AddLoginFailure(ctx context.Context, key string, now, forgetBefore time.Time) (store.LoginLimit, error) {
	now, forgetBefore = ts(now), ts(forgetBefore)
	upsert := s.addLoginFailureSQL()
	var row loginLimitRow
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, upsert, key, now, forgetBefore, now); err != nil {
			return err
		}
		return tx.NewSelect().Model(&row).Where("limit_key = ?", key).Scan(ctx)
	})
	if err != nil {
		return store.LoginLimit{}, wrap(err, "add login failure to %q", key)
	}
	return row.domain(), nil
}

// LockLogin extends the lock of key to until; a later lock already stored is kept.
func (s *Store) LockLogin(ctx context.Context, key string, until time.Time) error {
	until = ts(until)
	// The CASE keeps the row matched when the stored lock is later, so that no affected row
	// means only "no such key" (MySQL counts matched rows: clientFoundRows).
	res, err := s.w.NewUpdate().Table("login_limits").
		Set("locked_until = CASE WHEN locked_until IS NULL OR locked_until < ? THEN ? ELSE locked_until END", until, until).
		Where("limit_key = ?", key).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "lock login %q", key)
	}
	return nil
}

// DeleteLoginLimit forgets key.
func (s *Store) DeleteLoginLimit(ctx context.Context, key string) error {
	res, err := s.w.NewDelete().Table("login_limits").Where("limit_key = ?", key).Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "delete login limit %q", key)
	}
	return nil
}

// DeleteStaleLoginLimits removes the records with no failure and no lock since before.
func (s *Store) DeleteStaleLoginLimits(ctx context.Context, before time.Time) (int64, error) {
	before = ts(before)
	res, err := s.w.NewDelete().Table("login_limits").
		Where("last_failure_at < ?", before).
		Where("(locked_until IS NULL OR locked_until < ?)", before).
		Exec(ctx)
	if err != nil {
		return 0, wrap(err, "delete stale login limits")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrap(err, "delete stale login limits")
	}
	return n, nil
}
