package sqlstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// keyCheckRow is a row of key_checks.
type keyCheckRow struct {
	bun.BaseModel `bun:"table:key_checks"`

	Name      string    `bun:"name,pk"`
	KeyID     string    `bun:"key_id"`
	Sealed    []byte    `bun:"sealed"`
	CreatedAt time.Time `bun:"created_at"`
}

// KeyCheck returns the key check called name, or store.ErrNotFound.
func (s *Store) KeyCheck(ctx context.Context, name string) (store.KeyCheck, error) {
	var row keyCheckRow
	if err := s.r.NewSelect().Model(&row).Where("name = ?", name).Scan(ctx); err != nil {
		return store.KeyCheck{}, wrap(err, "get key check %q", name)
	}
	return store.KeyCheck{Name: row.Name, KeyID: row.KeyID, Sealed: row.Sealed, CreatedAt: utc(row.CreatedAt)}, nil
}

// CreateKeyCheck writes c; store.ErrConflict when a check of that name exists.
func (s *Store) CreateKeyCheck(ctx context.Context, c *store.KeyCheck) error {
	c.CreatedAt = nowOr(c.CreatedAt)
	row := keyCheckRow{Name: c.Name, KeyID: c.KeyID, Sealed: c.Sealed, CreatedAt: c.CreatedAt}
	_, err := s.w.NewInsert().Model(&row).Exec(ctx)
	return wrap(err, "create key check %q", c.Name)
}
